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

// The first of x[0..n) with the largest magnitude, its sign kept (0 for an empty or all-zero x).
float signed_absmax(int n, const float* x) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  return max;
}

// Q4_0 / Q5_0: d = (the value of largest magnitude) / -8 (-16); quants x / d + 8.5 (16.5).
template <bool kFiveBit>
void quantize_q4_q5_0(const float* x, uint8_t* blk) {
  const float max = signed_absmax(32, x);
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

// K-quant quantizers, ggml's reference semantics (quantize_row_q{4,5,6}_K_ref, without an
// importance matrix, as llama-quantize runs them).

// Round to nearest, ties to even, as ggml's nearest_int (a magic-number add).
int nearest(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// An asymmetric fit of n values to levels 0..nmax: value ~ scale * L - min_out (returned min_out
// >= 0), the least weighted squared (absolute: absolute) error over nstep + 1 trial scales around
// nmax / (max - min) (ggml's make_qkx2_quants).
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, float rmin,
                    float rdelta, int nstep, bool absolute = false) {
  auto error = [absolute](float diff) { return absolute ? std::fabs(diff) : diff * diff; };
  float lo = x[0], hi = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::fill(L, L + n, uint8_t(0));
    *min_out = -lo;
    return 0.0f;
  }
  float iscale = float(nmax) / (hi - lo), scale = 1.0f / iscale, best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(std::max(0, std::min(nmax, nearest(iscale * (x[i] - lo)))));
    const float diff = scale * float(L[i]) + lo - x[i];
    best += w[i] * error(diff);
  }
  uint8_t trial[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest(iscale * (x[i] - lo))));
      trial[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float s = (sum_w * sum_xl - sum_x * sum_l) / det, m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (m > 0) {
      m = 0;
      s = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = s * float(trial[i]) + m - x[i];
      err += w[i] * error(diff);
    }
    if (err < best) {
      std::copy(trial, trial + n, L);
      best = err;
      scale = s;
      lo = m;
    }
  }
  *min_out = -lo;
  return scale;
}

// Q4_K / Q5_K: per 32 values a scale and a minimum from fit_scale_min (weights: the block's rms
// plus |x|), both quantized to 6 bits against the block's largest, then every value re-fitted to
// the stored scales.
template <bool kFiveBit>
void quantize_q4_q5_k(const float* x, uint8_t* blk) {
  constexpr int kLevels = kFiveBit ? 31 : 15;
  float scales[8], mins[8], w[32];
  uint8_t L[kQK];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = fit_scale_min(32, kLevels, x + 32 * j, w, L + 32 * j, &mins[j], kFiveBit ? -0.5f : -1.0f, 0.1f,
                              kFiveBit ? 15 : 20);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t* packed = blk + 4;
  std::fill(packed, packed + 12, uint8_t(0));
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = uint8_t(std::min(63, int(uint8_t(nearest(inv_scale * scales[j])))));
    const uint8_t lm = uint8_t(std::min(63, int(uint8_t(nearest(inv_min * mins[j])))));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = uint8_t((ls & 0x0F) | ((lm & 0x0F) << 4));
      packed[j - 4] |= uint8_t((ls >> 4) << 6);
      packed[j] |= uint8_t((lm >> 4) << 6);
    }
  }
  put_f16(blk, max_scale / 63.0f);
  put_f16(blk + 2, max_min / 63.0f);
  const float d_all = f16_at(blk), dmin_all = f16_at(blk + 2);
  for (int j = 0; j < 8; ++j) {
    int sc = 0, m = 0;
    k_quant_scale_min(packed, j, sc, m);
    const float d = d_all * float(sc);
    if (d == 0.0f) continue;
    const float dm = dmin_all * float(m);
    for (int i = 0; i < 32; ++i) L[32 * j + i] = uint8_t(std::max(0, std::min(kLevels, nearest((x[32 * j + i] + dm) / d))));
  }
  uint8_t* qh = blk + 16;
  uint8_t* qs = blk + (kFiveBit ? 48 : 16);
  if (kFiveBit) std::fill(qh, qh + 32, uint8_t(0));
  for (int c = 0; c < 4; ++c)  // 64 values per 32 bytes: low nibbles the first 32, high the next
    for (int i = 0; i < 32; ++i) {
      const int a = L[64 * c + i], b = L[64 * c + 32 + i];
      qs[32 * c + i] = uint8_t((a & 0x0F) | ((b & 0x0F) << 4));
      if (kFiveBit) qh[i] |= uint8_t(((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1)));
    }
}

// The value of largest magnitude (its sign kept), or 0 when every |x| is below 1e-15 (ggml's
// GROUP_MAX_EPS: the group quantizes to zeros).
float largest_magnitude(int n, const float* x) {
  const float max = signed_absmax(n, x);
  return std::fabs(max) < 1e-15f ? 0.0f : max;
}

// A symmetric fit of n values to levels -nmax .. nmax - 1 weighted by x^2, the best of 19 trial
// scales (ggml's make_qx_quants, rmse_type 1); returns the scale, levels in L (+ nmax).

float fit_symmetric(int n, int nmax, const float* x, int8_t* L) {
  const float max = largest_magnitude(n, x);
  if (max == 0.0f) {
    std::fill(L, L + n, int8_t(0));
    return 0.0f;
  }
  auto level = [&](float iscale, int i) { return std::max(-nmax, std::min(nmax - 1, nearest(iscale * x[i]))); };
  float iscale = -float(nmax) / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = level(iscale, i);
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f, best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = level(iscale, i);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + level(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q6_K: per 16 values a scale from fit_symmetric (levels -32..31), scales quantized to int8
// against the largest, values re-fitted to the stored scales.
void quantize_q6_k(const float* x, uint8_t* blk) {
  float scales[16];
  int8_t fit[kQK];
  uint8_t L[kQK];
  for (int g = 0; g < 16; ++g) scales[g] = fit_symmetric(16, 32, x + 16 * g, fit + 16 * g);
  const float max_scale = largest_magnitude(16, scales);
  std::fill(blk, blk + 210, uint8_t(0));
  if (max_scale == 0.0f) return;  // all zero: d = 0
  const float iscale = -128.0f / max_scale;
  put_f16(blk + 208, 1.0f / iscale);
  int8_t* sc = reinterpret_cast<int8_t*>(blk + 192);
  for (int g = 0; g < 16; ++g) sc[g] = int8_t(std::min(127, nearest(iscale * scales[g])));
  const float d_all = f16_at(blk + 208);
  for (int g = 0; g < 16; ++g) {
    const float d = d_all * float(sc[g]);
    for (int i = 0; i < 16; ++i)
      L[16 * g + i] = d == 0.0f ? uint8_t(fit[16 * g + i]) : uint8_t(std::max(-32, std::min(31, nearest(x[16 * g + i] / d))) + 32);
  }
  uint8_t* ql = blk;
  uint8_t* qh = blk + 128;
  for (int h = 0; h < 2; ++h)  // halves of 128 values: 64 bytes of ql, 32 of qh each
    for (int i = 0; i < 32; ++i) {
      const uint8_t q1 = L[128 * h + i], q2 = L[128 * h + 32 + i], q3 = L[128 * h + 64 + i], q4 = L[128 * h + 96 + i];
      ql[64 * h + i] = uint8_t((q1 & 0x0F) | ((q3 & 0x0F) << 4));
      ql[64 * h + 32 + i] = uint8_t((q2 & 0x0F) | ((q4 & 0x0F) << 4));
      qh[32 * h + i] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
}

// Q2_K: per 16 values a scale and a minimum from fit_scale_min (absolute error, weights |x|,
// levels 0..3), both quantized to 4 bits against the block's largest.
void quantize_q2_k(const float* x, uint8_t* blk) {
  float scales[16], mins[16], w[16];
  uint8_t L[kQK];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
    scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  uint8_t* sc = blk;
  std::fill(sc, sc + 16, uint8_t(0));
  if (max_scale > 0) {
    const float iscale = 15.0f / max_scale;
    for (int j = 0; j < 16; ++j) sc[j] = uint8_t(nearest(iscale * scales[j]));
  }
  put_f16(blk + 80, max_scale > 0 ? max_scale / 15.0f : 0.0f);
  if (max_min > 0) {
    const float iscale = 15.0f / max_min;
    for (int j = 0; j < 16; ++j) sc[j] = uint8_t(sc[j] | (nearest(iscale * mins[j]) << 4));
  }
  put_f16(blk + 82, max_min > 0 ? max_min / 15.0f : 0.0f);
  const float d_all = f16_at(blk + 80), dmin_all = f16_at(blk + 82);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * float(sc[j] & 0x0F);
    if (d == 0.0f) continue;
    const float dm = dmin_all * float(sc[j] >> 4);
    for (int i = 0; i < 16; ++i) L[16 * j + i] = uint8_t(std::max(0, std::min(3, nearest((x[16 * j + i] + dm) / d))));
  }
  uint8_t* qs = blk + 16;
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 32; ++i)
      qs[32 * h + i] = uint8_t(L[128 * h + i] | (L[128 * h + 32 + i] << 2) | (L[128 * h + 64 + i] << 4) |
                               (L[128 * h + 96 + i] << 6));
}

// A symmetric fit of n values to levels -nmax .. nmax - 1 weighted by x^2, then up to 5 passes
// moving single levels while the fit improves (ggml's make_q3_quants with do_rmse); returns the
// scale, levels in L (+ nmax).
float fit_symmetric_refined(int n, int nmax, const float* x, int8_t* L) {
  const float max = largest_magnitude(n, x);
  if (max == 0.0f) {
    std::fill(L, L + n, int8_t(0));
    return 0.0f;
  }
  const float iscale = -float(nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest(iscale * x[i])));
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx <= 0) continue;
      float sl2 = suml2 - w * float(L[i]) * float(L[i]);
      const int l = std::max(-nmax, std::min(nmax - 1, nearest(x[i] * sl2 / slx)));
      if (l == L[i]) continue;
      slx += w * x[i] * float(l);
      sl2 += w * float(l) * float(l);
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = int8_t(l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return sumlx / suml2;
}

// Q3_K: per 16 values a scale from fit_symmetric_refined (levels -4..3), the scales quantized to
// 6 bits (offset 32) against the largest, values re-fitted; bit 2 of each level goes to hmask.
void quantize_q3_k(const float* x, uint8_t* blk) {
  float scales[16];
  int8_t L[kQK];
  for (int j = 0; j < 16; ++j) scales[j] = fit_symmetric_refined(16, 4, x + 16 * j, L + 16 * j);
  const float max_scale = signed_absmax(16, scales);
  uint8_t* hmask = blk;
  uint8_t* qs = blk + 32;
  uint8_t* sc = blk + 96;
  std::fill(sc, sc + 12, uint8_t(0));
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const int l = std::max(-32, std::min(31, int(int8_t(nearest(iscale * scales[j]))))) + 32;
      if (j < 8) sc[j] = uint8_t(l & 0x0F);
      else sc[j - 8] = uint8_t(sc[j - 8] | ((l & 0x0F) << 4));
      sc[8 + j % 4] = uint8_t(sc[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
    }
    put_f16(blk + 108, 1.0f / iscale);
  } else {
    put_f16(blk + 108, 0.0f);
  }
  const float d_all = f16_at(blk + 108);
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (sc[j] & 0x0F) : (sc[j - 8] >> 4);
    const int high = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
    const float d = d_all * float((low | (high << 4)) - 32);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(std::max(-4, std::min(3, nearest(x[16 * j + i] / d))) + 4);
  }
  std::fill(hmask, hmask + 32, uint8_t(0));
  for (int e = 0; e < kQK; ++e)  // bit e / 32 of hmask[e % 32]: the level's bit 2
    if (L[e] > 3) {
      hmask[e % 32] = uint8_t(hmask[e % 32] | (1 << (e / 32)));
      L[e] = int8_t(L[e] - 4);
    }
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 32; ++i)
      qs[32 * h + i] = uint8_t(L[128 * h + i] | (L[128 * h + 32 + i] << 2) | (L[128 * h + 64 + i] << 4) |
                               (L[128 * h + 96 + i] << 6));
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
    {DType::Q2_K, 10, kQK, 84, dequantize_q2_k, quantize_q2_k},
    {DType::Q3_K, 11, kQK, 110, dequantize_q3_k, quantize_q3_k},
    {DType::Q4_K, 12, kQK, 144, dequantize_q4_q5_k<false>, quantize_q4_q5_k<false>},
    {DType::Q5_K, 13, kQK, 176, dequantize_q4_q5_k<true>, quantize_q4_q5_k<true>},
    {DType::Q6_K, 14, kQK, 210, dequantize_q6_k, quantize_q6_k},
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
             " (it writes every block type it reads)");
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
