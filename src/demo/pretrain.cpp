#include "demo/pretrain.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "demo/util.h"
#include "model/config.h"
#include "model/init.h"
#include "tokenizer/spm_trainer.h"
#include "train/trainer.h"

namespace taia::demo {
namespace {

namespace fs = std::filesystem;
using Log = std::function<void(const std::string&)>;

// Bumped whenever the world, corpus, tokenizer or pretraining recipe changes, so that cached
// models made by an older generator are not reused. 3: full fine-tuning's LM-head input
// gradient moved to the matmul primitive (issue 14), which changes the pretrained model's bits.
constexpr const char* kGeneratorVersion = "taia-demo-4";  // 4: the city -> country sentences

// ChatML without a default system turn (recognised by tokenizer/chat_template.cpp, usable by HF).
constexpr const char* kChatMlJinja =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

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

// Everything that determines the pretrained model, as text (its hash names the cache entry).
std::string pretrain_recipe(const Preset& p, uint64_t world_seed) {
  std::ostringstream s;
  s << kGeneratorVersion << " world_seed=" << world_seed << " known_test=" << p.world.known_test
    << " known_mix=" << p.world.known_mix << " fresh=" << p.world.fresh << " rounds=" << p.corpus_rounds
    << " per_doc=" << p.sentences_per_doc << " chat_turns=" << p.chat_turns_per_doc << " filler=" << p.filler << " vocab=" << p.vocab << " hidden=" << p.hidden
    << " intermediate=" << p.intermediate << " layers=" << p.layers << " heads=" << p.heads
    << " max_positions=" << p.max_positions << " steps=" << p.pretrain_steps << " batch=" << p.pretrain_batch
    << " max_length=" << p.pretrain_max_length << " lr=" << p.pretrain_lr;
  if (p.context_dialogues > 0)  // only then: the other recipes keep their cache entries
    s << " context_dialogues=" << p.context_dialogues << "x" << p.context_people << "/" << p.context_turns;
  return s.str();
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

// The pretraining documents: fact documents about the known people with the chat dialogues
// (and design C's context dialogues) spread evenly among them (a fixed interleaving, no RNG).
struct Corpus {
  std::vector<std::string> documents;
  size_t fact_documents = 0, chat_documents = 0, context_dialogues = 0;
};

// a and b merged, each kept in order, b's items spread evenly among a's.
std::vector<std::string> interleave(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> out;
  for (size_t i = 0, j = 0; i < a.size() || j < b.size();) {
    const bool take_a = i < a.size() && (j >= b.size() || (i + 1) * b.size() <= (j + 1) * a.size());
    out.push_back(take_a ? a[i++] : b[j++]);
  }
  return out;
}

Corpus build_corpus(const Preset& p, const World& w, uint64_t world_seed) {
  const auto facts = pretraining_documents(w, p.corpus_rounds, p.filler, p.sentences_per_doc, world_seed * 2 + 1);
  const auto chats = chat_documents(w, p.corpus_rounds, p.chat_turns_per_doc, world_seed * 2 + 1);
  const auto contexts = context_dialogues(w, p.context_dialogues, p.context_people, p.context_turns, world_seed * 2 + 1);
  Corpus c;
  c.fact_documents = facts.size();
  c.chat_documents = chats.size();
  c.context_dialogues = contexts.size();
  c.documents = interleave(facts, interleave(chats, contexts));
  return c;
}

// tokenizer.model trained on the corpus, tokenizer_config.json (ChatML template) and
// special_tokens_map.json in dir.
void write_tokenizer(const Preset& p, const Corpus& corpus, const std::string& dir) {
  SpmTrainOptions so;
  so.vocab_size = p.vocab;
  so.user_defined_symbols = {"<|im_start|>", "<|im_end|>"};
  train_sentencepiece(corpus.documents, so, dir + "/tokenizer.model");
  write_file_atomic(dir + "/tokenizer_config.json",
                    Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"add_bos_token", true},
                         {"add_eos_token", false}, {"tokenizer_class", "LlamaTokenizer"}, {"chat_template", kChatMlJinja},
                         {"model_max_length", p.max_positions}}
                            .dump(2) + "\n");
  write_file_atomic(dir + "/special_tokens_map.json",
                    Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"},
                         {"additional_special_tokens", {"<|im_start|>", "<|im_end|>"}}}
                            .dump(2) + "\n");
}

// The randomly initialised LLaMA model of the preset, as an HF folder in dir.
void write_initial_model(const Preset& p, uint64_t world_seed, const std::string& dir) {
  const Json cfg{{"architectures", {"LlamaForCausalLM"}},
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
  save_hf_folder(*model, dir, DType::F32);
}

// Full training of the initial model on the corpus file (the trainer's own loop and logs).
TrainSummary pretrain(const Preset& p, const PretrainSettings& s, const std::string& tmp, const Log& log) {
  TrainOptions t;
  t.model_path = tmp + "/init";
  t.data_path = tmp + "/corpus.txt";
  t.out_dir = tmp + "/model";
  t.method = TrainMethod::Full;
  t.lr = p.pretrain_lr;
  t.schedule = "cosine";
  t.warmup_ratio = 0.05;
  t.max_steps = p.pretrain_steps;
  t.batch_size = p.pretrain_batch;
  t.grad_accum = 1;
  t.max_length = p.pretrain_max_length;
  t.seed = s.world_seed + 7;
  t.threads = s.threads;
  t.progress = s.progress;
  log("[demo] pretraining " + std::to_string(p.layers) + " layers x " + std::to_string(p.hidden) + " (" +
      std::to_string(p.pretrain_steps) + " steps of " + std::to_string(p.pretrain_batch) + " documents)");
  return run_training(t, [&](const std::string& line) {
    if (line.rfind("warning: ", 0) != 0 && line.find("truncated") == std::string::npos) log("  " + line);
  });
}

// Moves the finished build `tmp` into the cache entry `dir` (unless another run completed the
// same entry first, which is kept).
void commit_cache_entry(const std::string& tmp, const std::string& dir, const std::string& recipe) {
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
}

}  // namespace

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/taia";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/taia";
  return ".taia-cache";
}

std::string ensure_pretrained(const Preset& p, const World& w, const PretrainSettings& s, const Log& log, Json* info) {
  const std::string recipe = pretrain_recipe(p, s.world_seed);
  const std::string dir = s.cache_dir + "/demo/" + p.name + "-" + hex16(fnv1a(recipe));
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
  const Corpus corpus = build_corpus(p, w, s.world_seed);
  std::string text;
  for (const auto& d : corpus.documents) text += d + "\n\n";
  write_file_atomic(tmp + "/corpus.txt", text);
  log("[demo] corpus: " + std::to_string(corpus.fact_documents) + " fact documents, " +
      std::to_string(corpus.chat_documents) + " chat documents, " +
      (corpus.context_dialogues ? std::to_string(corpus.context_dialogues) + " context dialogues, " : "") +
      std::to_string(text.size()) +
      " bytes; training the tokenizer (SentencePiece BPE, " + std::to_string(p.vocab) + " pieces)");
  write_tokenizer(p, corpus, tmp + "/init");
  write_initial_model(p, s.world_seed, tmp + "/init");
  const TrainSummary summary = pretrain(p, s, tmp, log);
  commit_cache_entry(tmp, dir, recipe);
  (*info)["pretrain_seconds"] = seconds_since(t0);
  (*info)["pretrain_final_loss"] = summary.final_loss;
  (*info)["pretrain_tokens_per_s"] = summary.tokens_per_s;
  log("[demo] pretrained in " + fmt(seconds_since(t0)) + " s, final loss " + fmt(summary.final_loss, 3) +
      "; cached at " + dir);
  return model_dir;
}

}  // namespace taia::demo
