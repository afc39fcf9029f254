// GGUF: the reader, dequantisation of small tensors, model hyper-parameters, the vocabulary and
// llama.cpp LoRA adapters, each from the same bytes.
#include <vector>

#include "fuzz_common.h"
#include "io/gguf.h"
#include "model/gguf_lora.h"
#include "model/loader.h"
#include "model/tokenizer_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = taia::fuzz::write_input("in.gguf", data, size);
  taia::fuzz::expect_clean("gguf", [&] {
    taia::GgufFile g(path);
    std::vector<float> buf;
    for (const auto& t : g.tensors()) {
      if (!taia::gguf_type_supported(t.type) || t.numel() > (1 << 16)) continue;
      buf.resize(size_t(t.numel()));
      taia::fuzz::expect_clean("gguf dequantize", [&] { taia::gguf_dequantize(t, buf.data(), path); });
    }
    taia::ModelConfig c;
    bool have_config = false;
    taia::fuzz::expect_clean("gguf config", [&] {
      c = taia::config_from_gguf(g);
      have_config = true;
    });
    taia::fuzz::expect_clean("gguf vocabulary", [&] {
      auto tok = taia::tokenizer_from_gguf(g);
      const auto ids = tok->encode("Hello world, 12 ünï 🙂", true).ids;
      tok->decode(ids);
    });
    if (have_config && c.hidden_size * c.num_layers <= (1 << 16))
      taia::fuzz::expect_clean("gguf model", [&] { taia::load_model(path); });
    const taia::ModelConfig lora_base = taia::fuzz::tiny_base_config();
    taia::fuzz::expect_clean("gguf lora", [&] { taia::load_gguf_lora(path, lora_base); });
  });
  return 0;
}
