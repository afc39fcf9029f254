// Random blocks of every GGUF block type for the kernel tests (test_kernels, test_quant_dot).
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/ggml_quants.h"
#include "core/rng.h"

namespace taia::test {

// Random blocks of a GGUF block type: random quant bits, F16 scales (and minimums) set to
// sane values at their offsets in the block.
inline std::vector<uint8_t> random_blocks(DType dtype, int64_t values, uint64_t seed) {
  struct ScaleOffsets {
    DType dtype;
    std::vector<int> offsets;
  };
  static const ScaleOffsets kOffsets[] = {
      {DType::Q4_0, {0}}, {DType::Q4_1, {0, 2}}, {DType::Q5_0, {0}},   {DType::Q5_1, {0, 2}}, {DType::Q8_0, {0}},
      {DType::Q2_K, {80, 82}}, {DType::Q3_K, {108}}, {DType::Q4_K, {0, 2}}, {DType::Q5_K, {0, 2}}, {DType::Q6_K, {208}}};
  std::vector<uint8_t> bytes(dtype_bytes(dtype, values));
  Rng rng(seed);
  for (uint8_t& b : bytes) b = uint8_t(rng.next_u64() & 0xff);
  const int64_t bb = block_bytes(dtype);
  for (const ScaleOffsets& so : kOffsets)
    if (so.dtype == dtype)
      for (size_t blk = 0; blk < bytes.size(); blk += size_t(bb))
        for (int off : so.offsets) {
          const uint16_t h = f32_to_f16(float(0.002 + 0.01 * rng.uniform()));
          std::memcpy(&bytes[blk + size_t(off)], &h, 2);
        }
  return bytes;
}

}  // namespace taia::test
