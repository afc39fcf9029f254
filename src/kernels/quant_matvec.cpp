#include "kernels/quant_matvec.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/ggml_quants.h"

namespace taia {
namespace {

constexpr int64_t kMaxRows = 8;                 // activation rows per call (the router's kMatvecMaxRows)
constexpr int64_t kMinParallelWork = 1 << 16;  // weight values below which one thread runs

#if defined(__AVX512F__)
// acc[m] += block[0..n) . x[m][0..n), n a multiple of 16 (block sizes are 32 or 256).
inline void accumulate_block(__m512* acc, const float* block, const float* x, int64_t K, int64_t M, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 wv = _mm512_loadu_ps(block + i);
    for (int64_t m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * K + i), acc[m]);
  }
}

// The fast kernels: 16 weights at a time dequantized in registers (shared by the M activation
// rows), then one FMA per row. Values equal the reference dequantization's up to the rounding
// of d * scale products; sums run in another order than the widened path's.
inline float f16_scalar(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return _cvtsh_ss(bits);
}

// Where a kernel's 16 dequantized weights (values k .. k + 15 of the row) go. FmaSink: one FMA
// per activation row, the accumulators in registers (M is a compile-time constant). StoreSink:
// into an F32 row (the widened tiles of prefill).
template <int M>
struct FmaSink {
  __m512 acc[M];
  const float* x;
  int64_t K;
  inline void operator()(__m512 w, int64_t k) {
    for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + m * K + k), acc[m]);
  }
};

struct StoreSink {
  float* out;
  inline void operator()(__m512 w, int64_t k) { _mm512_storeu_ps(out + k, w); }
};

inline __m512i bytes16(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// Q8_0: d, then 32 int8 quants.
template <class Sink>
void rows_q8_0(Sink& sink, const uint8_t* row, int64_t K) {
  for (int64_t k0 = 0; k0 < K; k0 += 32, row += 34) {
    const __m512 d = _mm512_set1_ps(f16_scalar(row));
    for (int h = 0; h < 2; ++h) {
      const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 + 16 * h)));
      sink(_mm512_mul_ps(d, _mm512_cvtepi32_ps(q)), k0 + 16 * h);
    }
  }
}

// Q4_0: d, then 16 bytes: values 0..15 the low nibbles, 16..31 the high ones, offset 8.
template <class Sink>
void rows_q4_0(Sink& sink, const uint8_t* row, int64_t K) {
  const __m512i nibble = _mm512_set1_epi32(0x0F), eight = _mm512_set1_epi32(8);
  for (int64_t k0 = 0; k0 < K; k0 += 32, row += 18) {
    const __m512 d = _mm512_set1_ps(f16_scalar(row));
    const __m512i b = bytes16(row + 2);
    const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(b, nibble), eight);
    const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(b, 4), eight);
    sink(_mm512_mul_ps(d, _mm512_cvtepi32_ps(lo)), k0);
    sink(_mm512_mul_ps(d, _mm512_cvtepi32_ps(hi)), k0 + 16);
  }
}

// Q4_1 / Q5_0 / Q5_1: like Q4_0 (d, then m for the _1 types: value = d * q + m, q unsigned),
// the Q5 types with bit j of the u32 qh as bit 4 of quant j (offset 16 for Q5_0).
template <bool kHasMin, bool kFiveBit, class Sink>
void rows_q4_q5(Sink& sink, const uint8_t* row, int64_t K) {
  constexpr int64_t kBytes = 2 + (kHasMin ? 2 : 0) + (kFiveBit ? 4 : 0) + 16;
  const __m512i nibble = _mm512_set1_epi32(0x0F), one = _mm512_set1_epi32(1);
  const __m512i lanes_lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i lanes_hi = _mm512_add_epi32(lanes_lo, _mm512_set1_epi32(16));
  for (int64_t k0 = 0; k0 < K; k0 += 32, row += kBytes) {
    const __m512 d = _mm512_set1_ps(f16_scalar(row));
    const __m512 mn = _mm512_set1_ps(kHasMin ? f16_scalar(row + 2) : 0.0f);
    const uint8_t* p = row + (kHasMin ? 4 : 2);
    uint32_t qh = 0;
    if (kFiveBit) std::memcpy(&qh, p, 4);
    const __m512i b = bytes16(p + (kFiveBit ? 4 : 0));
    __m512i lo = _mm512_and_si512(b, nibble), hi = _mm512_srli_epi32(b, 4);
    if (kFiveBit) {
      const __m512i h = _mm512_set1_epi32(int32_t(qh));
      lo = _mm512_or_si512(lo, _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(h, lanes_lo), one), 4));
      hi = _mm512_or_si512(hi, _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(h, lanes_hi), one), 4));
    }
    if (!kHasMin) {  // Q5_0: offset 16 (Q4_0 has its own kernel)
      const __m512i sixteen = _mm512_set1_epi32(16);
      lo = _mm512_sub_epi32(lo, sixteen);
      hi = _mm512_sub_epi32(hi, sixteen);
    }
    sink(_mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), d, mn), k0);
    sink(_mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), d, mn), k0 + 16);
  }
}
template <class Sink>
void rows_q4_1(Sink& sink, const uint8_t* row, int64_t K) { rows_q4_q5<true, false>(sink, row, K); }
template <class Sink>
void rows_q5_0(Sink& sink, const uint8_t* row, int64_t K) { rows_q4_q5<false, true>(sink, row, K); }
template <class Sink>
void rows_q5_1(Sink& sink, const uint8_t* row, int64_t K) { rows_q4_q5<true, true>(sink, row, K); }

// Q4_K: d, dmin, 12 bytes of six-bit scales and minimums, 128 bytes of nibbles; sub-block j
// (32 values) = d * sc_j * q - dmin * m_j, its quants the low (j even) or high (j odd) nibbles
// of bytes 32 (j / 2) ... + 31. Q5_K (kHigh): the same with qh[32] before the nibbles, bit j of
// qh[i] being bit 4 of value i of sub-block j.
template <bool kHigh, class Sink>
void rows_q4_q5_k(Sink& sink, const uint8_t* row, int64_t K) {
  constexpr int64_t kBlockBytes = kHigh ? 176 : 144, kQsOffset = kHigh ? 48 : 16;
  const __m512i nibble = _mm512_set1_epi32(0x0F), one = _mm512_set1_epi32(1);
  for (int64_t k0 = 0; k0 < K; k0 += 256, row += kBlockBytes) {
    const float d = f16_scalar(row), dmin = f16_scalar(row + 2);
    const uint8_t* s = row + 4;
    const uint8_t* qh = row + 16;
    const uint8_t* qs = row + kQsOffset;
    for (int j = 0; j < 8; ++j) {
      int sc = 0, mn = 0;
      k_quant_scale_min(s, j, sc, mn);
      const __m512 scale = _mm512_set1_ps(d * float(sc)), min = _mm512_set1_ps(dmin * float(mn));
      for (int h = 0; h < 2; ++h) {
        const __m512i b = bytes16(qs + 32 * (j / 2) + 16 * h);
        __m512i q = (j % 2) ? _mm512_srli_epi32(b, 4) : _mm512_and_si512(b, nibble);
        if (kHigh) {
          const __m512i high = _mm512_and_si512(_mm512_srli_epi32(bytes16(qh + 16 * h), j), one);
          q = _mm512_or_si512(q, _mm512_slli_epi32(high, 4));
        }
        sink(_mm512_fmsub_ps(_mm512_cvtepi32_ps(q), scale, min), k0 + 32 * j + 16 * h);
      }
    }
  }
}
template <class Sink>
void rows_q4_k(Sink& sink, const uint8_t* row, int64_t K) { rows_q4_q5_k<false>(sink, row, K); }
template <class Sink>
void rows_q5_k(Sink& sink, const uint8_t* row, int64_t K) { rows_q4_q5_k<true>(sink, row, K); }

// Q6_K: 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d; value e =
// d * sc[e / 16] * (q - 32). A group of 16 values reads 16 consecutive bytes of each array.
template <class Sink>
void rows_q6_k(Sink& sink, const uint8_t* row, int64_t K) {
  const __m512i nibble = _mm512_set1_epi32(0x0F), two_bits = _mm512_set1_epi32(3), offset = _mm512_set1_epi32(32);
  for (int64_t k0 = 0; k0 < K; k0 += 256, row += 210) {
    const uint8_t* ql = row;
    const uint8_t* qh = row + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(row + 192);
    const float d = f16_scalar(row + 208);
    for (int g = 0; g < 16; ++g) {
      const int h = g / 8, r = (g % 8) * 16;
      const __m512i low = _mm512_and_si512(_mm512_srli_epi32(bytes16(ql + 64 * h + r % 64), 4 * (r / 64)), nibble);
      const __m512i high = _mm512_and_si512(_mm512_srli_epi32(bytes16(qh + 32 * h + r % 32), 2 * (r / 32)), two_bits);
      const __m512i q = _mm512_sub_epi32(_mm512_or_si512(low, _mm512_slli_epi32(high, 4)), offset);
      sink(_mm512_mul_ps(_mm512_set1_ps(d * float(sc[g])), _mm512_cvtepi32_ps(q)), k0 + 16 * g);
    }
  }
}

// Q2_K: scales[16] (low nibble scale, high nibble minimum of 16 values), 64 bytes of 2-bit
// quants, d, dmin; value e: (qs[32 h + j] >> 2 s) & 3 with h = e / 128, s = (e % 128) / 32,
// j = e % 32, times d * scale minus dmin * min.
template <class Sink>
void rows_q2_k(Sink& sink, const uint8_t* row, int64_t K) {
  const __m512i two_bits = _mm512_set1_epi32(3);
  for (int64_t k0 = 0; k0 < K; k0 += 256, row += 84) {
    const uint8_t* sc = row;
    const uint8_t* qs = row + 16;
    const float d = f16_scalar(row + 80), dmin = f16_scalar(row + 82);
    for (int g = 0; g < 16; ++g) {
      const int h = g / 8, shift = 2 * ((g % 8) / 2), j0 = 16 * (g % 2);
      const __m512i q = _mm512_and_si512(_mm512_srli_epi32(bytes16(qs + 32 * h + j0), shift), two_bits);
      const __m512 scale = _mm512_set1_ps(d * float(sc[g] & 0x0F)), min = _mm512_set1_ps(dmin * float(sc[g] >> 4));
      sink(_mm512_fmsub_ps(_mm512_cvtepi32_ps(q), scale, min), k0 + 16 * g);
    }
  }
}

// Q3_K: hmask[32], 64 bytes of 2-bit low quants, 12 bytes of sixteen 6-bit scales (offset 32),
// d; value e: low bits as Q2_K's, minus 4 unless bit e / 32 of hmask[e % 32] is set.
template <class Sink>
void rows_q3_k(Sink& sink, const uint8_t* row, int64_t K) {
  const __m512i two_bits = _mm512_set1_epi32(3), one = _mm512_set1_epi32(1);
  for (int64_t k0 = 0; k0 < K; k0 += 256, row += 110) {
    const uint8_t* hmask = row;
    const uint8_t* qs = row + 32;
    const uint8_t* sc = row + 96;
    const float d = f16_scalar(row + 108);
    for (int g = 0; g < 16; ++g) {
      const int low = g < 8 ? (sc[g] & 0x0F) : (sc[g - 8] >> 4);
      const int high = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
      const float dl = d * float(int8_t(uint8_t(low | (high << 4))) - 32);
      const int h = g / 8, shift = 2 * ((g % 8) / 2), j0 = 16 * (g % 2);
      const __m512i ql = _mm512_and_si512(_mm512_srli_epi32(bytes16(qs + 32 * h + j0), shift), two_bits);
      const __m512i hbit = _mm512_and_si512(_mm512_srli_epi32(bytes16(hmask + j0), g / 2), one);
      const __m512i q = _mm512_sub_epi32(ql, _mm512_slli_epi32(_mm512_xor_si512(hbit, one), 2));
      sink(_mm512_mul_ps(_mm512_set1_ps(dl), _mm512_cvtepi32_ps(q)), k0 + 16 * g);
    }
  }
}

// out[m] = row . x[m] for M rows, a type's kernel with its accumulators in registers.
using RowsKernel = void (*)(float* out, const uint8_t* row, const float* x, int64_t K);
template <int M, template <class> class Kernel>
void run_rows(float* out, const uint8_t* row, const float* x, int64_t K) {
  FmaSink<M> sink;
  for (int m = 0; m < M; ++m) sink.acc[m] = _mm512_setzero_ps();
  sink.x = x;
  sink.K = K;
  Kernel<FmaSink<M>>::run(sink, row, K);
  for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(sink.acc[m]);
}

// Decode of the common 32-value types, specialised: each block is decoded into its scale d and
// 2 x 16 unscaled quants (lo, hi), the sums of q * x run unscaled and are scaled once per block
// (one multiply fewer per 16 weights than the sink), and 4- / 5-bit quants become floats
// through a 16-entry table (vpermps) instead of a subtract and a conversion.
struct ScaledBlock {
  __m512 d, lo, hi;
};

// Q8_0: d, then 32 int8 quants.
struct DecodeQ8_0 {
  static constexpr int64_t kBytes = 34;
  ScaledBlock operator()(const uint8_t* blk) const {
    auto quants = [](const uint8_t* p) {
      return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    };
    return {_mm512_set1_ps(f16_scalar(blk)), quants(blk + 2), quants(blk + 18)};
  }
};

// Q4_0: d, then 16 bytes of nibbles (low: values 0..15, high: 16..31), offset 8.
struct DecodeQ4_0 {
  static constexpr int64_t kBytes = 18;
  const __m512 table = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i nibble = _mm512_set1_epi32(0x0F);
  ScaledBlock operator()(const uint8_t* blk) const {
    const __m512i b = bytes16(blk + 2);
    return {_mm512_set1_ps(f16_scalar(blk)), _mm512_permutexvar_ps(_mm512_and_si512(b, nibble), table),
            _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table)};
  }
};

// Q5_0: the low nibble indexes a table of n - 16, and the lanes whose bit of qh is set (a mask
// register straight from qh) add 16.
struct DecodeQ5_0 {
  static constexpr int64_t kBytes = 22;
  const __m512 table = _mm512_setr_ps(-16, -15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1);
  const __m512 sixteen = _mm512_set1_ps(16.0f);
  const __m512i nibble = _mm512_set1_epi32(0x0F);
  ScaledBlock operator()(const uint8_t* blk) const {
    uint32_t qh;
    std::memcpy(&qh, blk + 2, 4);
    const __m512i b = bytes16(blk + 6);
    const __m512 lo = _mm512_permutexvar_ps(_mm512_and_si512(b, nibble), table);
    const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
    return {_mm512_set1_ps(f16_scalar(blk)), _mm512_mask_add_ps(lo, __mmask16(qh & 0xFFFF), lo, sixteen),
            _mm512_mask_add_ps(hi, __mmask16(qh >> 16), hi, sixteen)};
  }
};

// out[m] = row . x[m]: per block acc[m] += d * (lo . x[m][0..16) + hi . x[m][16..32)).
template <int M, class Decode>
void dot_blocks(float* out, const uint8_t* row, const float* x, int64_t K) {
  const Decode decode;
  __m512 acc[M];
  for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t k0 = 0; k0 < K; k0 += 32, row += Decode::kBytes) {
    const ScaledBlock b = decode(row);
    for (int m = 0; m < M; ++m) {
      const float* xm = x + m * K + k0;
      const __m512 s = _mm512_fmadd_ps(b.hi, _mm512_loadu_ps(xm + 16), _mm512_mul_ps(b.lo, _mm512_loadu_ps(xm)));
      acc[m] = _mm512_fmadd_ps(b.d, s, acc[m]);
    }
  }
  for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(acc[m]);
}

// A row widened to F32 by a type's kernel.
using WidenKernel = void (*)(float* out, const uint8_t* row, int64_t K);
template <template <class> class Kernel>
void widen_row(float* out, const uint8_t* row, int64_t K) {
  StoreSink sink{out};
  Kernel<StoreSink>::run(sink, row, K);
}

#define TAIA_KERNEL(fn)                                                                      \
  template <class Sink>                                                                      \
  struct fn##_k {                                                                             \
    static void run(Sink& sink, const uint8_t* row, int64_t K) { fn<Sink>(sink, row, K); }   \
  };
TAIA_KERNEL(rows_q8_0)
TAIA_KERNEL(rows_q4_0)
TAIA_KERNEL(rows_q4_1)
TAIA_KERNEL(rows_q5_0)
TAIA_KERNEL(rows_q5_1)
TAIA_KERNEL(rows_q4_k)
TAIA_KERNEL(rows_q5_k)
TAIA_KERNEL(rows_q6_k)
TAIA_KERNEL(rows_q2_k)
TAIA_KERNEL(rows_q3_k)
#undef TAIA_KERNEL

struct FastKernels {
  DType dtype;
  RowsKernel rows[kMaxRows];
  WidenKernel widen;
};
#define TAIA_ENTRY(dtype, fn)                                                                                    \
  {dtype,                                                                                                        \
   {run_rows<1, fn##_k>, run_rows<2, fn##_k>, run_rows<3, fn##_k>, run_rows<4, fn##_k>, run_rows<5, fn##_k>,    \
    run_rows<6, fn##_k>, run_rows<7, fn##_k>, run_rows<8, fn##_k>},                                             \
   widen_row<fn##_k>}
#define TAIA_DOT_ENTRY(dtype, decode, fn)                                                                     \
  {dtype,                                                                                                      \
   {dot_blocks<1, decode>, dot_blocks<2, decode>, dot_blocks<3, decode>, dot_blocks<4, decode>,               \
    dot_blocks<5, decode>, dot_blocks<6, decode>, dot_blocks<7, decode>, dot_blocks<8, decode>},              \
   widen_row<fn##_k>}
const FastKernels kFast[] = {
    TAIA_DOT_ENTRY(DType::Q8_0, DecodeQ8_0, rows_q8_0), TAIA_DOT_ENTRY(DType::Q4_0, DecodeQ4_0, rows_q4_0),
    TAIA_ENTRY(DType::Q4_1, rows_q4_1),
    TAIA_DOT_ENTRY(DType::Q5_0, DecodeQ5_0, rows_q5_0), TAIA_ENTRY(DType::Q5_1, rows_q5_1), TAIA_ENTRY(DType::Q4_K, rows_q4_k),
    TAIA_ENTRY(DType::Q5_K, rows_q5_k), TAIA_ENTRY(DType::Q6_K, rows_q6_k), TAIA_ENTRY(DType::Q2_K, rows_q2_k),
    TAIA_ENTRY(DType::Q3_K, rows_q3_k),
};
#undef TAIA_ENTRY
#undef TAIA_DOT_ENTRY

const FastKernels* fast_kernels(DType dtype) {
  for (const FastKernels& f : kFast)
    if (f.dtype == dtype) return &f;
  return nullptr;
}

RowsKernel fast_kernel(DType dtype, int64_t M) {
  const FastKernels* f = fast_kernels(dtype);
  return f ? f->rows[M - 1] : nullptr;
}

WidenKernel fast_widen(DType dtype) {
  const FastKernels* f = fast_kernels(dtype);
  return f ? f->widen : nullptr;
}
#endif

#if !defined(__AVX512F__)
using RowsKernel = void (*)(float*, const uint8_t*, const float*, int64_t);
using WidenKernel = void (*)(float*, const uint8_t*, int64_t);
RowsKernel fast_kernel(DType, int64_t) { return nullptr; }
WidenKernel fast_widen(DType) { return nullptr; }
#endif

// One weight row against the M activation rows: a type's fast kernel, or its blocks widened one
// at a time into an L1 buffer (the reference path, every type).
void row_dot(float* out, const uint8_t* row, const float* x, int64_t M, int64_t K, int64_t bv, int64_t bb,
             DequantizeBlockFn dequantize, RowsKernel fast) {
  if (fast) {
    fast(out, row, x, K);
    return;
  }
  alignas(64) float block[256];
#if defined(__AVX512F__)
  __m512 acc[kMaxRows];
  for (int64_t m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t k0 = 0, b = 0; k0 < K; k0 += bv, ++b) {
    dequantize(row + b * bb, block);
    accumulate_block(acc, block, x + k0, K, M, bv);
  }
  for (int64_t m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(acc[m]);
#else
  float acc[kMaxRows] = {};
  for (int64_t k0 = 0, b = 0; k0 < K; k0 += bv, ++b) {
    dequantize(row + b * bb, block);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t i = 0; i < bv; ++i) acc[m] += block[i] * x[m * K + k0 + i];
  }
  for (int64_t m = 0; m < M; ++m) out[m] = acc[m];
#endif
}

}  // namespace

namespace {
bool g_fast_kernels = true;
}
bool use_fast_kernels() { return g_fast_kernels; }
void set_quant_fast_kernels(bool on) { g_fast_kernels = on; }

void quant_widen_rows(const TensorView& w, int64_t n0, int64_t rows, float* out) {
  const int64_t K = w.shape[1];
  const size_t row_bytes = dtype_bytes(w.dtype, K);
  const uint8_t* src = static_cast<const uint8_t*>(w.data) + size_t(n0) * row_bytes;
  const WidenKernel widen = use_fast_kernels() ? fast_widen(w.dtype) : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    if (widen)
      widen(out + r * K, src + size_t(r) * row_bytes, K);
    else
      convert_to_f32(w.dtype, src + size_t(r) * row_bytes, out + r * K, size_t(K));
  }
}

void quant_matvec(float* y, const float* x, const TensorView& w, const float* bias, int64_t M, bool accumulate) {
  const DequantizeBlockFn dequantize = block_dequantizer(w.dtype);
  TAIA_CHECK(dequantize != nullptr, "[quant_matvec] expected a block-quantized weight, got ", dtype_name(w.dtype),
             " for '", w.name, "'");
  TAIA_CHECK(M >= 1 && M <= kMaxRows, "[quant_matvec] expected 1..", kMaxRows, " activation rows, got ", M);
  const int64_t N = w.shape[0], K = w.shape[1];
  const int64_t bv = block_values(w.dtype), bb = block_bytes(w.dtype);
  const int64_t row_bytes = int64_t(dtype_bytes(w.dtype, K));
  const uint8_t* rows = static_cast<const uint8_t*>(w.data);
  const RowsKernel fast = use_fast_kernels() ? fast_kernel(w.dtype, M) : nullptr;
#pragma omp parallel for schedule(static) if (N * K >= kMinParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    float v[kMaxRows];
    row_dot(v, rows + n * row_bytes, x, M, K, bv, bb, dequantize, fast);
    for (int64_t m = 0; m < M; ++m) {
      const float value = v[m] + (bias ? bias[n] : 0.0f);
      float* out = y + m * N + n;
      *out = accumulate ? *out + value : value;
    }
  }
}

}  // namespace taia
