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
#include "parallel/comm.h"
#include "io/safetensors.h"
#include "model/init.h"
#include "model/loader.h"
#include "model/peft_adapter.h"
#include "model/tokenizer_loader.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/data_parallel.h"
#include "train/engine.h"
#include "train/trainable.h"

namespace taia {
namespace {

using Clock = std::chrono::steady_clock;
using Log = std::function<void(const std::string&)>;

void check_options(const TrainOptions& o) {
  TAIA_CHECK(o.grad_accum > 0 && o.batch_size > 0 && o.epochs > 0, "[train] batch size, gradient accumulation and "
             "epochs expected > 0");
  TAIA_CHECK(o.lr > 0 && std::isfinite(o.lr), "[train] learning rate expected > 0, got ", o.lr);
  TAIA_CHECK(o.warmup_ratio >= 0 && o.warmup_ratio < 1, "[train] warmup ratio expected in [0, 1), got ", o.warmup_ratio);
  TAIA_CHECK(o.bucket_mb > 0 && o.bucket_mb <= 2048, "[train] --bucket-mb expected in (0, 2048], got ", o.bucket_mb);
  TAIA_CHECK(o.val_split >= 0 && o.val_split < 1, "[train] validation split expected in [0, 1), got ", o.val_split);
  parse_schedule(o.schedule);  // throws naming the schedule
  TAIA_CHECK(!o.on_step || !Comm::world().distributed(), "[train] an on_step callback runs in one process; under "
             "mpirun every rank must stop at the same step");
  TAIA_CHECK(o.compute == Precision::F32 || trains_adapter(o.method), "[train] --compute bf16 is for LoRA and MoLoRA; full "
             "fine-tuning computes in F32");
}

// The tokenized training and validation examples.
struct DataSets {
  std::vector<Example> train, val;
  int64_t longest = 1;  // tokens of the longest example (the memory estimate's micro-batch length)
};

// Holds out the last val_split of a seeded shuffle of `train` as validation data.
void split_validation(DataSets& d, double val_split, uint64_t seed) {
  Rng rng(seed ^ 0x5eedull);
  for (size_t i = d.train.size(); i > 1; --i) std::swap(d.train[i - 1], d.train[size_t(rng.next_u64() % i)]);
  const size_t n_val = std::max<size_t>(1, size_t(double(d.train.size()) * val_split));
  TAIA_CHECK(n_val < d.train.size(), "[train] --val-split leaves no training examples");
  d.val.assign(d.train.end() - long(n_val), d.train.end());
  d.train.resize(d.train.size() - n_val);
}

DataSets load_data_sets(const TrainOptions& o, const Tokenizer& tok, const ChatTemplate& chat, const Log& log) {
  DataSets d;
  DataStats stats, val_stats;
  d.train = tokenize_records(load_records(o.data_path, o.skip_bad_records, stats), tok, chat, o.max_length, stats);
  if (!o.val_data_path.empty())
    d.val = tokenize_records(load_records(o.val_data_path, o.skip_bad_records, val_stats), tok, chat, o.max_length,
                             val_stats);
  else if (o.val_split > 0)
    split_validation(d, o.val_split, o.seed);
  for (const auto* set : {&d.train, &d.val})
    for (const Example& e : *set) d.longest = std::max<int64_t>(d.longest, int64_t(e.ids.size()));
  std::ostringstream s;
  s << "data: " << stats.records << " records, " << d.train.size() << " training examples, " << d.val.size()
    << " validation, " << stats.target_tokens << " trained tokens; chat template " << chat.name;
  if (stats.skipped_bad) s << "; skipped " << stats.skipped_bad << " bad records";
  if (stats.truncated) s << "; warning: " << stats.truncated << " sequences truncated to --max-length " << o.max_length;
  if (stats.dropped_no_target) s << "; dropped " << stats.dropped_no_target << " with no trained token";
  log(s.str());
  return d;
}

// What trains: a LoRA adapter or the full-fine-tuning gradients, and the optimizer's view of them.
struct Trainables {
  LoraAdapter lora;
  FullGrads grads;
  std::vector<ParamRef> params;
  int64_t count = 0;  // trainable scalars
};

std::unique_ptr<Trainables> make_trainables(const TrainOptions& o, Model& model, const ModuleMask& targets) {
  auto t = std::make_unique<Trainables>();
  if (o.method == TrainMethod::Full) {
    t->grads = make_full_grads(model, targets);
    t->params = trainable_params(model, &t->grads, nullptr);
  } else {
    LoraConfig lc = o.lora;
    lc.targets = targets;
    MoloraConfig mc = o.molora;
    mc.targets = o.molora_targets;
    t->lora = o.method == TrainMethod::Molora ? LoraAdapter::create_with_experts(model.config, lc, mc, o.seed)
                                   : LoraAdapter::create(model.config, lc, o.seed);
    t->params = trainable_params(model, nullptr, &t->lora);
  }
  for (const ParamRef& p : t->params) t->count += int64_t(p.size);
  TAIA_CHECK(t->count > 0, "[train] nothing to train with --targets ", targets_spec(o.targets));
  return t;
}

std::string format_bytes(int64_t b) {
  char buf[32];
  if (b >= (int64_t(1) << 30)) std::snprintf(buf, sizeof(buf), "%.2f GiB", double(b) / double(int64_t(1) << 30));
  else std::snprintf(buf, sizeof(buf), "%.1f MiB", double(b) / double(int64_t(1) << 20));
  return buf;
}

// Memory before the first step: the model, what trains (value, gradient, AdamW m and v), and
// the engine's working set for the longest micro-batch; refused above --max-memory (or RAM).
void check_memory(const TrainOptions& o, const Model& model, const Trainables& t, int64_t longest,
                  const EngineOptions& eo, const DataParallel& dp, const Log& log) {
  const bool full = o.method == TrainMethod::Full;
  const int64_t model_bytes = int64_t(model.weight_bytes());
  // Gradients (and LoRA's values) for every trainable scalar, AdamW's m and v for this rank's.
  const int64_t train_bytes = t.count * 4 * (full ? 1 : 2) + int64_t(dp.optimizer_elements()) * 4 * 2;
  const int64_t work_bytes = TrainEngine::working_bytes(model, o.batch_size, longest, eo,
                                                        full ? nullptr : &t.lora, full);
  const int64_t total_bytes = model_bytes + train_bytes + work_bytes;
  // Ranks on one machine share its RAM (--max-memory is per rank).
  const int local = dp.comm().local_size();
  const int64_t limit = o.max_memory > 0 ? o.max_memory : physical_memory_bytes() / local;
  log("memory: estimated " + format_bytes(total_bytes) + (dp.comm().distributed() ? " per rank" : "") + " (model " + format_bytes(model_bytes) +
      ", trainable state " + format_bytes(train_bytes) + ", activations and scratch for " +
      std::to_string(o.batch_size) + " x " + std::to_string(longest) + " tokens " + format_bytes(work_bytes) + ")");
  if (limit > 0 && total_bytes > limit)
    fail("[train] the run needs an estimated ", format_bytes(total_bytes), " (model ", format_bytes(model_bytes),
         ", trainable state ", format_bytes(train_bytes), ", activations ", format_bytes(work_bytes),
         " for micro-batches of ", o.batch_size, " x ", longest, " tokens) but ",
         o.max_memory > 0 ? "--max-memory allows " : "the machine has ", format_bytes(limit),
         o.max_memory > 0 || local == 1 ? "" : " for each of the " + std::to_string(local) + " ranks on it",
         ". To fit: a smaller --batch-size (with a larger --grad-accum for the same effective batch), a "
         "shorter --max-length, --recompute",
         full ? ", LoRA (--method lora) instead of full fine-tuning" : ", --dtype bf16 for the frozen base", ".");
}

// Steps of the run. A step trains one global batch of the epoch's plan (plan_step_batches), cut
// into micro-batches of --batch-size shared among the ranks; the last step of an epoch holds
// what is left of it.
struct StepPlan {
  int64_t global_batch = 0;    // sequences per step: batch size x grad_accum x ranks
  int64_t train_examples = 0;
  int64_t steps_per_epoch = 0;
  int64_t total = 0;   // optimizer steps
  int64_t warmup = 0;  // warmup steps of the schedule
};

StepPlan plan_steps(const TrainOptions& o, int64_t train_examples, int ranks) {
  StepPlan s;
  s.global_batch = o.batch_size * o.grad_accum * ranks;
  s.train_examples = train_examples;
  s.steps_per_epoch = (train_examples + s.global_batch - 1) / s.global_batch;
  s.total = o.max_steps > 0 ? o.max_steps : s.steps_per_epoch * o.epochs;
  s.warmup = int64_t(std::ceil(o.warmup_ratio * double(s.total)));
  return s;
}

// What a checkpoint records of how its steps were made: a run resumes only where its steps would
// be the same (trainer_state.json's "step_batches").
constexpr const char* kStepBatches = "global batch, token mean";

// Loads the latest complete checkpoint under --resume into the trainables and the optimizer;
// returns its step (0 without --resume).
int64_t resume_from_checkpoint(const TrainOptions& o, const Model& model, Trainables& t, AdamW& adam,
                               DataParallel& dp, const StepPlan& plan, const Log& log) {
  if (o.resume_dir.empty()) return 0;
  const auto ck = find_checkpoint(o.resume_dir);
  TAIA_CHECK(ck.has_value(), o.resume_dir, ": no complete checkpoint to resume from");
  Json state = parse_json_file(*ck + "/trainer_state.json");
  const int64_t step = json_int(state, "step", *ck);
  TAIA_CHECK(json_string_or(state, "method", "", *ck) == method_name(o.method), *ck, ": checkpoint is from --method ",
             json_string_or(state, "method", "", *ck), ", this run is ", method_name(o.method));
  // Steps are global batches of the data (plan_step_batches): a run resumes with any batch size,
  // --grad-accum and number of ranks whose product is the checkpoint's global batch.
  TAIA_CHECK(json_string_or(state, "step_batches", "", *ck) == kStepBatches, *ck, ": the checkpoint was written "
             "by a taia that grouped each micro-batch by itself and averaged the loss per micro-batch; this one "
             "trains each step on one global batch with the loss averaged over all its target tokens, so the "
             "run would not continue the same way. Start a new run (or resume with the taia that wrote it)");
  const int64_t saved = json_int(state, "global_batch", *ck);
  TAIA_CHECK(saved == plan.global_batch, *ck, ": the checkpoint's steps took ", saved, " sequences (--batch-size "
             "x --grad-accum x ranks), this run's take ", plan.global_batch, " (", o.batch_size, " x ", o.grad_accum,
             " x ", dp.comm().size(), " ranks): to continue the same run, choose them so that their product is ",
             saved);
  if (o.method == TrainMethod::Full) {
    SafetensorsFile f(*ck + "/trainable.safetensors");
    for (const ParamRef& p : t.params) {
      const SafetensorsTensor* s = f.find(p.name);
      TAIA_CHECK(s && s->dtype == DType::F32 && size_t(s->view().numel()) == p.size, f.path(), ": expected tensor '",
                 p.name, "' with ", p.size, " F32 elements");
      std::memcpy(p.value, s->data, p.size * 4);
    }
  } else {
    LoraAdapter saved = load_peft_adapter(*ck, model.config);
    for (int64_t l = 0; l < int64_t(t.lora.layers.size()); ++l)
      for (int i = 0; i < kNumProj; ++i)
        if (LoraModule* m = t.lora.find(l, Proj(i))) {
          const LoraModule* s = saved.find(l, Proj(i));
          TAIA_CHECK(s && s->A.size() == m->A.size() && s->B.size() == m->B.size(), *ck,
                     ": adapter does not match this run's LoRA settings at ", t.lora.module_name(l, Proj(i)));
          m->A = s->A;
          m->B = s->B;
        }
    for (int64_t l = 0; l < int64_t(t.lora.molora.layers.size()); ++l)
      for (int i = 0; i < kNumProj; ++i)
        if (MoloraModule* m = t.lora.molora.find(l, Proj(i))) {
          const MoloraModule* s = saved.molora.find(l, Proj(i));
          TAIA_CHECK(s && s->A.size() == m->A.size() && s->router_w.size() == m->router_w.size() &&
                         s->top_k == m->top_k, *ck, ": the checkpoint's experts do not match this run's MoLoRA "
                     "settings at ", t.lora.module_name(l, Proj(i)));
          m->A = s->A;
          m->B = s->B;
          m->router_w = s->router_w;
          m->router_b = s->router_b;
        }
  }
  dp.load_optimizer(adam, *ck + "/optimizer.safetensors");
  log("resumed from " + *ck + " at step " + std::to_string(step));
  return step;
}

// OUT/metrics.jsonl: one JSON line per step, flushed as written. On resume the lines up to the
// checkpoint's step are kept (a torn last line from a killed run is dropped).
class MetricsLog {
 public:
  MetricsLog(const std::string& out_dir, int64_t start_step) : path_(out_dir + "/metrics.jsonl") {
    write_file_atomic(path_, start_step > 0 && file_exists(path_) ? lines_up_to(start_step) : "");
    out_.open(path_, std::ios::app);
    TAIA_CHECK(out_.good(), path_, ": cannot open for appending: ", std::strerror(errno));
  }
  void append(const Json& m, int64_t step) {
    out_ << m.dump() << "\n" << std::flush;
    TAIA_CHECK(out_.good(), path_, ": write failed at step ", step, ": ", std::strerror(errno));
  }

 private:
  std::string lines_up_to(int64_t step) const {
    std::vector<std::string> lines;
    std::istringstream in(read_text_file(path_));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(line);
    std::string kept;
    for (size_t i = 0; i < lines.size(); ++i) {
      Json m;
      try {
        m = parse_json_text(lines[i], path_ + ":" + std::to_string(i + 1));
      } catch (const Error&) {
        if (i + 1 == lines.size()) break;  // the line a killed run was writing
        throw;
      }
      if (m.value("step", int64_t(0)) <= step) kept += lines[i] + "\n";
    }
    return kept;
  }
  std::string path_;
  std::ofstream out_;
};

// The run in progress: what a step, a validation pass and a checkpoint need.
struct Run {
  const TrainOptions& o;
  Model& model;
  Trainables& t;
  TrainEngine& engine;
  AdamW& adam;
  DataParallel& dp;
  const DataSets& data;
  const StepPlan& plan;
  Schedule schedule;
  int32_t pad = 0;
  std::vector<std::vector<size_t>> epoch_steps;  // the planned epoch's steps (example indices)
  int64_t planned_epoch = -1;
  std::string last_checkpoint;
};

// Mean loss per target token of the validation set; ranks take its batches in turn.
double validation_loss(Run& r) {
  double sum_count[2] = {0, 0};  // summed loss, target tokens
  const std::vector<Example>& val = r.data.val;
  const size_t B = size_t(r.o.batch_size), K = size_t(r.dp.comm().size());
  for (size_t s = B * size_t(r.dp.comm().rank()); s < val.size(); s += B * K) {
    std::vector<size_t> idx;
    for (size_t i = s; i < std::min(val.size(), s + B); ++i) idx.push_back(i);
    const TrainBatch b = make_batch(val, idx, r.pad);
    sum_count[0] += r.engine.forward_loss(b);
    sum_count[1] += double(b.target_count());
  }
  r.dp.comm().allreduce_sum(sum_count, 2);
  return sum_count[1] > 0 ? sum_count[0] / sum_count[1] : -1.0;
}

// Every rank takes part (the ranks' parameters are compared, a sharded optimizer state is
// gathered); rank 0 writes.
void save_checkpoint(Run& r, int64_t step) {
  r.dp.check_parameters_agree("at step " + std::to_string(step));
  const bool writer = r.dp.comm().rank() == 0;
  std::optional<CheckpointWriter> w;
  if (writer) {
    w.emplace(r.o.out_dir, step);
    if (r.o.method == TrainMethod::Full) {
      std::vector<TensorView> views;
      for (const ParamRef& p : r.t.params) views.push_back(*r.model.find(p.name));
      write_safetensors(w->tmp + "/trainable.safetensors", views);
    } else {
      save_peft_adapter(r.t.lora, w->tmp, r.o.model_path);
    }
  }
  r.dp.save_optimizer(r.adam, writer ? w->tmp + "/optimizer.safetensors" : std::string());
  if (writer)
    w->commit(Json{{"step", step}, {"total_steps", r.plan.total}, {"method", method_name(r.o.method)}, {"seed", r.o.seed},
                   {"targets", targets_spec(r.o.targets)}, {"ranks", r.dp.comm().size()},
                   {"global_batch", r.plan.global_batch}, {"step_batches", kStepBatches}});
  // Every rank names it in a later error (any of them may be the one that reports).
  r.last_checkpoint = r.o.out_dir + "/checkpoint-" + std::to_string(step);
}

// The examples of optimizer step `step` (1-based): a global batch of its epoch's plan.
const std::vector<size_t>& step_examples(Run& r, int64_t step) {
  const int64_t epoch = (step - 1) / r.plan.steps_per_epoch;
  if (epoch != r.planned_epoch) {
    r.epoch_steps = plan_step_batches(r.data.train, r.plan.global_batch, r.o.seed, epoch);
    r.planned_epoch = epoch;
  }
  return r.epoch_steps[size_t((step - 1) % r.plan.steps_per_epoch)];
}

// Epochs done after step `step` (fractional), for metrics.jsonl.
double epochs_done(Run& r, int64_t step) {
  const int64_t before = (step - 1) % r.plan.steps_per_epoch * r.plan.global_batch;
  return double((step - 1) / r.plan.steps_per_epoch) +
         double(before + int64_t(step_examples(r, step).size())) / double(r.plan.train_examples);
}

// One step's work for this rank: rank r runs the step's micro-batches [r * grad_accum,
// (r + 1) * grad_accum) (none, at the end of an epoch, when the step is short).
struct StepWork {
  std::vector<TrainBatch> micro;  // this rank's
  int64_t targets = 0;            // target tokens of the step over all ranks: the loss's divisor
};

StepWork step_work(Run& r, int64_t step) {
  const std::vector<size_t>& examples = step_examples(r, step);
  const auto micro = split_micro_batches(examples, r.o.batch_size);
  StepWork w;
  // Every rank holds the whole data set (check_ranks_agree), so each counts the step's target
  // tokens itself: no collective before the backward passes.
  w.targets = count_targets(r.data.train, examples);
  const int64_t first = int64_t(r.dp.comm().rank()) * r.o.grad_accum;
  for (int64_t k = first; k < std::min(int64_t(micro.size()), first + r.o.grad_accum); ++k)
    w.micro.push_back(make_batch(r.data.train, micro[size_t(k)], r.pad));
  return w;
}

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0;
  int64_t tokens = 0;   // padded tokens processed over all ranks
  TrainEngine::RouterStats router;  // MoLoRA, summed over ranks
  double comm_s = 0;    // seconds this rank spent in collectives
  double comm_wait_s = 0;  // --overlap-comm: seconds the step waited for them after the backward
};

// The step's loss, tokens and MoLoRA routing counts summed over the ranks.
void reduce_step_sums(Run& r, StepResult& s) {
  if (!r.dp.comm().distributed()) return;
  // A rank without micro-batches this step (the run's last step) has no routing counts yet.
  s.router.slots_per_expert.resize(r.t.lora.molora.empty() ? 0 : size_t(r.t.lora.molora.config.experts), 0);
  std::vector<double> sums{s.loss, double(s.tokens), s.router.balance_loss, double(s.router.passes)};
  for (int64_t c : s.router.slots_per_expert) sums.push_back(double(c));
  r.dp.comm().allreduce_sum(sums.data(), sums.size());
  s.loss = sums[0];
  s.tokens = int64_t(sums[1]);
  s.router.balance_loss = sums[2];
  s.router.passes = int64_t(sums[3]);
  for (size_t e = 0; e < s.router.slots_per_expert.size(); ++e) s.router.slots_per_expert[e] = int64_t(sums[4 + e]);
}

// One optimizer step: forward and backward of each of this rank's micro-batches, every target
// token of the step weighing 1 / (the step's target tokens over all ranks), so that the step's
// loss and gradient are those of its global batch however it is split; the gradients summed over
// the ranks, clipping, the NaN/Inf guard, AdamW (on this rank's shard when sharded).
StepResult train_step(Run& r, int64_t step) {
  r.dp.comm().take_comm_seconds();  // what startup, validation or a checkpoint spent is not this step's
  if (r.o.method == TrainMethod::Full) r.t.grads.zero(); else r.t.lora.zero_grad();
  r.engine.reset_router_stats();
  const StepWork work = step_work(r, step);
  StepResult s;
  // The last backward pass of the step finishes each layer's gradients: with --overlap-comm they
  // are summed over the ranks while the earlier layers run.
  std::function<void(int64_t)> hook;
  if (r.dp.overlapping()) hook = [&r](int64_t layer) { r.dp.layer_done(layer); };
  s.loss = accumulate_step_gradients(r.engine, work.micro, work.targets, uint64_t(step), hook);
  for (const TrainBatch& b : work.micro) s.tokens += b.B * b.L;
  s.comm_wait_s = r.dp.reduce_gradients();
  s.router = r.engine.router_stats();
  reduce_step_sums(r, s);
  s.loss /= double(work.targets);  // summed over the ranks by reduce_step_sums
  s.grad_norm = r.dp.clip_gradients(r.o.max_grad_norm);
  if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm))
    fail("[train] non-finite ", std::isfinite(s.loss) ? "gradient norm" : "loss", " at step ", step,
         "; stopped without updating. Last good checkpoint: ",
         r.last_checkpoint.empty() ? std::string("none (try a lower --lr)") : r.last_checkpoint);
  s.lr = scheduled_lr(r.schedule, r.o.lr, step - 1, r.plan.total, r.plan.warmup);
  r.adam.step(s.lr);
  r.dp.gather_parameters();
  s.comm_s = r.dp.comm().take_comm_seconds();
  return s;
}

// MoLoRA: the balance loss (mean over the routers' passes) and each expert's share of the routing
// slots over all routers of the step.
void add_router_metrics(Json& m, const TrainEngine::RouterStats& st) {
  if (st.passes == 0) return;
  m["balance_loss"] = st.balance_loss / double(st.passes);
  int64_t total = 0;
  for (int64_t c : st.slots_per_expert) total += c;
  Json load = Json::array();
  for (int64_t c : st.slots_per_expert) load.push_back(total ? double(c) / double(total) : 0.0);
  m["expert_load"] = load;
}

// The steps from start_step + 1 to the end: metrics, validation, progress, checkpoints.
void train_loop(Run& r, int64_t start_step, TrainSummary& summary) {
  const TrainOptions& o = r.o;
  const bool writer = r.dp.comm().rank() == 0;  // rank 0 alone writes metrics and checkpoints
  std::optional<MetricsLog> metrics;
  if (writer) {
    metrics.emplace(o.out_dir, start_step);
    remove_stale_checkpoint_temps(o.out_dir);
  }
  ProgressBar progress("step", r.plan.total, o.progress && writer);
  const auto t_start = Clock::now();
  int64_t tokens_done = 0;
  for (int64_t step = start_step + 1; step <= r.plan.total; ++step) {
    const auto t0 = Clock::now();
    const StepResult s = train_step(r, step);
    tokens_done += s.tokens;
    const double step_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
    Json m{{"step", step},
           {"epoch", epochs_done(r, step)},
           {"loss", s.loss},
           {"lr", s.lr},
           {"grad_norm", s.grad_norm},
           {"tokens_per_s", double(s.tokens) / step_s},
           {"elapsed", elapsed}};
    if (r.dp.comm().distributed()) {
      m["ranks"] = r.dp.comm().size();
      m["global_batch"] = r.plan.global_batch;
      m["comm_s"] = s.comm_s;
      if (r.dp.overlapping()) {
        m["comm_wait_s"] = s.comm_wait_s;
        m["buckets_during_backward"] = r.dp.buckets_during_backward();
        m["buckets"] = r.dp.buckets();
      }
    }
    add_router_metrics(m, s.router);
    if ((o.eval_every > 0 && step % o.eval_every == 0) || (step == r.plan.total && !r.data.val.empty())) {
      m["val_loss"] = validation_loss(r);
      summary.final_val_loss = m["val_loss"].get<double>();
    }
    if (metrics) metrics->append(m, step);
    summary.final_loss = s.loss;
    if (progress.drawing()) {
      char extra[96];
      std::snprintf(extra, sizeof(extra), "loss %.4f lr %.2e %.0f tok/s", s.loss, s.lr, double(tokens_done) / elapsed);
      progress.update(step, extra, start_step);
    }
    const bool stop = o.on_step && !o.on_step(m) && step < r.plan.total;
    if ((o.save_every > 0 && step % o.save_every == 0) || step == r.plan.total || stop) save_checkpoint(r, step);
    if (stop) {
      summary.stopped = true;
      summary.steps = step;
      break;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
  summary.tokens_per_s = elapsed > 0 ? double(tokens_done) / elapsed : 0;
}

// The run's result in --out: a PEFT adapter folder (LoRA) or a complete HF model folder (full).
void save_result(const TrainOptions& o, Model& model, const Trainables& t) {
  if (o.method == TrainMethod::Full)
    save_model_folder(model, o.out_dir, DType::F32, o.model_path);
  else
    save_peft_adapter(t.lora, o.out_dir, o.model_path);
}

std::unique_ptr<Model> load_base(const TrainOptions& o) {
  const bool full = o.method == TrainMethod::Full;
  TAIA_CHECK(!full || !has_quantized_weights(o.model_path), "[train] ", o.model_path, " holds quantized weights, "
             "which full fine-tuning cannot update: fine-tune a LoRA on it (--method lora, the frozen base stays "
             "quantized), or dequantize it first (e.g. to a BF16 GGUF or HF folder) for full fine-tuning");
  LoadOptions load;
  if (full) load.linear_dtype = DType::F32;
  else load.linear_dtype = o.dtype;
  auto model = load_model(o.model_path, load);
  TAIA_CHECK(o.compute != Precision::BF16 || (!model->has_block_weights() && model->linear_dtype != DType::F16), "[train] "
             "--compute bf16 multiplies F32 or BF16 base weights; ", o.model_path, " holds ",
             model->has_block_weights() ? "quantized" : "F16", " weights, which multiply through F32 tiles (use "
             "--compute f32, or --dtype bf16 to convert them on load)");
  return model;
}

std::string describe_plan(const TrainOptions& o, const Model& model, const ModuleMask& targets, const Trainables& t,
                          const StepPlan& plan, int ranks) {
  const LoraAdapter& lr = t.lora;
  const auto layout = model.config.proj_layout();
  std::string s = "train: " + (o.method == TrainMethod::Full ? "full fine-tuning of " + targets_to_string(targets, layout)
                                                  : "LoRA of " + targets_to_string(lr.config.targets, layout));
  if (!lr.molora.empty())
    s += ", MoLoRA (" + std::to_string(lr.molora.config.experts) + " experts, top-" +
         std::to_string(lr.molora.config.top_k) + ") on " + targets_to_string(lr.molora.config.targets);
  s += ", " + std::to_string(t.count) + " trainable parameters, " + std::to_string(plan.total) + " steps of " +
       std::to_string(o.grad_accum) + " x " + std::to_string(o.batch_size) + " sequences";
  if (ranks > 1)
    s += " per rank on " + std::to_string(ranks) + " ranks (global batch " +
         std::to_string(plan.global_batch) + " sequences per step" +
         (o.shard_optimizer ? ", optimizer state sharded" : "") +
         (o.overlap_comm ? ", gradients summed during the backward pass" : "") + ")";
  return s;
}

// Every rank must train the same thing: the same options, tokenized data and starting values.
void check_ranks_agree(Comm& comm, const TrainOptions& o, const DataSets& data) {
  if (!comm.distributed()) return;
  // What shapes the run's numbers or its collectives (bucket size and sharding must agree, or the
  // ranks' collectives would not match).
  const Json options =
      Json{{"method", method_name(o.method)}, {"targets", targets_spec(o.targets)}, {"lr", o.lr}, {"seed", o.seed}, {"batch", o.batch_size},
           {"accum", o.grad_accum}, {"epochs", o.epochs}, {"max_steps", o.max_steps}, {"schedule", o.schedule},
           {"warmup", o.warmup_ratio}, {"decay", o.adamw.weight_decay}, {"clip", o.max_grad_norm},
           {"rank", o.lora.rank}, {"alpha", o.lora.alpha}, {"dropout", o.lora.dropout}, {"rslora", o.lora.use_rslora},
           {"experts", o.molora.experts}, {"top_k", o.molora.top_k}, {"balance", o.molora.balance_coef},
           {"molora_targets", targets_spec(o.molora_targets)}, {"max_length", o.max_length}, {"val_split", o.val_split},
           {"eval_every", o.eval_every}, {"save_every", o.save_every}, {"compute", precision_name(o.compute)}, {"dtype", dtype_option_word(o.dtype)},
           {"shard", o.shard_optimizer}, {"bucket_mb", o.bucket_mb}};
  for (const auto& [key, value] : options.items()) {
    const std::string text = value.dump();
    comm.check_same(hash_bytes(text.data(), text.size()), "the training option " + key + " (this rank: " + text + ")");
  }
  uint64_t h = 0;
  for (const auto* set : {&data.train, &data.val})
    for (const Example& e : *set) {
      h = hash_bytes(e.ids.data(), e.ids.size() * sizeof(int32_t), h);
      h = hash_bytes(e.targets.data(), e.targets.size() * sizeof(int32_t), h);
    }
  comm.check_same(h, "the tokenized training and validation data (are --data, --model and the tokenizer the "
                  "same files on every machine?)");
}

// LoRA trains on a frozen base the parameter hash does not cover: its weights are compared too.
void check_base_agrees(Comm& comm, Model& model) {
  if (!comm.distributed()) return;
  uint64_t h = 0;
  for (const ExpectedTensor& e : expected_tensors(model.config))
    if (const TensorView* t = model.find(e.name)) h = hash_bytes(t->data, t->nbytes(), h);
  comm.check_same(h, "the base model's weights (is --model the same file on every machine?)");
}

}  // namespace

TrainSummary run_training(const TrainOptions& o, const Log& log_all) {
  Comm& comm = Comm::world();
  const Log log = comm.rank() == 0 ? log_all : Log([](const std::string&) {});
  set_num_threads(o.threads);
  check_options(o);
  const bool full = o.method == TrainMethod::Full;
  const ModuleMask& targets = o.targets;
  auto model = load_base(o);
  auto tok = load_tokenizer(o.tokenizer_path.empty() ? o.model_path : o.tokenizer_path);
  TAIA_CHECK(tok->vocab_size() <= model->config.vocab_size, "[train] the tokenizer has ", tok->vocab_size(),
             " tokens but the model only ", model->config.vocab_size);
  const ChatTemplate chat = o.chat_template.empty() ? chat_template_for(*tok) : chat_template_by_name(o.chat_template);
  const DataSets data = load_data_sets(o, *tok, chat, log);
  check_ranks_agree(comm, o, data);
  check_base_agrees(comm, *model);

  auto trainables = make_trainables(o, *model, targets);
  DataParallel dp(comm, trainables->params,
                  {o.shard_optimizer, std::max<size_t>(1, size_t(o.bucket_mb * double(1 << 20) / sizeof(float))),
                   o.overlap_comm});
  EngineOptions eo;
  eo.recompute = o.recompute;
  eo.dropout_seed = o.seed;
  eo.compute_bf16 = o.compute == Precision::BF16;
  eo.validation = !data.val.empty();
  check_memory(o, *model, *trainables, data.longest, eo, dp, log);
  TrainEngine engine(*model, full ? nullptr : &trainables->lora, full ? &trainables->grads : nullptr, eo);
  AdamW adam(dp.optimizer_params(), o.adamw);

  const StepPlan plan = plan_steps(o, int64_t(data.train.size()), comm.size());
  log(describe_plan(o, *model, targets, *trainables, plan, comm.size()));
  const int64_t start_step = resume_from_checkpoint(o, *model, *trainables, adam, dp, plan, log);
  TAIA_CHECK(start_step <= plan.total, "[train] the checkpoint is at step ", start_step, ", past the planned ",
             plan.total);
  dp.check_parameters_agree("before the first step");

  if (comm.rank() == 0) make_directories(o.out_dir);
  Run run{o, *model, *trainables, engine, adam, dp, data, plan, parse_schedule(o.schedule),
          tok->eos_id.value_or(0), {}, -1, {}};
  TrainSummary summary;
  summary.steps = plan.total;
  train_loop(run, start_step, summary);
  if (comm.rank() == 0 && !summary.stopped) save_result(o, *model, *trainables);
  summary.output = summary.stopped ? run.last_checkpoint : o.out_dir;
  summary.ranks = comm.size();
  summary.global_batch = plan.global_batch;
  for (double b : comm.allgather_value(double(peak_rss_bytes()))) summary.peak_rss_per_rank.push_back(int64_t(b));
  return summary;
}

}  // namespace taia
