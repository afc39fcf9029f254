#include "kernels/quant_dot.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/ggml_quants.h"

namespace taia {
namespace {

constexpr int64_t kMaxRows = 8;                 // activation rows per call (the router's kMatvecMaxRows)
constexpr int64_t kMinParallelWork = 1 << 16;  // weight values below which one thread runs

bool is_k_quant(DType t) {
  return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
}

// The quants' offset of a 32-value type whose stored quants are unsigned (value = d * (q - o)).
int32_t offset_of(DType t) { return t == DType::Q4_0 ? 8 : t == DType::Q5_0 ? 16 : 0; }

float round_to_f16(float v) { return f16_to_f32(f32_to_f16(v)); }

// llama.cpp's Q8_0 (and Q8_1's quants): d = max|x| / 127 stored as F16, q = round(x / d) with the
// unrounded d; sums[b] = the block's sum of quants.
void quantize_blocks_32(const float* x, int64_t K, int8_t* q, float* d, int32_t* sums) {
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* xb = x + 32 * b;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float scale = amax / 127.0f, inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      q[32 * b + i] = int8_t(std::round(xb[i] * inverse));
      sum += q[32 * b + i];
    }
    d[b] = round_to_f16(scale);
    sums[b] = sum;
  }
}

// llama.cpp's Q8_K: per 256 values, d = max / -127 of the value of largest magnitude, q =
// nearest-even(x / d) capped at 127, and the sums of every 16 quants.
void quantize_blocks_256(const float* x, int64_t K, int8_t* q, float* d, int16_t* bsums) {
  for (int64_t b = 0; b < K / 256; ++b) {
    const float* xb = x + 256 * b;
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 256; ++i)
      if (std::fabs(xb[i]) > amax) {
        amax = std::fabs(xb[i]);
        max = xb[i];
      }
    const float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
    for (int i = 0; i < 256; ++i) q[256 * b + i] = int8_t(std::min(127, int(std::nearbyint(iscale * xb[i]))));
    for (int g = 0; g < 16; ++g) {
      int32_t sum = 0;
      for (int i = 0; i < 16; ++i) sum += q[256 * b + 16 * g + i];
      bsums[16 * b + g] = int16_t(sum);
    }
    d[b] = amax != 0.0f ? 1.0f / iscale : 0.0f;
  }
}

// The 32-value types' per-pair lanes (quant_dot.h): d of blocks 2p, 2p + 1 in lanes 0-7, 8-15,
// and -o * sum in lanes 0 and 8 (zero past the last block).
void fill_pair_lanes(QuantizedActivations& a, int64_t m, const int32_t* sums) {
  const int64_t blocks = a.K / 32, pairs = (blocks + 1) / 2;
  const int32_t o = offset_of(a.weight_dtype);
  for (int64_t p = 0; p < pairs; ++p) {
    float* dl = a.d_lanes.data() + (m * pairs + p) * 16;
    int32_t* ol = a.offset_lanes.data() + (m * pairs + p) * 16;
    for (int h = 0; h < 2; ++h) {
      const int64_t b = 2 * p + h;
      const bool present = b < blocks;
      std::fill(dl + 8 * h, dl + 8 * h + 8, present ? a.d[size_t(m * blocks + b)] : 0.0f);
      std::fill(ol + 8 * h, ol + 8 * h + 8, 0);
      if (present) ol[8 * h] = -o * sums[b];
    }
  }
}

}  // namespace

bool has_quant_dot(DType t) { return is_k_quant(t) || t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 ||
                                     t == DType::Q5_1 || t == DType::Q8_0; }

void quantize_activations(QuantizedActivations& a, const float* x, int64_t M, int64_t K, DType weight_dtype) {
  TAIA_CHECK(has_quant_dot(weight_dtype), "[quantize_activations] expected a block-quantized weight type, got ",
             dtype_name(weight_dtype));
  const int64_t B = is_k_quant(weight_dtype) ? 256 : 32;
  TAIA_CHECK(K % B == 0, "[quantize_activations] expected K a multiple of ", B, " for ", dtype_name(weight_dtype),
             ", got ", K);
  a.weight_dtype = weight_dtype;
  a.M = M;
  a.K = K;
  a.q.resize(size_t(M * K));
  a.d.resize(size_t(M * (K / B)));
  if (B == 256) {
    a.bsums.resize(size_t(M * (K / 16)));
#pragma omp parallel for schedule(static) if (M > kMaxRows)
    for (int64_t m = 0; m < M; ++m)
      quantize_blocks_256(x + m * K, K, a.q.data() + m * K, a.d.data() + m * (K / B), a.bsums.data() + m * (K / 16));
    return;
  }
  const int64_t blocks = K / 32, pairs = (blocks + 1) / 2;
  a.s.resize(size_t(M * blocks));
  a.sums.resize(size_t(M * blocks));
  a.d_lanes.resize(size_t(M * pairs * 16));
  a.offset_lanes.resize(size_t(M * pairs * 16));
#pragma omp parallel for schedule(static) if (M > kMaxRows)
  for (int64_t m = 0; m < M; ++m) {
    float* d = a.d.data() + m * blocks;
    int32_t* sums = a.sums.data() + m * blocks;
    quantize_blocks_32(x + m * K, K, a.q.data() + m * K, d, sums);
    for (int64_t b = 0; b < blocks; ++b) a.s[size_t(m * blocks + b)] = d[b] * float(sums[b]);
    fill_pair_lanes(a, m, sums);
  }
}

void round_activations_to_8_bits(float* out, const float* x, int64_t M, int64_t K, DType weight_dtype) {
  const int64_t B = is_k_quant(weight_dtype) ? 256 : 32;
  TAIA_CHECK(has_quant_dot(weight_dtype) && K % B == 0, "[round_activations_to_8_bits] expected K a multiple of ", B,
             " for ", dtype_name(weight_dtype), ", got ", K);
#pragma omp parallel
  {
    QuantizedActivations row;  // one row at a time: [1, K]
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      quantize_activations(row, x + m * K, 1, K, weight_dtype);
      for (int64_t k = 0; k < K; ++k) out[m * K + k] = row.d[size_t(k / B)] * float(row.q[size_t(k)]);
    }
  }
}

void quant_dot_reference(float* y, const QuantizedActivations& xq, const TensorView& w, const float* bias,
                         bool accumulate) {
  const int64_t N = w.shape[0], K = w.shape[1], M = xq.M;
  TAIA_CHECK(K == xq.K && w.dtype == xq.weight_dtype, "[quant_dot_reference] expected activations quantized for ",
             dtype_name(w.dtype), " K ", K, ", got ", dtype_name(xq.weight_dtype), " K ", xq.K);
  const int64_t B = is_k_quant(w.dtype) ? 256 : 32;
  const size_t row_bytes = dtype_bytes(w.dtype, K);
  std::vector<float> wrow(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    dequantize_blocks(w.dtype, static_cast<const uint8_t*>(w.data) + size_t(n) * row_bytes, wrow.data(), K);
    for (int64_t m = 0; m < M; ++m) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k)
        acc += double(wrow[size_t(k)]) * double(xq.d[size_t(m * (K / B) + k / B)]) * double(xq.q[size_t(m * K + k)]);
      float* out = y + m * N + n;
      const float value = float(acc) + (bias ? bias[n] : 0.0f);
      *out = accumulate ? *out + value : value;
    }
  }
}

#if defined(__AVX512BW__) && defined(__AVX512VL__)
namespace {

// acc (16 x int32) += sums of 4 products of u (unsigned bytes) and s (signed bytes). Without
// VNNI through 16-bit pairs, exact while u <= 128 (|s| <= 127: a pair stays below 2^15).
inline __m512i dot_u8s8(__m512i acc, __m512i u, __m512i s) {
#if defined(__AVX512VNNI__)
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

// acc (16 x int32) += sums of 2 products of 16-bit lanes.
inline __m512i dot_s16(__m512i acc, __m512i a, __m512i b) {
#if defined(__AVX512VNNI__)
  return _mm512_dpwssd_epi32(acc, a, b);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

inline float f16_at(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return _cvtsh_ss(bits);
}

inline __m512i load256_zext(const uint8_t* p) {
  return _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512i halves(__m512i lo, __m512i hi) { return _mm512_inserti64x4(lo, _mm512_castsi512_si256(hi), 1); }
inline __m512i bytes(int v) { return _mm512_set1_epi8(char(v)); }

// Bytes whose bit (1 << lo_bit) is set in the 32 bytes at p, for values 0..31; bit hi_bit for 32..63.
inline __mmask64 bit_lanes(const uint8_t* p, int lo_bit, int hi_bit) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const uint64_t lo = _mm256_test_epi8_mask(v, _mm256_set1_epi8(char(1 << lo_bit)));
  const uint64_t hi = _mm256_test_epi8_mask(v, _mm256_set1_epi8(char(1 << hi_bit)));
  return __mmask64(lo | hi << 32);
}

// ---- The 32-value types: two blocks per 64 lanes. quants(b0, b1): the 64 quants of blocks
// b0 and b1 in value order, unsigned (Q8_0: signed); d at byte 0, the minimum at byte 2.

// Nibbles of two blocks' 16 bytes: values 0-15 the low nibbles, 16-31 the high ones.
inline __m512i nibble_pair(const uint8_t* qs0, const uint8_t* qs1) {
  const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0))),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1)), 1);
  const __m512i z = _mm512_shuffle_i64x2(_mm512_castsi256_si512(v), _mm512_castsi256_si512(v), 0x50);  // b0 b0 b1 b1
  return _mm512_and_si512(_mm512_mask_blend_epi64(0xCC, z, _mm512_srli_epi16(z, 4)), bytes(0x0F));
}
// Bit 4 of value j from bit j of each block's u32 qh.
inline __m512i with_high_bits(__m512i u, const uint8_t* qh0, const uint8_t* qh1) {
  uint32_t h0, h1;
  std::memcpy(&h0, qh0, 4);
  std::memcpy(&h1, qh1, 4);
  return _mm512_mask_add_epi8(u, __mmask64(uint64_t(h0) | uint64_t(h1) << 32), u, bytes(16));
}

struct Q4_0Blocks {
  static constexpr int64_t kBytes = 18;
  static constexpr bool kMin = false, kSigned = false, kOffset = true;
  static __m512i quants(const uint8_t* b0, const uint8_t* b1) { return nibble_pair(b0 + 2, b1 + 2); }
};
struct Q4_1Blocks {
  static constexpr int64_t kBytes = 20;
  static constexpr bool kMin = true, kSigned = false, kOffset = false;
  static __m512i quants(const uint8_t* b0, const uint8_t* b1) { return nibble_pair(b0 + 4, b1 + 4); }
};
struct Q5_0Blocks {
  static constexpr int64_t kBytes = 22;
  static constexpr bool kMin = false, kSigned = false, kOffset = true;
  static __m512i quants(const uint8_t* b0, const uint8_t* b1) {
    return with_high_bits(nibble_pair(b0 + 6, b1 + 6), b0 + 2, b1 + 2);
  }
};
struct Q5_1Blocks {
  static constexpr int64_t kBytes = 24;
  static constexpr bool kMin = true, kSigned = false, kOffset = false;
  static __m512i quants(const uint8_t* b0, const uint8_t* b1) {
    return with_high_bits(nibble_pair(b0 + 8, b1 + 8), b0 + 4, b1 + 4);
  }
};
struct Q8_0Blocks {
  static constexpr int64_t kBytes = 34;
  static constexpr bool kMin = false, kSigned = true, kOffset = false;
  static __m512i quants(const uint8_t* b0, const uint8_t* b1) { return halves(load256_zext(b0 + 2), load256_zext(b1 + 2)); }
};

// out[m] = row . x[m] for the M activation rows: per pair of blocks, S = the integer sums of
// q_w * q_x per lane (+ the offset's correction), then acc += S * d_w * d_x; the minimum term
// m_w * s_x of Q4_1 / Q5_1 apart. Q8_0's signed weights: |w| against x negated where w < 0.
template <int M, class T>
void dot_row_32(float* out, const uint8_t* row, const QuantizedActivations& xq, int64_t K) {
  const int64_t blocks = K / 32, pairs = (blocks + 1) / 2;
  __m512 acc[M];
  float mins[M];
  for (int m = 0; m < M; ++m) {
    acc[m] = _mm512_setzero_ps();
    mins[m] = 0.0f;
  }
  for (int64_t p = 0; p < pairs; ++p) {
    const uint8_t* b0 = row + 2 * p * T::kBytes;
    const bool two = 2 * p + 1 < blocks;
    const uint8_t* b1 = two ? b0 + T::kBytes : b0;
    __m512i u = T::quants(b0, b1);
    __mmask64 negative = 0;
    if (T::kSigned) {
      negative = _mm512_movepi8_mask(u);
      u = _mm512_abs_epi8(u);
    }
    const __m512 dw = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f16_at(b0)), _mm512_set1_ps(f16_at(b1)));
    const __mmask64 lanes = two ? ~__mmask64(0) : __mmask64(0xFFFFFFFFull);
    for (int m = 0; m < M; ++m) {
      const int64_t at = (m * pairs + p) * 16;
      __m512i a = _mm512_maskz_loadu_epi8(lanes, xq.q.data() + m * K + 64 * p);
      if (T::kSigned) a = _mm512_mask_sub_epi8(a, negative, _mm512_setzero_si512(), a);
      const __m512i init = T::kOffset ? _mm512_loadu_si512(xq.offset_lanes.data() + at) : _mm512_setzero_si512();
      const __m512i sums = dot_u8s8(init, u, a);
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(dw, _mm512_loadu_ps(xq.d_lanes.data() + at)),
                               acc[m]);
      if (T::kMin) {
        const float* s = xq.s.data() + m * blocks + 2 * p;
        mins[m] += f16_at(b0 + 2) * s[0] + (two ? f16_at(b1 + 2) * s[1] : 0.0f);
      }
    }
  }
  for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(acc[m]) + mins[m];
}

// ---- The K-quants: 256 values per block in four chunks of 64; value = d * sc_g * (q - o) -
// dmin * m_g over groups g of 16 values (sc16 / m16: one 16-bit entry per group; the 32-value
// groups of Q4_K / Q5_K repeat theirs). quants(blk, c): chunk c's 64 unsigned quants.
struct KScales {
  float d = 0.0f, dmin = 0.0f;
  __m256i sc16, m16;
};

inline __m256i load16_i16(const int16_t* v) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v)); }
inline uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
// Eight bytes (lo: entries 0-3, hi: 4-7) as sixteen 16-bit entries, each twice (groups of 32
// values as pairs of groups of 16).
inline __m256i twice_each(uint32_t lo, uint32_t hi) {
  const __m128i v = _mm_cvtsi64_si128(int64_t(uint64_t(lo) | uint64_t(hi) << 32));
  return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v));
}

// Q4_K / Q5_K: d, dmin, 12 bytes of six-bit scales and minimums; chunk c = sub-blocks 2c, 2c + 1,
// the low and high nibbles of qs[32c .. 32c + 31]; Q5_K's bit 4 from bits 2c, 2c + 1 of qh[32].
template <bool kFive>
struct Q45KBlocks {
  static constexpr int64_t kBytes = kFive ? 176 : 144;
  static constexpr int32_t kOffset = 0;
  static constexpr bool kMin = true;
  // The 12 bytes as words a, b, c: sub-blocks 0-3 take the low six bits of a (scales) and b
  // (minimums); 4-7 the nibbles of c (scales low, minimums high) below the top two bits of a / b.
  static void scales(const uint8_t* blk, KScales& s) {
    s.d = f16_at(blk);
    s.dmin = f16_at(blk + 2);
    const uint32_t a = u32_at(blk + 4), b = u32_at(blk + 8), c = u32_at(blk + 12);
    const uint32_t six = 0x3F3F3F3F, four = 0x0F0F0F0F, top = 0x30303030;
    s.sc16 = twice_each(a & six, (c & four) | ((a >> 2) & top));
    s.m16 = twice_each(b & six, ((c >> 4) & four) | ((b >> 2) & top));
  }
  static __m512i quants(const uint8_t* blk, int c) {
    const __m512i v = load256_zext(blk + (kFive ? 48 : 16) + 32 * c);
    const __m512i u = _mm512_and_si512(halves(v, _mm512_srli_epi16(v, 4)), bytes(0x0F));
    if (!kFive) return u;
    return _mm512_mask_add_epi8(u, bit_lanes(blk + 16, 2 * c, 2 * c + 1), u, bytes(16));
  }
};

// Q6_K: ql[128], qh[64], 16 int8 scales, d; chunk c (h = c / 2): the low (c even) or high nibbles
// of ql[64h .. 64h + 63], bits 4-5 from qh[32h + j] >> (4 (c % 2)) (values 0-31) or >> (4 (c % 2)
// + 2) (32-63); offset 32.
struct Q6KBlocks {
  static constexpr int64_t kBytes = 210;
  static constexpr int32_t kOffset = 32;
  static constexpr bool kMin = false;
  static void scales(const uint8_t* blk, KScales& s) {
    s.d = f16_at(blk + 208);
    s.sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
    s.m16 = _mm256_setzero_si256();
  }
  static __m512i quants(const uint8_t* blk, int c) {
    const int h = c / 2, odd = c % 2;
    __m512i low = _mm512_loadu_si512(blk + 64 * h);
    if (odd) low = _mm512_srli_epi16(low, 4);
    const __m512i qh = load256_zext(blk + 128 + 32 * h);
    const __m512i high = halves(_mm512_srli_epi16(qh, 4 * odd), _mm512_srli_epi16(qh, 4 * odd + 2));
    return _mm512_or_si512(_mm512_and_si512(low, bytes(0x0F)), _mm512_and_si512(_mm512_slli_epi16(high, 4), bytes(0x30)));
  }
};

// Q2_K / Q3_K's two low bits: value e = (qs[32h + j] >> 2s) & 3 with h = e / 128, s = (e % 128) /
// 32, j = e % 32; chunk c takes s = 2 (c % 2) and 2 (c % 2) + 1 of qs[32 (c / 2) ..].
inline __m512i two_bit_chunk(const uint8_t* qs, int c) {
  const __m512i v = load256_zext(qs + 32 * (c / 2));
  const int s = 4 * (c % 2);
  return _mm512_and_si512(halves(_mm512_srli_epi16(v, s), _mm512_srli_epi16(v, s + 2)), bytes(3));
}

// Q2_K: scales[16] (scale: low nibble, minimum: high), qs[64], d, dmin.
struct Q2KBlocks {
  static constexpr int64_t kBytes = 84;
  static constexpr int32_t kOffset = 0;
  static constexpr bool kMin = true;
  static void scales(const uint8_t* blk, KScales& s) {
    const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    s.sc16 = _mm256_and_si256(b, _mm256_set1_epi16(0x0F));
    s.m16 = _mm256_srli_epi16(b, 4);
    s.d = f16_at(blk + 80);
    s.dmin = f16_at(blk + 82);
  }
  static __m512i quants(const uint8_t* blk, int c) { return two_bit_chunk(blk + 16, c); }
};

// Q3_K: hmask[32], qs[64], 12 bytes of sixteen six-bit scales (offset 32), d; q = low bits + 4
// where bit e / 32 of hmask[e % 32] is set; offset 4.
struct Q3KBlocks {
  static constexpr int64_t kBytes = 110;
  static constexpr int32_t kOffset = 4;
  static constexpr bool kMin = false;
  // The 12 bytes as words a, b, c: scale g's low four bits are the low (g < 8) or high nibble of
  // byte g % 8 of a, b; its top two bits sit at bit 2 (g / 4) of byte g % 4 of c.
  static void scales(const uint8_t* blk, KScales& s) {
    const uint32_t a = u32_at(blk + 96), b = u32_at(blk + 100), c = u32_at(blk + 104);
    const uint32_t four = 0x0F0F0F0F, two = 0x03030303;
    const __m128i v = _mm_setr_epi32(int32_t((a & four) | (c & two) << 4), int32_t((b & four) | ((c >> 2) & two) << 4),
                                     int32_t(((a >> 4) & four) | ((c >> 4) & two) << 4),
                                     int32_t(((b >> 4) & four) | ((c >> 6) & two) << 4));
    s.sc16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), _mm256_set1_epi16(32));
    s.m16 = _mm256_setzero_si256();
    s.d = f16_at(blk + 108);
  }
  static __m512i quants(const uint8_t* blk, int c) {
    const __m512i u = two_bit_chunk(blk + 32, c);
    return _mm512_mask_add_epi8(u, bit_lanes(blk, 2 * c, 2 * c + 1), u, bytes(4));
  }
};

// out[m] = row . x[m]: per block, T = sum over groups of sc_g * (sum of q_w * q_x) in 16 int32
// lanes (u8 x s8 pairs, then x sc_g), acc += T * d * d_x; the offset and minimum terms from
// the activations' sums of 16 (o * sc_g * bsum_g, m_g * bsum_g) once per block.
template <int M, class T>
void dot_row_k(float* out, const uint8_t* row, const QuantizedActivations& xq, int64_t K) {
  const int64_t blocks = K / 256;
  __m512i group_of[4];  // 16-bit entry e of chunk c -> group 4c + e / 8
  for (int c = 0; c < 4; ++c) {
    alignas(64) int16_t idx[32];
    for (int e = 0; e < 32; ++e) idx[e] = int16_t(4 * c + e / 8);
    group_of[c] = _mm512_load_si512(idx);
  }
  __m512 acc[M];
  __m256 corrections[M];  // the offset and minimum terms, 8 partial sums
  for (int m = 0; m < M; ++m) {
    acc[m] = _mm512_setzero_ps();
    corrections[m] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = row + b * T::kBytes;
    KScales s;
    T::scales(blk, s);
    __m512i sums[M];
    for (int m = 0; m < M; ++m) sums[m] = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i u = T::quants(blk, c);
      const __m512i scale = _mm512_permutexvar_epi16(group_of[c], _mm512_zextsi256_si512(s.sc16));
      for (int m = 0; m < M; ++m) {
        const __m512i a = _mm512_loadu_si512(xq.q.data() + m * K + 256 * b + 64 * c);
        sums[m] = dot_s16(sums[m], _mm512_maddubs_epi16(u, a), scale);
      }
    }
    for (int m = 0; m < M; ++m) {
      const float dx = xq.d[size_t(m * blocks + b)];
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[m]), _mm512_set1_ps(s.d * dx), acc[m]);
      const __m256i bs = load16_i16(xq.bsums.data() + (m * blocks + b) * 16);
      if (T::kOffset)
        corrections[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s.sc16, bs)),
                                         _mm256_set1_ps(-float(T::kOffset) * s.d * dx), corrections[m]);
      if (T::kMin)
        corrections[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s.m16, bs)),
                                         _mm256_set1_ps(-s.dmin * dx), corrections[m]);
    }
  }
  for (int m = 0; m < M; ++m) {
    const __m128 c = _mm_add_ps(_mm256_castps256_ps128(corrections[m]), _mm256_extractf128_ps(corrections[m], 1));
    out[m] = _mm512_reduce_add_ps(acc[m]) + _mm_cvtss_f32(_mm_hadd_ps(_mm_hadd_ps(c, c), _mm_hadd_ps(c, c)));
  }
}

using RowKernel = void (*)(float* out, const uint8_t* row, const QuantizedActivations& xq, int64_t K);

template <class T>
RowKernel rows_32(size_t i) {
  static constexpr RowKernel kByRows[kMaxRows] = {dot_row_32<1, T>, dot_row_32<2, T>, dot_row_32<3, T>, dot_row_32<4, T>,
                                                  dot_row_32<5, T>, dot_row_32<6, T>, dot_row_32<7, T>, dot_row_32<8, T>};
  return kByRows[i];
}
template <class T>
RowKernel rows_k(size_t i) {
  static constexpr RowKernel kByRows[kMaxRows] = {dot_row_k<1, T>, dot_row_k<2, T>, dot_row_k<3, T>, dot_row_k<4, T>,
                                                  dot_row_k<5, T>, dot_row_k<6, T>, dot_row_k<7, T>, dot_row_k<8, T>};
  return kByRows[i];
}

RowKernel row_kernel(DType t, int64_t M) {
  const size_t i = size_t(M - 1);
  switch (t) {
    case DType::Q4_0: return rows_32<Q4_0Blocks>(i);
    case DType::Q4_1: return rows_32<Q4_1Blocks>(i);
    case DType::Q5_0: return rows_32<Q5_0Blocks>(i);
    case DType::Q5_1: return rows_32<Q5_1Blocks>(i);
    case DType::Q8_0: return rows_32<Q8_0Blocks>(i);
    case DType::Q2_K: return rows_k<Q2KBlocks>(i);
    case DType::Q3_K: return rows_k<Q3KBlocks>(i);
    case DType::Q4_K: return rows_k<Q45KBlocks<false>>(i);
    case DType::Q5_K: return rows_k<Q45KBlocks<true>>(i);
    case DType::Q6_K: return rows_k<Q6KBlocks>(i);
    default: return nullptr;
  }
}

}  // namespace

void quant_dot_matvec(float* y, const QuantizedActivations& xq, const TensorView& w, const float* bias,
                      bool accumulate) {
  const int64_t N = w.shape[0], K = w.shape[1], M = xq.M;
  TAIA_CHECK(K == xq.K && w.dtype == xq.weight_dtype, "[quant_dot_matvec] expected activations quantized for ",
             dtype_name(w.dtype), " K ", K, ", got ", dtype_name(xq.weight_dtype), " K ", xq.K);
  TAIA_CHECK(M >= 1 && M <= kMaxRows, "[quant_dot_matvec] expected 1..", kMaxRows, " activation rows, got ", M);
  const RowKernel kernel = row_kernel(w.dtype, M);
  TAIA_CHECK(kernel != nullptr, "[quant_dot_matvec] expected a block-quantized weight, got ", dtype_name(w.dtype));
  const int64_t row_bytes = int64_t(dtype_bytes(w.dtype, K));
  const uint8_t* rows = static_cast<const uint8_t*>(w.data);
#pragma omp parallel for schedule(static) if (N * K >= kMinParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    float v[kMaxRows];
    kernel(v, rows + n * row_bytes, xq, K);
    for (int64_t m = 0; m < M; ++m) {
      const float value = v[m] + (bias ? bias[n] : 0.0f);
      float* out = y + m * N + n;
      *out = accumulate ? *out + value : value;
    }
  }
}

#else

void quant_dot_matvec(float* y, const QuantizedActivations& xq, const TensorView& w, const float* bias,
                      bool accumulate) {
  quant_dot_reference(y, xq, w, bias, accumulate);  // no AVX-512 kernels on this machine
}

#endif

}  // namespace taia
