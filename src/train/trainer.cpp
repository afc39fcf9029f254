#include "train/trainer.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/json_util.h"
#include "core/mmap_file.h"
#include "core/rng.h"
#include "core/threading.h"
#include "io/safetensors.h"
#include "model/init.h"
#include "model/loader.h"
#include "model/peft_adapter.h"
#include "model/tokenizer_loader.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/engine.h"

namespace taia {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

TrainSummary run_training(const TrainOptions& o, const std::function<void(const std::string&)>& log) {
  set_num_threads(o.threads);
  TAIA_CHECK(o.method == "lora" || o.method == "full", "[train] --method expected lora or full, got '", o.method, "'");
  TAIA_CHECK(o.grad_accum > 0 && o.batch_size > 0 && o.epochs > 0, "[train] batch size, gradient accumulation and "
             "epochs expected > 0");
  TAIA_CHECK(o.lr > 0 && std::isfinite(o.lr), "[train] learning rate expected > 0, got ", o.lr);
  TAIA_CHECK(o.warmup_ratio >= 0 && o.warmup_ratio < 1, "[train] warmup ratio expected in [0, 1), got ", o.warmup_ratio);
  TAIA_CHECK(o.val_split >= 0 && o.val_split < 1, "[train] validation split expected in [0, 1), got ", o.val_split);
  const bool full = o.method == "full";
  const auto targets = parse_targets(o.targets);
  const Schedule schedule = parse_schedule(o.schedule);

  // Model, tokenizer, data.
  LoadOptions load;
  if (full) load.linear_dtype = DType::F32;
  else if (o.dtype != "auto") load.linear_dtype = parse_dtype(o.dtype);
  auto model = load_model(o.model_path, load);
  auto tok = load_tokenizer(o.tokenizer_path.empty() ? o.model_path : o.tokenizer_path);
  TAIA_CHECK(tok->vocab_size() <= model->config.vocab_size, "[train] the tokenizer has ", tok->vocab_size(),
             " tokens but the model only ", model->config.vocab_size);
  const ChatTemplate chat = o.chat_template.empty() ? chat_template_for(*tok) : chat_template_by_name(o.chat_template);
  DataStats stats;
  std::vector<Example> train = tokenize_records(load_records(o.data_path, o.skip_bad_records, stats), *tok, chat,
                                                o.max_length, stats);
  std::vector<Example> val;
  DataStats val_stats;
  if (!o.val_data_path.empty()) {
    val = tokenize_records(load_records(o.val_data_path, o.skip_bad_records, val_stats), *tok, chat, o.max_length,
                           val_stats);
  } else if (o.val_split > 0) {
    Rng rng(o.seed ^ 0x5eedull);
    for (size_t i = train.size(); i > 1; --i) std::swap(train[i - 1], train[size_t(rng.next_u64() % i)]);
    const size_t n_val = std::max<size_t>(1, size_t(double(train.size()) * o.val_split));
    TAIA_CHECK(n_val < train.size(), "[train] --val-split leaves no training examples");
    val.assign(train.end() - long(n_val), train.end());
    train.resize(train.size() - n_val);
  }
  {
    std::ostringstream s;
    s << "data: " << stats.records << " records, " << train.size() << " training examples, " << val.size()
      << " validation, " << stats.target_tokens << " trained tokens; chat template " << chat.name;
    if (stats.skipped_bad) s << "; skipped " << stats.skipped_bad << " bad records";
    if (stats.truncated) s << "; warning: " << stats.truncated << " sequences truncated to --max-length " << o.max_length;
    if (stats.dropped_no_target) s << "; dropped " << stats.dropped_no_target << " with no trained token";
    log(s.str());
  }

  // What trains.
  LoraAdapter lora;
  FullGrads grads;
  std::vector<ParamRef> params;
  if (full) {
    grads = make_full_grads(*model, targets);
    for (auto& [name, g] : grads.by_name) {
      TensorView* t = model->find(name);
      const bool decay = name.find("norm") == std::string::npos && name.find(".bias") == std::string::npos;
      params.push_back({name, t->ptr<float>(), g.data(), g.size(), decay});
    }
  } else {
    LoraConfig lc = o.lora;
    lc.targets = targets;
    lora = LoraAdapter::create(model->config, lc, o.seed);
    for (int64_t l = 0; l < int64_t(lora.layers.size()); ++l)
      for (int i = 0; i < kNumProj; ++i)
        if (LoraModule* m = lora.find(l, Proj(i))) {
          params.push_back({peft_key(l, Proj(i), "A"), m->A.data(), m->dA.data(), m->A.size(), true});
          params.push_back({peft_key(l, Proj(i), "B"), m->B.data(), m->dB.data(), m->B.size(), true});
        }
  }
  int64_t n_trainable = 0;
  for (const ParamRef& p : params) n_trainable += int64_t(p.size);
  TAIA_CHECK(n_trainable > 0, "[train] nothing to train with --targets ", o.targets);
  EngineOptions eo;
  eo.recompute = o.recompute;
  eo.dropout_seed = o.seed;
  TAIA_CHECK(o.compute == "f32" || o.compute == "bf16", "[train] --compute expected f32 or bf16, got '", o.compute, "'");
  TAIA_CHECK(o.compute == "f32" || !full, "[train] --compute bf16 is for LoRA; full fine-tuning computes in F32");
  eo.compute_bf16 = o.compute == "bf16";
  {
    // Memory before the first step: the model, what trains (value, gradient, AdamW m and v),
    // and the engine's working set for the longest micro-batch.
    int64_t longest = 1;
    for (const Example& e : train) longest = std::max<int64_t>(longest, int64_t(e.ids.size()));
    for (const Example& e : val) longest = std::max<int64_t>(longest, int64_t(e.ids.size()));
    const int64_t model_bytes = int64_t(model->arena.capacity());
    const int64_t train_bytes = n_trainable * 4 * (full ? 3 : 4);  // full: values are the model's
    const int64_t work_bytes = TrainEngine::working_bytes(model->config, o.batch_size, longest, eo,
                                                          full ? nullptr : &lora, full);
    const int64_t total_bytes = model_bytes + train_bytes + work_bytes;
    const int64_t limit = o.max_memory > 0 ? o.max_memory : physical_memory_bytes();
    auto gib = [](int64_t b) {
      char buf[32];
      if (b >= (int64_t(1) << 30)) std::snprintf(buf, sizeof(buf), "%.2f GiB", double(b) / double(int64_t(1) << 30));
      else std::snprintf(buf, sizeof(buf), "%.1f MiB", double(b) / double(int64_t(1) << 20));
      return std::string(buf);
    };
    log("memory: estimated " + gib(total_bytes) + " (model " + gib(model_bytes) + ", trainable state " +
        gib(train_bytes) + ", activations and scratch for " + std::to_string(o.batch_size) + " x " +
        std::to_string(longest) + " tokens " + gib(work_bytes) + ")");
    if (limit > 0 && total_bytes > limit)
      fail("[train] the run needs an estimated ", gib(total_bytes), " (model ", gib(model_bytes), ", trainable state ",
           gib(train_bytes), ", activations ", gib(work_bytes), " for micro-batches of ", o.batch_size, " x ", longest,
           " tokens) but ", o.max_memory > 0 ? "--max-memory allows " : "the machine has ", gib(limit),
           ". To fit: a smaller --batch-size (with a larger --grad-accum for the same effective batch), a "
           "shorter --max-length, --recompute",
           full ? ", LoRA (--method lora) instead of full fine-tuning" : ", --dtype bf16 for the frozen base", ".");
  }
  TrainEngine engine(*model, full ? nullptr : &lora, full ? &grads : nullptr, eo);
  AdamW adam(params, o.adamw);

  // Schedule.
  const int64_t micro_per_epoch = (int64_t(train.size()) + o.batch_size - 1) / o.batch_size;
  const int64_t steps_per_epoch = (micro_per_epoch + o.grad_accum - 1) / o.grad_accum;
  const int64_t total = o.max_steps > 0 ? o.max_steps : steps_per_epoch * o.epochs;
  const int64_t warmup = int64_t(std::ceil(o.warmup_ratio * double(total)));
  const int64_t total_micro = o.max_steps > 0 ? total * o.grad_accum : micro_per_epoch * o.epochs;
  const int32_t pad = tok->eos_id.value_or(0);
  log("train: " + std::string(full ? "full fine-tuning" : "LoRA") + " of " + targets_to_string(targets) + ", " +
      std::to_string(n_trainable) + " trainable parameters, " + std::to_string(total) + " steps of " +
      std::to_string(o.grad_accum) + " x " + std::to_string(o.batch_size) + " sequences");

  // Resume.
  int64_t start_step = 0;
  if (!o.resume_dir.empty()) {
    const auto ck = find_checkpoint(o.resume_dir);
    TAIA_CHECK(ck.has_value(), o.resume_dir, ": no complete checkpoint to resume from");
    Json state = parse_json_file(*ck + "/trainer_state.json");
    start_step = json_int(state, "step", *ck);
    TAIA_CHECK(json_string_or(state, "method", "", *ck) == o.method, *ck, ": checkpoint is from --method ",
               json_string_or(state, "method", "", *ck), ", this run is ", o.method);
    if (full) {
      SafetensorsFile f(*ck + "/trainable.safetensors");
      for (const ParamRef& p : params) {
        const SafetensorsTensor* t = f.find(p.name);
        TAIA_CHECK(t && t->dtype == DType::F32 && size_t(t->view().numel()) == p.size, f.path(), ": expected tensor '",
                   p.name, "' with ", p.size, " F32 elements");
        std::memcpy(p.value, t->data, p.size * 4);
      }
    } else {
      LoraAdapter saved = load_peft_adapter(*ck, model->config);
      for (int64_t l = 0; l < int64_t(lora.layers.size()); ++l)
        for (int i = 0; i < kNumProj; ++i)
          if (LoraModule* m = lora.find(l, Proj(i))) {
            const LoraModule* s = saved.find(l, Proj(i));
            TAIA_CHECK(s && s->A.size() == m->A.size() && s->B.size() == m->B.size(), *ck,
                       ": adapter does not match this run's LoRA settings at ", module_name(l, Proj(i)));
            m->A = s->A;
            m->B = s->B;
          }
    }
    load_optimizer_state(adam, *ck + "/optimizer.safetensors");
    log("resumed from " + *ck + " at step " + std::to_string(start_step));
  }
  TAIA_CHECK(start_step <= total, "[train] the checkpoint is at step ", start_step, ", past the planned ", total);

  // metrics.jsonl: keep what the resumed-from run wrote up to its checkpoint.
  make_directories(o.out_dir);
  const std::string metrics_path = o.out_dir + "/metrics.jsonl";
  {
    std::string kept;
    if (start_step > 0 && file_exists(metrics_path)) {
      std::vector<std::string> lines;
      std::istringstream in(read_text_file(metrics_path));
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
      for (size_t i = 0; i < lines.size(); ++i) {
        Json m;
        try {
          m = parse_json_text(lines[i], metrics_path + ":" + std::to_string(i + 1));
        } catch (const Error&) {
          if (i + 1 == lines.size()) break;  // the line a killed run was writing
          throw;
        }
        if (m.value("step", int64_t(0)) <= start_step) kept += lines[i] + "\n";
      }
    }
    write_file_atomic(metrics_path, kept);
  }
  remove_stale_checkpoint_temps(o.out_dir);
  std::ofstream metrics(metrics_path, std::ios::app);
  TAIA_CHECK(metrics.good(), metrics_path, ": cannot open for appending: ", std::strerror(errno));

  auto validation_loss = [&]() {
    double sum = 0;
    int64_t count = 0;
    for (size_t s = 0; s < val.size(); s += size_t(o.batch_size)) {
      std::vector<size_t> idx;
      for (size_t i = s; i < std::min(val.size(), s + size_t(o.batch_size)); ++i) idx.push_back(i);
      const TrainBatch b = make_batch(val, idx, pad);
      sum += engine.forward_loss(b);
      count += b.target_count();
    }
    return count ? sum / double(count) : -1.0;
  };
  std::string last_checkpoint;
  auto save_checkpoint = [&](int64_t step) {
    CheckpointWriter w(o.out_dir, step);
    if (full) {
      std::vector<TensorView> views;
      for (const ParamRef& p : params) views.push_back(*model->find(p.name));
      write_safetensors(w.tmp + "/trainable.safetensors", views);
    } else {
      save_peft_adapter(lora, w.tmp, o.model_path);
    }
    save_optimizer_state(adam, w.tmp + "/optimizer.safetensors");
    w.commit(Json{{"step", step}, {"total_steps", total}, {"method", o.method}, {"seed", o.seed},
                  {"targets", o.targets}});
    last_checkpoint = w.dir;
  };

  std::vector<std::vector<size_t>> epoch_batches;
  int64_t planned_epoch = -1;
  ProgressBar progress("step", total, o.progress);
  const auto t_start = Clock::now();
  int64_t tokens_done = 0;
  TrainSummary summary;
  for (int64_t step = start_step + 1; step <= total; ++step) {
    const auto t0 = Clock::now();
    if (full) grads.zero(); else lora.zero_grad();
    std::vector<TrainBatch> micro;
    for (int64_t k = 0; k < o.grad_accum; ++k) {
      const int64_t g = (step - 1) * o.grad_accum + k;
      if (g >= total_micro) break;
      const int64_t epoch = g / micro_per_epoch;
      if (epoch != planned_epoch) {
        epoch_batches = plan_micro_batches(train, o.batch_size, o.seed, epoch);
        planned_epoch = epoch;
      }
      micro.push_back(make_batch(train, epoch_batches[size_t(g % micro_per_epoch)], pad));
    }
    double loss = 0;
    int64_t step_tokens = 0;
    for (size_t k = 0; k < micro.size(); ++k) {
      const int64_t count = micro[k].target_count();
      const float scale = 1.0f / float(count * int64_t(micro.size()));
      loss += engine.forward_backward(micro[k], scale, uint64_t(step)) / double(count) / double(micro.size());
      step_tokens += micro[k].B * micro[k].L;
    }
    const double grad_norm = clip_grad_norm(params, o.max_grad_norm);
    if (!std::isfinite(loss) || !std::isfinite(grad_norm))
      fail("[train] non-finite ", std::isfinite(loss) ? "gradient norm" : "loss", " at step ", step,
           "; stopped without updating. Last good checkpoint: ",
           last_checkpoint.empty() ? std::string("none (try a lower --lr)") : last_checkpoint);
    const double lr = scheduled_lr(schedule, o.lr, step - 1, total, warmup);
    adam.step(lr);
    tokens_done += step_tokens;
    const double step_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
    Json m{{"step", step},
           {"epoch", double((step - 1) * o.grad_accum + int64_t(micro.size())) / double(micro_per_epoch)},
           {"loss", loss},
           {"lr", lr},
           {"grad_norm", grad_norm},
           {"tokens_per_s", double(step_tokens) / step_s},
           {"elapsed", elapsed}};
    if ((o.eval_every > 0 && step % o.eval_every == 0) || (step == total && !val.empty())) {
      m["val_loss"] = validation_loss();
      summary.final_val_loss = m["val_loss"].get<double>();
    }
    metrics << m.dump() << "\n" << std::flush;
    TAIA_CHECK(metrics.good(), metrics_path, ": write failed at step ", step, ": ", std::strerror(errno));
    summary.final_loss = loss;
    if (progress.drawing()) {
      char extra[96];
      std::snprintf(extra, sizeof(extra), "loss %.4f lr %.2e %.0f tok/s", loss, lr, double(tokens_done) / elapsed);
      progress.update(step, extra, start_step);
    }
    if ((o.save_every > 0 && step % o.save_every == 0) || step == total) save_checkpoint(step);
  }
  summary.steps = total;
  const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
  summary.tokens_per_s = elapsed > 0 ? double(tokens_done) / elapsed : 0;
  if (full) {
    save_hf_folder(*model, o.out_dir, DType::F32);
    copy_tokenizer_files(o.model_path, o.out_dir);
  } else {
    save_peft_adapter(lora, o.out_dir, o.model_path);
  }
  summary.output = o.out_dir;
  return summary;
}

}  // namespace taia
