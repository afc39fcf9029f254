// taia's public C++ API: load a model (HF folder or GGUF), run it in a TAIA mode, generate text.
// The only header `cmake --install` puts in include/taia; the library's internals (src/) are not
// installed and may change between versions. Link with `find_package(taia CONFIG)` and
// `target_link_libraries(app PRIVATE taia::taia)`, or `pkg-config --cflags --libs taia`.
//
//   auto model = taia::api::Model::load("Qwen2.5-0.5B-Instruct");
//   model.load_adapter("out/adapter");                      // a PEFT folder or a GGUF LoRA
//   taia::api::GenerateOptions o;
//   o.mode = "taia";                                        // attention updates only
//   o.temperature = 0;
//   std::cout << model.generate("Hello", o).text;
//
// Every failure throws taia::api::Error with the library's message (the file, the position and
// what was expected); nothing is printed by the library.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#define TAIA_API __attribute__((visibility("default")))

namespace taia::api {

class TAIA_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// The library's version ("0.1.0").
TAIA_API std::string version();

// A command's options as the CLI spells them, dashes or underscores: {{"lora-rank", "8"},
// {"use_rslora", ""}} is `--lora-rank 8 --use-rslora` (an empty value: a flag). An option the
// command does not have is refused by name.
using CommandOptions = std::vector<std::pair<std::string, std::string>>;
// Called after each training step with its metrics.jsonl line (JSON text); return false to stop
// at that step (a checkpoint is written; resume with {"resume", out}).
using StepCallback = std::function<bool(const std::string& metrics_json)>;

// `taia train --model base --data data --out out OPTIONS`: LoRA (or full, {"method", "full"})
// fine-tuning with the CLI's options and defaults; returns its --format json summary (steps,
// final_loss, stopped, output, metrics).
TAIA_API std::string train(const std::string& base, const std::string& data, const std::string& out,
                           const CommandOptions& options = {}, const StepCallback& on_step = {});
// `taia eval --model model --tasks tasks --out out OPTIONS` ({"adapter", dir}, {"modes",
// "base,taia"}, ...): returns results.json's content (docs/EVAL.md).
TAIA_API std::string evaluate(const std::string& model, const std::string& tasks, const std::string& out,
                              const CommandOptions& options = {});
// Any other command the same way: `taia command args... OPTIONS --format json`'s output ("null"
// for a command that prints none), e.g. run_command("merge", {"--base", b, "--out", o}, {{"adapter", a}}).
TAIA_API std::string run_command(const std::string& command, const std::vector<std::string>& args,
                                 const CommandOptions& options = {}, const StepCallback& on_step = {});

struct LoadOptions {
  std::string dtype = "auto";  // weights in memory: auto (as stored), f32, bf16, f16
  int threads = 0;             // worker threads for everything this process runs (0: all cores)
  bool mmap = true;            // GGUF: use the weights from the file's mapping (false: copy them)
};

class Model;

// A LoRA adapter read against one model (its shapes checked against that model's). Pass it in
// RunOptions::adapter to run it without making it the model's own: one loaded model, any number
// of adapters, each call choosing one.
class TAIA_API Adapter {
 public:
  // A PEFT folder, a GGUF LoRA file or a MoLoRA adapter folder.
  static Adapter load(const Model& model, const std::string& path);
  // One F32 row-major array (read during from_tensors only; the adapter keeps its own copy).
  struct Array {
    std::vector<int64_t> shape;
    const float* data = nullptr;
  };
  // A PEFT state_dict (keys as PEFT writes them, e.g. "base_model.model.model.layers.0.self_attn.
  // q_proj.lora_A.weight": A [r, in], B [out, r]) with its adapter_config.json text: what loading
  // the folder save_pretrained would write gives, without writing it.
  static Adapter from_tensors(const Model& model, const std::map<std::string, Array>& tensors,
                              const std::string& peft_config_json);
  int64_t modules() const;  // LoRA and MoLoRA modules held

 private:
  friend class Model;
  struct Impl;
  explicit Adapter(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// What a forward pass or a generation runs. mode: "base" (no update), "vanilla" (all updates),
// "taia" (attention only), "taif" (FFN only) or a module list ("q,k,v,o"); empty: "taia" when an
// adapter is loaded, else "base". A mode other than base without an adapter is an error.
struct RunOptions {
  std::string mode;
  std::string compute = "f32";  // f32 (exact) or bf16 (activations rounded to BF16 before products)
  std::string kv_dtype;         // f32, bf16, f16, q8_0; empty: f32 for forward, f16 for generate
  const Adapter* adapter = nullptr;  // this adapter instead of the model's own (load_adapter)
};

struct Message {
  std::string role;  // system, user, assistant
  std::string content;
};

struct GenerateOptions : RunOptions {
  int64_t max_tokens = 64;
  float temperature = 0.8f;  // 0: greedy
  int64_t top_k = 0;         // 0: every token
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  bool chat = false;        // wrap a text prompt as a user turn in the model's chat template
  bool ignore_eos = false;  // do not stop at the end-of-text / end-of-turn ids
  // Texts that end the reply as soon as the generated text holds one (left out of text, as the
  // OpenAI API's stop); on_text never sees them.
  std::vector<std::string> stop;
  // Called with each new piece of text as it is decoded (streaming); return false to stop.
  std::function<bool(const std::string& piece)> on_text;
};

struct Generation {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;  // generated ids (an EOS that stopped the run included)
  std::string text;                 // output_ids decoded, special tokens skipped
  bool stopped_at_eos = false;
  bool stopped_at_text = false;     // one of GenerateOptions::stop ended it (text cut before it)
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
};

class TAIA_API Model {
 public:
  // An HF model folder (config.json + safetensors) or a GGUF file; its tokenizer is loaded when
  // the folder or file carries one.
  static Model load(const std::string& path, const LoadOptions& options = {});
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  std::string config_json() const;  // the model's configuration as HF's config.json would hold it
  int64_t vocab_size() const;
  bool has_tokenizer() const;

  std::vector<int32_t> encode(const std::string& text, bool add_special = true) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const;
  // The conversation as the model's chat template renders it (HF's apply_chat_template(tokenize=
  // False)), and its ids (tokenize=True: no BOS added beyond the template's).
  std::string apply_chat_template(const std::vector<Message>& messages, bool add_generation_prompt = true) const;
  std::vector<int32_t> encode_chat(const std::vector<Message>& messages, bool add_generation_prompt = true) const;

  // Weight names (HF's, checkpoint order) and one weight's values: `view` points at the model's
  // own F32 storage (valid while the model lives), else `values` holds an F32 copy (BF16, F16
  // and quantized storage are widened / dequantized).
  struct Tensor {
    std::string dtype;  // as stored: f32, bf16, f16, q4_0, q4_k, ...
    std::vector<int64_t> shape;
    const float* view = nullptr;
    std::vector<float> values;
    const float* data() const { return view ? view : values.data(); }
  };
  std::vector<std::string> tensor_names() const;
  Tensor tensor(const std::string& name) const;

  // A PEFT adapter folder, GGUF LoRA or MoLoRA adapter trained on this model; replaces the one
  // loaded before. The modes of RunOptions choose which of its modules run.
  void load_adapter(const std::string& path);
  bool has_adapter() const;

  // Logits of every position: [ids.size(), vocab_size()] row-major floats.
  std::vector<float> forward(const std::vector<int32_t>& ids, const RunOptions& options = {}) const;

  // Continues a text prompt (encoded with the model's tokenizer, BOS added; with chat, rendered as a
  // user turn) or a prompt of ids. Greedy with temperature 0; else sampled with seed.
  Generation generate(const std::string& prompt, const GenerateOptions& options = {}) const;
  Generation generate(const std::vector<int32_t>& prompt_ids, const GenerateOptions& options = {}) const;
  // A conversation rendered by the model's chat template with the generation prompt.
  Generation generate(const std::vector<Message>& messages, const GenerateOptions& options = {}) const;

 private:
  friend class Adapter;
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace taia::api
