#include "demo/experiment.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "core/threading.h"
#include "eval/evaluate.h"
#include "eval/generate.h"
#include "eval/report.h"
#include "model/init.h"
#include "model/loader.h"
#include "model/merge.h"
#include "model/peft_adapter.h"
#include "model/tokenizer_loader.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/spm_trainer.h"
#include "train/trainer.h"

namespace taia::demo {
namespace {

using Log = std::function<void(const std::string&)>;
namespace fs = std::filesystem;

// Bumped whenever the world, corpus, tokenizer or pretraining recipe changes, so that cached
// models made by an older generator are not reused.
constexpr const char* kGeneratorVersion = "taia-demo-2";

// ChatML without a default system turn (recognised by tokenizer/chat_template.cpp, usable by HF).
constexpr const char* kChatMlJinja =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const std::vector<std::string> kModes = {"base", "vanilla", "taia", "taif"};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fmt(double v, int digits = 1) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

void write_jsonl(const std::string& path, const std::vector<Json>& records) {
  std::string text;
  for (const Json& r : records) text += r.dump() + "\n";
  write_file_atomic(path, text);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / double(v.size());
}
// Sample standard deviation over seeds (0 for one seed).
double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size() - 1));
}

// Everything that determines the pretrained model, as text (its hash names the cache entry).
std::string pretrain_recipe(const Preset& p, uint64_t world_seed) {
  std::ostringstream s;
  s << kGeneratorVersion << " world_seed=" << world_seed << " known_test=" << p.world.known_test
    << " known_mix=" << p.world.known_mix << " fresh=" << p.world.fresh << " rounds=" << p.corpus_rounds
    << " per_doc=" << p.sentences_per_doc << " filler=" << p.filler << " vocab=" << p.vocab << " hidden=" << p.hidden
    << " intermediate=" << p.intermediate << " layers=" << p.layers << " heads=" << p.heads
    << " max_positions=" << p.max_positions << " steps=" << p.pretrain_steps << " batch=" << p.pretrain_batch
    << " max_length=" << p.pretrain_max_length << " lr=" << p.pretrain_lr;
  return s.str();
}

// rm -rf that throws a taia::Error naming the folder.
void remove_folder(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  TAIA_CHECK(!ec, "[demo] ", dir, ": cannot remove the folder: ", ec.message());
}

// Removes "<dir>.tmp-PID" folders left by killed runs (their process is gone).
void remove_dead_builds(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d.parent_path(), ec)) return;
  const std::string prefix = d.filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(d.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::atol(name.c_str() + prefix.size());
    if (pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
  }
}

// The pretrained model of the preset: from the cache, or made now (tokenizer trained on the
// corpus, random LLaMA initialisation, full training with our trainer) and cached. The cache
// entry is built in a temporary folder and renamed into place, so an interrupted run leaves
// nothing half-written that a later run would trust.
std::string ensure_pretrained(const Preset& p, const World& w, uint64_t world_seed, const std::string& cache_dir,
                              int threads, bool progress, const Log& log, Json* info) {
  const std::string recipe = pretrain_recipe(p, world_seed);
  const std::string dir = cache_dir + "/demo/" + p.name + "-" + hex16(fnv1a(recipe));
  const std::string model_dir = dir + "/model";
  (*info)["cache"] = dir;
  (*info)["recipe"] = recipe;
  if (file_exists(model_dir + "/config.json") && file_exists(dir + "/COMPLETE")) {
    log("[demo] pretrained model: cached at " + model_dir);
    (*info)["cached"] = true;
    return model_dir;
  }
  (*info)["cached"] = false;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
  remove_dead_builds(dir);
  remove_folder(tmp);
  make_directories(tmp + "/init");
  auto docs = pretraining_documents(w, p.corpus_rounds, p.filler, p.sentences_per_doc, world_seed * 2 + 1);
  const auto chats = chat_documents(w, p.corpus_rounds, 3, world_seed * 2 + 1);
  const size_t n_facts = docs.size();
  docs.insert(docs.end(), chats.begin(), chats.end());
  // Chat documents spread evenly among the fact documents (a fixed interleaving, no RNG).
  std::vector<std::string> mixed;
  for (size_t i = 0, j = n_facts; i < n_facts || j < docs.size();) {
    if (i < n_facts && (j >= docs.size() || (i + 1) * chats.size() <= (j - n_facts + 1) * n_facts)) mixed.push_back(docs[i++]);
    else mixed.push_back(docs[j++]);
  }
  docs = std::move(mixed);
  std::string corpus;
  for (const auto& d : docs) corpus += d + "\n\n";
  write_file_atomic(tmp + "/corpus.txt", corpus);
  log("[demo] corpus: " + std::to_string(n_facts) + " fact documents, " + std::to_string(chats.size()) +
      " chat documents, " + std::to_string(corpus.size()) +
      " bytes; training the tokenizer (SentencePiece BPE, " + std::to_string(p.vocab) + " pieces)");
  SpmTrainOptions so;
  so.vocab_size = p.vocab;
  so.user_defined_symbols = {"<|im_start|>", "<|im_end|>"};
  train_sentencepiece(docs, so, tmp + "/init/tokenizer.model");
  write_file_atomic(tmp + "/init/tokenizer_config.json",
                    Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"add_bos_token", true},
                         {"add_eos_token", false}, {"tokenizer_class", "LlamaTokenizer"}, {"chat_template", kChatMlJinja},
                         {"model_max_length", p.max_positions}}
                            .dump(2) + "\n");
  write_file_atomic(tmp + "/init/special_tokens_map.json",
                    Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"},
                         {"additional_special_tokens", {"<|im_start|>", "<|im_end|>"}}}
                            .dump(2) + "\n");
  Json cfg{{"architectures", {"LlamaForCausalLM"}},
           {"model_type", "llama"},
           {"hidden_size", p.hidden},
           {"intermediate_size", p.intermediate},
           {"num_hidden_layers", p.layers},
           {"num_attention_heads", p.heads},
           {"num_key_value_heads", p.heads},
           {"vocab_size", p.vocab},
           {"max_position_embeddings", p.max_positions},
           {"rms_norm_eps", 1e-5},
           {"rope_theta", 10000.0},
           {"tie_word_embeddings", false},
           {"bos_token_id", 1},
           {"eos_token_id", 2},
           {"torch_dtype", "float32"}};
  auto model = init_model(config_from_hf_json(cfg, "[demo] model config"), world_seed + 1, DType::F32);
  save_hf_folder(*model, tmp + "/init", DType::F32);
  model.reset();
  TrainOptions t;
  t.model_path = tmp + "/init";
  t.data_path = tmp + "/corpus.txt";
  t.out_dir = tmp + "/model";
  t.method = "full";
  t.lr = p.pretrain_lr;
  t.schedule = "cosine";
  t.warmup_ratio = 0.05;
  t.max_steps = p.pretrain_steps;
  t.batch_size = p.pretrain_batch;
  t.grad_accum = 1;
  t.max_length = p.pretrain_max_length;
  t.seed = world_seed + 7;
  t.threads = threads;
  t.progress = progress;
  log("[demo] pretraining " + std::to_string(p.layers) + " layers x " + std::to_string(p.hidden) + " (" +
      std::to_string(p.pretrain_steps) + " steps of " + std::to_string(p.pretrain_batch) + " documents)");
  const TrainSummary s = run_training(t, [&](const std::string& line) {
    if (line.rfind("warning: ", 0) != 0 && line.find("truncated") == std::string::npos) log("  " + line);
  });
  std::error_code moved;
  fs::rename(tmp + "/model/metrics.jsonl", tmp + "/pretrain-metrics.jsonl", moved);
  TAIA_CHECK(!moved, "[demo] ", tmp, "/model/metrics.jsonl: cannot move the pretraining metrics: ", moved.message());
  remove_folder(tmp + "/init");
  write_file_atomic(tmp + "/COMPLETE", recipe + "\n");
  std::error_code ec;
  if (file_exists(dir + "/COMPLETE")) {
    fs::remove_all(tmp, ec);  // another run finished the same model first: keep its entry
  } else {
    fs::remove_all(dir, ec);  // an incomplete entry (no COMPLETE marker)
    fs::rename(tmp, dir, ec);
  }
  TAIA_CHECK(!ec || file_exists(dir + "/COMPLETE"), "[demo] ", dir, ": cannot move the pretrained model into the cache: ",
             ec.message());
  (*info)["pretrain_seconds"] = seconds_since(t0);
  (*info)["pretrain_final_loss"] = s.final_loss;
  (*info)["pretrain_tokens_per_s"] = s.tokens_per_s;
  log("[demo] pretrained in " + fmt(seconds_since(t0)) + " s, final loss " + fmt(s.final_loss, 3) + "; cached at " + dir);
  return model_dir;
}

// Held-out text of a user's model's own domain: samples from the base model itself.
std::vector<std::string> sample_own_text(const std::string& model_path, const Tokenizer& tok, int64_t samples,
                                         int64_t tokens) {
  auto model = load_model(model_path);
  Decoder d(*model);
  std::vector<std::string> texts;
  for (int64_t i = 0; i < samples; ++i) {
    GenerateOptions g;
    g.max_new_tokens = std::min<int64_t>(tokens, model->config.max_position_embeddings - 2);
    g.sampling.temperature = 1.0f;
    g.sampling.top_p = 0.95f;
    g.sampling.seed = uint64_t(1000 + i);
    std::vector<int32_t> prompt;
    if (tok.bos_id) prompt.push_back(*tok.bos_id);
    const auto r = generate(d, prompt, g);
    texts.push_back(tok.decode(r.output_ids, true));
  }
  return texts;
}

// The task files, read once and scored after every fine-tuning run.
struct TaskSet {
  std::vector<Task> main;          // scored with 0 shots, in this order
  std::vector<Task> fewshot;       // the task scored with demonstrations (none or one)
  std::string fewshot_file;        // demonstrations ("": the task's other examples)
};

// Scores of one evaluation: task key -> mode -> results.json leaf.
using Scores = std::map<std::string, std::map<std::string, Json>>;

// shots > 0: the run had one shot count, so its keys lack the "@Kshot" suffix; add it.
void collect(const Json& results, const std::map<std::string, std::string>& rename, int64_t shots, Scores* out) {
  for (const auto& [task, modes] : results["tasks"].items())
    for (const auto& [mode, entry] : modes.items()) {
      auto it = rename.find(mode);
      const std::string key = shots > 0 && task.find('@') == std::string::npos ? task + "@" + std::to_string(shots) + "shot" : task;
      (*out)[key][it == rename.end() ? mode : it->second] = entry;
    }
}

Scores evaluate(Decoder& decoder, const Tokenizer& tok, const LoraAdapter* adapter, const std::vector<std::string>& modes,
                const TaskSet& tasks, const Preset& p, const std::string& chat_template,
                const std::map<std::string, std::string>& rename, const std::string& out_dir, bool progress) {
  Scores scores;
  EvalSettings s;
  s.modes = modes;
  s.chat_template = chat_template;
  s.max_new_tokens = p.max_new_tokens;
  s.batch_size = 16;
  s.max_length = 256;
  s.progress = progress;
  const Log quiet = [](const std::string&) {};
  collect(run_eval(decoder, tok, adapter, tasks.main, s, out_dir, Json{{"demo", true}}, quiet), rename, 0, &scores);
  std::vector<int64_t> shots;
  for (int64_t k : p.shots)
    if (k > 0) shots.push_back(k);
  if (!shots.empty() && !tasks.fewshot.empty()) {
    s.shots = shots;
    s.fewshot_file = tasks.fewshot_file;
    collect(run_eval(decoder, tok, adapter, tasks.fewshot, s, out_dir + "-fewshot", Json{{"demo", true}}, quiet),
            rename, shots.size() == 1 ? shots[0] : 0, &scores);
  }
  return scores;
}

// "knowledge_chat_gen@2shot" -> ("knowledge_chat_gen", 2); plain names are 0 shots.
std::pair<std::string, int64_t> split_shots(const std::string& key) {
  const size_t at = key.rfind('@');
  if (at == std::string::npos || key.size() < at + 6 || key.compare(key.size() - 4, 4, "shot") != 0) return {key, 0};
  return {key.substr(0, at), std::atoll(key.substr(at + 1).c_str())};
}

}  // namespace

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"default", "quick"};
  return names;
}

Preset preset_by_name(const std::string& name) {
  Preset p;
  p.name = name;
  if (name == "default") {
    p.world = {100, 100, 100};
    p.corpus_rounds = 16;
    p.vocab = 1024;
    p.hidden = 192;
    p.intermediate = 512;
    p.layers = 4;
    p.heads = 4;
    p.pretrain_steps = 1200;
    p.pretrain_batch = 16;
    p.pretrain_lr = 3e-3;
    p.experiments = {"facts-lora", "facts-full", "skill-lora"};
    p.finetune_records = 1200;
    p.finetune_steps = 300;
    p.lora_lr = 2e-3;
    p.retention_docs = 160;
    p.full_lr = 5e-4;
    p.seeds = {1, 2, 3};
    p.shots = {0, 1, 2, 3, 4};
    p.skill_examples = 100;
  } else if (name == "quick") {
    p.world = {20, 20, 20};
    p.corpus_rounds = 20;
    p.vocab = 512;
    p.hidden = 128;
    p.intermediate = 384;
    p.layers = 2;
    p.heads = 4;
    p.pretrain_steps = 300;
    p.pretrain_batch = 16;
    p.pretrain_lr = 3e-3;
    p.experiments = {"facts-lora", "facts-full"};
    p.finetune_records = 300;
    p.finetune_steps = 60;
    p.lora_lr = 2e-3;
    p.retention_docs = 60;
    p.full_lr = 5e-4;
    p.seeds = {1, 2};
    p.shots = {0, 2};
    p.skill_examples = 30;
  } else {
    fail("[demo] preset expected one of default, quick, got '", name, "'");
  }
  return p;
}

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/taia";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/taia";
  return ".taia-cache";
}

Json run_demo(const DemoOptions& o, const Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  Preset p = preset_by_name(o.preset);
  if (!o.seeds.empty()) p.seeds = o.seeds;
  if (!o.experiments.empty()) p.experiments = o.experiments;
  if (o.finetune_steps > 0) p.finetune_steps = o.finetune_steps;
  if (o.lora_lr > 0) p.lora_lr = o.lora_lr;
  if (o.full_lr > 0) p.full_lr = o.full_lr;
  const bool own_model = !o.model_path.empty();
  if (own_model && o.experiments.empty()) p.experiments = {"facts-lora", "skill-lora"};
  for (const auto& e : p.experiments)
    TAIA_CHECK(e == "facts-lora" || e == "facts-full" || e == "skill-lora" || e == "skill-full",
               "[demo] experiment expected facts-lora, facts-full, skill-lora or skill-full, got '", e, "'");
  TAIA_CHECK(!p.seeds.empty(), "[demo] expected at least one seed");
  TAIA_CHECK(!own_model || o.mix == 0, "[demo] --mix adds questions about the generated world's pretrained people; "
             "with --model the model never read them: expected --mix 0, got ", o.mix);
  TAIA_CHECK(o.noise >= 0 && o.noise <= 1 && o.mix >= 0 && o.mix <= 1, "[demo] --noise and --mix expected in [0, 1], got ",
             o.noise, " and ", o.mix);
  if (o.threads > 0) set_num_threads(o.threads);
  const std::string cache = o.cache_dir.empty() ? default_cache_dir() : o.cache_dir;
  const std::string out = o.out_dir;
  make_directories(out + "/data");

  // 1. The world, its fine-tuning sets and task files.
  const World w = make_world(o.world_seed, p.world);
  Json pretrained{{"chance_city", 1.0 / double(w.cities.size())}, {"chance_job", 1.0 / double(w.jobs.size())}};
  const std::string base_path =
      own_model ? o.model_path : ensure_pretrained(p, w, o.world_seed, cache, o.threads, o.progress, log, &pretrained);
  pretrained["model"] = base_path;
  auto tok = load_tokenizer(base_path);
  const bool has_template = chat_template_for(*tok).format != ChatFormat::Raw;
  const std::string chat_template = has_template ? "" : "alpaca";  // a template every tokenizer can spell

  const std::string d = out + "/data/";
  TaskSet task_set;
  std::vector<std::string> task_files;  // scored with 0 shots, in this order
  std::string fewshot_task;
  if (!own_model) {
    write_jsonl(d + "knowledge_chat.jsonl", knowledge_chat_mc(w, Group::KnownTest));
    write_jsonl(d + "knowledge_chat_gen.jsonl", knowledge_chat_gen(w, Group::KnownTest));
    write_jsonl(d + "knowledge_chat_restated.jsonl", knowledge_chat_restated(w, Group::KnownTest));
    write_jsonl(d + "knowledge_completion.jsonl", knowledge_completion(w, Group::KnownTest));
    write_jsonl(d + "knowledge_chat_demos.jsonl", knowledge_chat_mc(w, Group::KnownMix));
    // Held-out documents of the pretraining distribution, one record each (BOS + document, as
    // in pretraining: a long concatenation would reach positions the model never trained).
    std::vector<Json> heldout;
    for (const auto& doc : pretraining_documents(w, 1, p.filler, p.sentences_per_doc, o.world_seed * 2 + 2))
      if (int64_t(heldout.size()) < p.retention_docs) heldout.push_back(Json{{"text", doc}});
    write_jsonl(d + "retention.jsonl", heldout);
    task_files = {d + "knowledge_chat.jsonl", d + "knowledge_chat_gen.jsonl", d + "knowledge_chat_restated.jsonl",
                  d + "knowledge_completion.jsonl"};
    fewshot_task = d + "knowledge_chat.jsonl";
    task_set.fewshot_file = d + "knowledge_chat_demos.jsonl";
  } else {
    log("[demo] retention text: 8 samples of the base model's own text");
    std::vector<Json> own;
    for (auto& text : sample_own_text(base_path, *tok, 8, 128)) own.push_back(Json{{"text", text}});
    write_jsonl(d + "retention.jsonl", own);
    fewshot_task = d + "facts.jsonl";
  }
  write_jsonl(d + "facts.jsonl", facts_task(w));
  write_jsonl(d + "skill.jsonl", skill_task(w, p.skill_examples));
  for (const char* f : {"facts.jsonl", "skill.jsonl", "retention.jsonl"}) task_files.push_back(d + f);
  for (const auto& f : task_files) task_set.main.push_back(load_task(f));
  task_set.fewshot.push_back(load_task(fewshot_task));

  // 2. The base model's scores (the same for every experiment and seed).
  auto base = load_model(base_path);
  Scores base_scores;
  {
    log("[demo] evaluating the base model");
    Decoder dec(*base);
    base_scores = evaluate(dec, *tok, nullptr, {"base"}, task_set, p, chat_template, {}, out + "/runs/base/eval", o.progress);
  }
  if (!own_model) {
    const Json& e = base_scores["knowledge_completion"]["base"];
    pretrained["plain_completion_acc"] = e["value"];
    pretrained["plain_completion_stderr"] = e["stderr"];
    pretrained["plain_completion_n"] = e["n"];
    log("[demo] the pretrained model completes \"X was born in\" / \"X works as a\" correctly for " +
        fmt(100 * e["value"].get<double>()) + " % of " + std::to_string(e["n"].get<int64_t>()) +
        " facts (chance: 6.3 % cities, 8.3 % jobs)");
  }

  // 3. Fine-tuning runs and their evaluation.
  std::map<std::string, std::vector<Scores>> per_experiment;  // experiment -> one Scores per seed
  std::vector<std::pair<std::string, std::vector<Json>>> curves;
  if (!own_model) {
    const std::string m = fs::path(base_path).parent_path().string() + "/pretrain-metrics.jsonl";
    if (file_exists(m)) {
      std::vector<Json> recs;
      for (auto& r : read_json_records(m)) recs.push_back(std::move(r.value));
      curves.push_back({"pretraining", std::move(recs)});
    }
  }
  const int64_t total_runs = int64_t(p.experiments.size() * p.seeds.size());
  const auto t_runs = std::chrono::steady_clock::now();
  int64_t done = 0;
  for (const auto& exp : p.experiments) {
    const std::string kind = exp.substr(0, exp.find('-'));
    const std::string method = exp.substr(exp.find('-') + 1);
    for (uint64_t seed : p.seeds) {
      const auto tr = std::chrono::steady_clock::now();
      const std::string run = out + "/runs/" + exp + "/seed" + std::to_string(seed);
      FinetuneSet set;
      set.kind = kind;
      set.records = p.finetune_records;
      set.noise = o.noise;
      set.mix = o.mix;
      set.seed = seed;
      make_directories(run);
      write_jsonl(run + "/train.jsonl", finetune_records(w, set));
      TrainOptions t;
      t.model_path = base_path;
      t.data_path = run + "/train.jsonl";
      t.out_dir = run + "/train";
      t.method = method;
      t.lora.rank = p.lora_rank;
      t.lora.alpha = p.lora_alpha;
      t.lr = method == "lora" ? p.lora_lr : p.full_lr;
      t.max_steps = p.finetune_steps;
      t.batch_size = p.finetune_batch;
      t.grad_accum = 1;
      t.max_length = 256;
      t.seed = seed;
      t.threads = o.threads;
      t.progress = o.progress;
      t.chat_template = chat_template;
      remove_folder(t.out_dir);  // a previous run's adapter and checkpoints
      const TrainSummary ts = run_training(t, [](const std::string&) {});
      Scores scores;
      if (method == "lora") {
        const LoraAdapter adapter = load_peft_adapter(ts.output, base->config);
        Decoder dec(*base);
        scores = evaluate(dec, *tok, &adapter, {"vanilla", "taia", "taif"}, task_set, p, chat_template, {}, run + "/eval",
                          o.progress);
      } else {
        for (const std::string mode : {"vanilla", "taia", "taif"}) {
          auto ft = load_model(ts.output);
          if (mode != "vanilla") merge_full(*ft, *base, parse_mode(mode), RevertSet{});
          Decoder dec(*ft);
          Scores one = evaluate(dec, *tok, nullptr, {"base"}, task_set, p, chat_template, {{"base", mode}},
                                run + "/eval-" + mode, o.progress);
          for (auto& [task, modes] : one)
            for (auto& [m, e] : modes) scores[task][m] = e;
        }
      }
      if (seed == p.seeds.front()) {
        std::vector<Json> recs;
        for (auto& r : read_json_records(t.out_dir + "/metrics.jsonl")) recs.push_back(std::move(r.value));
        curves.push_back({exp + " seed " + std::to_string(seed), std::move(recs)});
      }
      per_experiment[exp].push_back(std::move(scores));
      ++done;
      const double elapsed = seconds_since(t0), runs_time = seconds_since(t_runs);
      log("[demo] " + std::to_string(done) + "/" + std::to_string(total_runs) + " " + exp + " seed " +
          std::to_string(seed) + ": final loss " + fmt(ts.final_loss, 3) + ", " + fmt(seconds_since(tr)) + " s (elapsed " +
          format_duration(elapsed) + ", about " + format_duration(runs_time / double(done) * double(total_runs - done)) +
          " left)");
    }
  }

  // 4. Mean and standard deviation over seeds; the table, results.json (report format), report.html.
  Json rows = Json::array();
  Json results{{"tasks", Json::object()}};
  for (const auto& exp : p.experiments) {
    const auto& runs = per_experiment[exp];
    std::vector<std::string> keys;
    for (const auto& [task, modes] : runs.front()) keys.push_back(task);
    // Order: the task files' order, then few-shot counts.
    std::vector<std::string> order;
    for (const Task& t : task_set.main)
      for (const auto& k : keys)
        if (split_shots(k).first == t.name && split_shots(k).second == 0) order.push_back(k);
    for (const auto& k : keys)
      if (split_shots(k).second > 0) order.push_back(k);
    for (const auto& task : order) {
      Json row{{"experiment", exp}, {"task", task}, {"modes", Json::object()}};
      for (const auto& mode : kModes) {
        std::vector<double> values;
        Json entry;
        if (mode == "base") {
          auto bt = base_scores.find(task);
          if (bt == base_scores.end()) continue;
          entry = bt->second["base"];
          values.assign(runs.size(), entry["value"].get<double>());
        } else {
          for (const auto& s : runs) {
            auto it = s.find(task);
            if (it == s.end() || !it->second.count(mode)) continue;
            entry = it->second.at(mode);
            values.push_back(entry["value"].get<double>());
          }
          if (values.empty()) continue;
        }
        row["metric"] = entry["metric"];
        row["n"] = entry["n"];
        row["modes"][mode] = Json{{"mean", mean_of(values)}, {"std", std_of(values)}, {"values", values}};
        results["tasks"][exp + " · " + task][mode] =
            Json{{"metric", entry["metric"]}, {"value", mean_of(values)}, {"stderr", std_of(values)},
                 {"n", int64_t(values.size())}, {"task", exp + " · " + task}, {"shots", split_shots(task).second}};
      }
      rows.push_back(row);
    }
  }
  Json settings{{"preset", p.name},
                {"world_seed", o.world_seed},
                {"seeds", p.seeds},
                {"experiments", p.experiments},
                {"modes", kModes},
                {"noise", o.noise},
                {"mix", o.mix},
                {"finetune_steps", p.finetune_steps},
                {"finetune_batch", p.finetune_batch},
                {"finetune_records", p.finetune_records},
                {"lora", Json{{"rank", p.lora_rank}, {"alpha", p.lora_alpha}, {"lr", p.lora_lr}, {"targets", "all"}}},
                {"full_lr", p.full_lr},
                {"threads", num_threads()},
                {"model", base_path},
                {"chat_template", has_template ? chat_template_for(*tok).name : chat_template},
                {"note", "value = mean over seeds, ± = standard deviation over seeds (not a standard error)"},
                {"report_title", "taia demo: base / vanilla / TAIA / TAIF after out-of-distribution fine-tuning"},
                {"spread", "standard deviation over seeds"}};
  results["settings"] = settings;
  Json summary{{"rows", rows}, {"pretrained", pretrained}, {"settings", settings}, {"out", out},
               {"seconds", seconds_since(t0)}};
  write_file_atomic(out + "/results.json", results.dump(2) + "\n");
  write_file_atomic(out + "/summary.json", summary.dump(2) + "\n");
  const std::string table = demo_table_markdown(summary);
  write_file_atomic(out + "/table.md", table);
  write_file_atomic(out + "/report.html", render_report_html(results, curves));
  return summary;
}

std::string demo_table_markdown(const Json& summary) {
  std::string s = "| experiment | task | metric | n |";
  std::string sep = "|---|---|---|---|";
  for (const auto& m : kModes) {
    s += " " + m + " |";
    sep += "---|";
  }
  s += "\n" + sep + "\n";
  for (const Json& row : summary["rows"]) {
    s += "| " + row["experiment"].get<std::string>() + " | " + row["task"].get<std::string>() + " | " +
         row.value("metric", std::string()) + " | " + std::to_string(row.value("n", int64_t(0))) + " |";
    const bool scale = row.value("metric", std::string()) != "bits_per_token";
    for (const auto& m : kModes) {
      if (!row["modes"].contains(m)) {
        s += " |";
        continue;
      }
      const Json& e = row["modes"][m];
      const double k = scale ? 100.0 : 1.0;
      s += " " + fmt(k * e["mean"].get<double>(), scale ? 1 : 3) + " ± " + fmt(k * e["std"].get<double>(), scale ? 1 : 3) + " |";
    }
    s += "\n";
  }
  return s;
}

}  // namespace taia::demo
