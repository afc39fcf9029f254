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

struct LoadOptions {
  std::string dtype = "auto";  // weights in memory: auto (as stored), f32, bf16, f16
  int threads = 0;             // worker threads for everything this process runs (0: all cores)
  bool mmap = true;            // GGUF: use the weights from the file's mapping (false: copy them)
};

// What a forward pass or a generation runs. mode: "base" (no update), "vanilla" (all updates),
// "taia" (attention only), "taif" (FFN only) or a module list ("q,k,v,o"); empty: "taia" when an
// adapter is loaded, else "base". A mode other than base without an adapter is an error.
struct RunOptions {
  std::string mode;
  std::string compute = "f32";  // f32 (exact) or bf16 (activations rounded to BF16 before products)
  std::string kv_dtype;         // f32, bf16, f16, q8_0; empty: f32 for forward, f16 for generate
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
  // Called with each new piece of text as it is decoded (streaming); return false to stop.
  std::function<bool(const std::string& piece)> on_text;
};

struct Generation {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;  // generated ids (an EOS that stopped the run included)
  std::string text;                 // output_ids decoded, special tokens skipped
  bool stopped_at_eos = false;
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

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace taia::api
