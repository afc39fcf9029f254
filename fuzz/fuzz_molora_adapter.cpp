// MoLoRA files of an adapter folder. Input: 4-byte little-endian length L, L bytes of
// molora_config.json, then molora_model.safetensors. The base is a fixed 2-layer model.
#include <cstring>

#include "fuzz_common.h"
#include "model/molora.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n = 0;
  std::memcpy(&n, data, 4);
  if (n > size - 4) n = uint32_t(size - 4);
  const std::string dir = taia::fuzz::work_dir() + "/molora";
  taia::make_directories(dir);
  taia::fuzz::write_input("molora/molora_config.json", data + 4, n);
  taia::fuzz::write_input("molora/molora_model.safetensors", data + 4 + n, size - 4 - n);
  const taia::ModelConfig c = taia::fuzz::tiny_base_config();
  taia::fuzz::expect_clean("molora adapter", [&] {
    taia::MoloraExperts x;
    taia::load_molora(dir, c, x);
  });
  return 0;
}
