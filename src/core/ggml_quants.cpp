#include "core/ggml_quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

// Exactness: gguf-py rounds each product and each sum to F32 separately; a fused multiply-add
// would round once and give other bits. CMake compiles this file with -ffp-contract=off.

namespace taia {
namespace {

constexpr int kQK = 256;  // values per K-quant super-block

float f16_at(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return f16_to_f32(bits);
}

uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Q4_0 / Q4_1 / Q5_0 / Q5_1: 32 values; quant j (0..15) in the low nibble of qs[j], quant j + 16
// in its high nibble; Q5 adds bit j of the u32 qh as bit 4 of quant j.
template <bool kHasMin, bool kFiveBit>
void dequantize_q4_q5(const uint8_t* blk, float* out) {
  const float d = f16_at(blk);
  const float m = kHasMin ? f16_at(blk + 2) : 0.0f;
  const uint8_t* p = blk + (kHasMin ? 4 : 2);
  const uint32_t qh = kFiveBit ? u32_at(p) : 0;
  const uint8_t* qs = p + (kFiveBit ? 4 : 0);
  for (int j = 0; j < 32; ++j) {
    int q = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
    if (kFiveBit) q |= int((qh >> j) & 1u) << 4;
    if (kHasMin) {
      const float dq = d * float(q);
      out[j] = dq + m;
    } else {
      out[j] = d * float(q - (kFiveBit ? 16 : 8));
    }
  }
}

void dequantize_q8_0(const uint8_t* blk, float* out) {
  const float d = f16_at(blk);
  const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
  for (int j = 0; j < 32; ++j) out[j] = float(q[j]) * d;
}

// Q2_K: scales[16] (low nibble: scale, high: min, per 16 values), qs[64] (2 bits), d, dmin.
// Value e: half h = e / 128, shift s = (e % 128) / 32, j = e % 32 -> (qs[32 h + j] >> 2 s) & 3.
void dequantize_q2_k(const uint8_t* blk, float* out) {
  const uint8_t* scales = blk;
  const uint8_t* qs = blk + 16;
  const float d = f16_at(blk + 80), dmin = f16_at(blk + 82);
  for (int e = 0; e < kQK; ++e) {
    const int h = e / 128, s = (e % 128) / 32, j = e % 32;
    const int q = (qs[32 * h + j] >> (2 * s)) & 3;
    const uint8_t sc = scales[e / 16];
    const float dl = d * float(sc & 0x0F), ml = dmin * float(sc >> 4);
    const float dq = dl * float(q);
    out[e] = dq - ml;
  }
}

// Q3_K: hmask[32], qs[64] (2 low bits), scales[12] (16 six-bit scales, offset 32), d.
void dequantize_q3_k(const uint8_t* blk, float* out) {
  const uint8_t* hmask = blk;
  const uint8_t* qs = blk + 32;
  const uint8_t* sc = blk + 96;
  const float d = f16_at(blk + 108);
  for (int e = 0; e < kQK; ++e) {
    const int i = e / 16;  // scale index: low 4 bits from sc[0..7], high 2 bits from sc[8..11]
    const int low = i < 8 ? (sc[i] & 0x0F) : (sc[i - 8] >> 4);
    const int high = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
    const float dl = d * float(int8_t(uint8_t(low | (high << 4))) - 32);
    const int h = e / 128, s = (e % 128) / 32, j = e % 32;
    const int ql = (qs[32 * h + j] >> (2 * s)) & 3;
    const int hbit = (hmask[j] >> (e / 32)) & 1;
    out[e] = dl * float(ql - ((hbit ^ 1) << 2));
  }
}

}  // namespace

// Q4_K / Q5_K scales: 8 six-bit scales and 8 six-bit minimums packed in 12 bytes.
void k_quant_scale_min(const uint8_t* s, int i, int& sc, int& m) {
  if (i < 4) {
    sc = s[i] & 0x3F;
    m = s[4 + i] & 0x3F;
  } else {
    sc = (s[8 + i - 4] & 0x0F) | ((s[i - 4] >> 2) & 0x30);
    m = (s[8 + i - 4] >> 4) | ((s[4 + i - 4] >> 2) & 0x30);
  }
}

namespace {

// Q4_K: d, dmin, scales[12], qs[128]; Q5_K adds qh[32] before qs. Value e: chunk c = e / 64,
// nibble (e % 64) / 32, j = e % 32 -> (qs[32 c + j] >> 4 nibble) & 15; Q5_K's bit 4 is
// (qh[j] >> (e / 32)) & 1. Sub-block (scale, min) e / 32.
template <bool kFiveBit>
void dequantize_q4_q5_k(const uint8_t* blk, float* out) {
  const float d = f16_at(blk), dmin = f16_at(blk + 2);
  const uint8_t* scales = blk + 4;
  const uint8_t* qh = blk + 16;
  const uint8_t* qs = blk + (kFiveBit ? 48 : 16);
  for (int sub = 0; sub < 8; ++sub) {
    int sc = 0, m = 0;
    k_quant_scale_min(scales, sub, sc, m);
    const float dl = d * float(sc), ml = dmin * float(m);
    for (int j = 0; j < 32; ++j) {
      const int e = sub * 32 + j;
      int q = (qs[32 * (sub / 2) + j] >> (4 * (sub % 2))) & 0x0F;
      if (kFiveBit) q |= ((qh[j] >> sub) & 1) << 4;
      const float dq = dl * float(q);
      out[e] = dq - ml;
    }
  }
}

// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8, per 16 values), d.
void dequantize_q6_k(const uint8_t* blk, float* out) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(blk + 192);
  const float d = f16_at(blk + 208);
  for (int e = 0; e < kQK; ++e) {
    const int h = e / 128, r = e % 128;
    const int low = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
    const int high = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
    const float dl = d * float(scales[e / 16]);
    out[e] = dl * float((low | (high << 4)) - 32);
  }
}

// ggml's reference quantizers, as quantize_row_*_ref computes them: the scale in F32 (rounded to
// F16 only where stored), 1 / d applied by multiplication, quants truncated after the +0.5
// offsets (int8 casts) or rounded (Q8_0).
void put_f16(uint8_t* p, float v) {
  const uint16_t bits = f32_to_f16(v);
  std::memcpy(p, &bits, 2);
}

void quantize_q8_0(const float* x, uint8_t* blk) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(blk, d);
  for (int j = 0; j < 32; ++j) blk[2 + j] = uint8_t(int8_t(std::roundf(x[j] * id)));
}

// Q4_0 / Q5_0: d = (the value of largest magnitude) / -8 (-16); quants x / d + 8.5 (16.5).
template <bool kFiveBit>
void quantize_q4_q5_0(const float* x, uint8_t* blk) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  const float d = max / (kFiveBit ? -16.0f : -8.0f), id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(blk, d);
  uint8_t* qs = blk + (kFiveBit ? 6 : 2);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const float offset = kFiveBit ? 16.5f : 8.5f;
    const int top = kFiveBit ? 31 : 15;
    const int q0 = std::min(top, int(int8_t(x[j] * id + offset)));
    const int q1 = std::min(top, int(int8_t(x[16 + j] * id + offset)));
    qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    if (kFiveBit) qh |= (uint32_t((q0 & 0x10) >> 4) << j) | (uint32_t((q1 & 0x10) >> 4) << (j + 16));
  }
  if (kFiveBit) std::memcpy(blk + 2, &qh, 4);
}

// Q4_1 / Q5_1: d = (max - min) / 15 (31), m = min; quants (x - min) / d + 0.5.
template <bool kFiveBit>
void quantize_q4_q5_1(const float* x, uint8_t* blk) {
  float min = x[0], max = x[0];
  for (int j = 1; j < 32; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / (kFiveBit ? 31.0f : 15.0f), id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(blk, d);
  put_f16(blk + 2, min);
  uint8_t* qs = blk + (kFiveBit ? 8 : 4);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    int q0 = int(int8_t((x[j] - min) * id + 0.5f)), q1 = int(int8_t((x[16 + j] - min) * id + 0.5f));
    if (!kFiveBit) {
      q0 = std::min(15, q0);
      q1 = std::min(15, q1);
    }
    qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    if (kFiveBit) qh |= (uint32_t((q0 & 0x10) >> 4) << j) | (uint32_t((q1 & 0x10) >> 4) << (j + 16));
  }
  if (kFiveBit) std::memcpy(blk + 4, &qh, 4);
}

struct BlockFormat {
  DType dtype;
  uint32_t ggml_type;
  int64_t values, bytes;
  void (*dequantize)(const uint8_t*, float*);
  void (*quantize)(const float*, uint8_t*);  // null: read only
};

constexpr BlockFormat kFormats[] = {
    {DType::Q4_0, 2, 32, 18, dequantize_q4_q5<false, false>, quantize_q4_q5_0<false>},
    {DType::Q4_1, 3, 32, 20, dequantize_q4_q5<true, false>, quantize_q4_q5_1<false>},
    {DType::Q5_0, 6, 32, 22, dequantize_q4_q5<false, true>, quantize_q4_q5_0<true>},
    {DType::Q5_1, 7, 32, 24, dequantize_q4_q5<true, true>, quantize_q4_q5_1<true>},
    {DType::Q8_0, 8, 32, 34, dequantize_q8_0, quantize_q8_0},
    {DType::Q2_K, 10, kQK, 84, dequantize_q2_k, nullptr},
    {DType::Q3_K, 11, kQK, 110, dequantize_q3_k, nullptr},
    {DType::Q4_K, 12, kQK, 144, dequantize_q4_q5_k<false>, nullptr},
    {DType::Q5_K, 13, kQK, 176, dequantize_q4_q5_k<true>, nullptr},
    {DType::Q6_K, 14, kQK, 210, dequantize_q6_k, nullptr},
};

const BlockFormat* format_of(DType dtype) {
  for (const BlockFormat& f : kFormats)
    if (f.dtype == dtype) return &f;
  return nullptr;
}

}  // namespace

std::optional<DType> dtype_of_ggml_type(uint32_t type) {
  if (type == 0) return DType::F32;
  if (type == 1) return DType::F16;
  if (type == 30) return DType::BF16;
  for (const BlockFormat& f : kFormats)
    if (f.ggml_type == type) return f.dtype;
  return std::nullopt;
}

uint32_t ggml_type_of(DType dtype) {
  if (dtype == DType::F32) return 0;
  if (dtype == DType::F16) return 1;
  if (dtype == DType::BF16) return 30;
  return format_of(dtype)->ggml_type;
}

bool can_quantize(DType dtype) { return format_of(dtype) && format_of(dtype)->quantize; }

void quantize_blocks(DType dtype, const float* in, uint8_t* blocks, int64_t n) {
  const BlockFormat* f = format_of(dtype);
  TAIA_CHECK(f && f->quantize, "[quantize_blocks] taia does not write ", dtype_name(dtype),
             " (it writes Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)");
  TAIA_CHECK(n % f->values == 0, "[quantize_blocks] expected a multiple of ", f->values, " values, got ", n);
  const int64_t count = n / f->values;
#pragma omp parallel for schedule(static) if (count > 4096)
  for (int64_t b = 0; b < count; ++b) f->quantize(in + b * f->values, blocks + b * f->bytes);
}

DequantizeBlockFn block_dequantizer(DType dtype) { return format_of(dtype) ? format_of(dtype)->dequantize : nullptr; }

int64_t block_values(DType dtype) { return format_of(dtype) ? format_of(dtype)->values : 1; }
int64_t block_bytes(DType dtype) { return format_of(dtype) ? format_of(dtype)->bytes : int64_t(dtype_size(dtype)); }

void dequantize_blocks(DType dtype, const uint8_t* blocks, float* out, int64_t n) {
  const BlockFormat* f = format_of(dtype);
  TAIA_CHECK(f != nullptr, "[dequantize_blocks] ", dtype_name(dtype), " is not a block type");
  TAIA_CHECK(n % f->values == 0, "[dequantize_blocks] expected a multiple of ", f->values, " values, got ", n);
  const int64_t count = n / f->values;
#pragma omp parallel for schedule(static) if (count > 4096)
  for (int64_t b = 0; b < count; ++b) f->dequantize(blocks + b * f->bytes, out + b * f->values);
}

}  // namespace taia
