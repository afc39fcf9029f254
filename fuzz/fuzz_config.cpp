// HF config.json -> ModelConfig (every field range-checked).
#include "core/json_util.h"
#include "fuzz_common.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  taia::fuzz::expect_clean("config.json", [&] {
    const taia::Json j = taia::parse_json_text(text, "config.json");
    const taia::ModelConfig c = taia::config_from_hf_json(j, "config.json");
    taia::config_to_hf_json(c);
  });
  return 0;
}
