#include "kernels/quant_packed.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace taia {
namespace {

constexpr int64_t kRows = 16;     // weight rows per group: one per 32-bit lane of a zmm
constexpr int64_t kMaxMRows = 8;  // activation rows per pass over a group's blocks
constexpr int64_t kMinParallelWork = 1 << 16;

int chunks_of(DType t) { return t == DType::Q4_0 ? 4 : 8; }
size_t block_bytes_of(DType t) { return t == DType::Q4_0 ? 18 : 34; }

// Rows [g * 16, g * 16 + 16) of the source into group g (quant_packed.h's layout): per block the
// 16 rows' scales, and each row's 4-byte words of quants into its lane of the chunks.
void pack_group(PackedQuantWeight& p, const uint8_t* src, int64_t row_bytes, int64_t g) {
  const int C = chunks_of(p.dtype);
  const size_t bb = block_bytes_of(p.dtype);
  const uint32_t flip = p.dtype == DType::Q4_0 ? 0u : 0x80808080u;  // Q8_0: + 128 per byte
  for (int64_t b = 0; b < p.blocks; ++b) {
    uint16_t* scales = const_cast<uint16_t*>(p.scales()) + (g * p.blocks + b) * kRows;
    auto* lines = const_cast<PackedQuantWeight::Line*>(p.quants()) + (g * p.blocks + b) * C;
    for (int64_t r = 0; r < kRows; ++r) {
      const int64_t n = g * kRows + r;
      if (n >= p.N) {  // padding rows: zero scale, zero quants
        scales[r] = 0;
        for (int c = 0; c < C; ++c) std::memset(lines[c].bytes + 4 * r, 0, 4);
        continue;
      }
      const uint8_t* block = src + n * row_bytes + size_t(b) * bb;
      std::memcpy(&scales[r], block, 2);
      for (int c = 0; c < C; ++c) {
        uint32_t word;
        std::memcpy(&word, block + 2 + 4 * c, 4);
        word ^= flip;
        std::memcpy(lines[c].bytes + 4 * r, &word, 4);
      }
    }
  }
}

}  // namespace

bool has_packed_quant(DType t) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
#if defined(__AVX512VNNI__)
  return t == DType::Q4_0 || t == DType::Q8_0;
#else
  return t == DType::Q4_0;
#endif
#else
  (void)t;
  return false;
#endif
}

PackedQuantWeight pack_quant_rows(const TensorView& w, const std::function<void(const void*, size_t)>& release) {
  TAIA_CHECK(w.dtype == DType::Q4_0 || w.dtype == DType::Q8_0, "[pack_quant_rows] expected a Q4_0 or Q8_0 weight, got '",
             w.name, "' in ", dtype_name(w.dtype));
  TAIA_CHECK(w.rank() == 2 && w.is_contiguous() && w.shape[1] % 32 == 0, "[pack_quant_rows] expected a contiguous [N, K] ",
             "weight with K a multiple of 32, got '", w.name, "' ", w.shape_string());
  PackedQuantWeight p;
  p.dtype = w.dtype;
  p.N = w.shape[0];
  p.K = w.shape[1];
  p.groups = (p.N + kRows - 1) / kRows;
  p.blocks = p.K / 32;
  p.memory = PageBuffer(p.bytes());
  const int64_t row_bytes = int64_t(dtype_bytes(w.dtype, p.K));
  const auto* src = static_cast<const uint8_t*>(w.data);
  constexpr int64_t kSliceGroups = 64;  // 1024 rows: then their source bytes may go
  for (int64_t g0 = 0; g0 < p.groups; g0 += kSliceGroups) {
    const int64_t g1 = std::min(p.groups, g0 + kSliceGroups);
#pragma omp parallel for schedule(static) if ((g1 - g0) * kRows * p.K >= kMinParallelWork)
    for (int64_t g = g0; g < g1; ++g) pack_group(p, src, row_bytes, g);
    if (release) {
      const int64_t n0 = g0 * kRows, n1 = std::min(p.N, g1 * kRows);
      release(src + n0 * row_bytes, size_t((n1 - n0) * row_bytes));
    }
  }
  return p;
}

const PackedQuantWeight& PackedQuantCache::get(const TensorView& w, const MappedFile* mapping) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = packed_.find(w.data);
  if (it != packed_.end() && it->second.dtype == w.dtype && it->second.N == w.shape[0] && it->second.K == w.shape[1])
    return it->second;
  const auto* at = static_cast<const uint8_t*>(w.data);
  const bool mapped = mapping && at >= mapping->data() && at + w.nbytes() <= mapping->data() + mapping->size();
  // the packed copy serves from now on: the file's pages go slice by slice
  return packed_[w.data] = pack_quant_rows(w, mapped ? drop_unmodified_mapped_pages : nullptr);
}

void PackedQuantCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  packed_.clear();
}

size_t PackedQuantCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [at, p] : packed_) n += p.bytes();
  return n;
}

#if defined(__AVX512BW__) && defined(__AVX512VL__)
namespace {

// acc (16 x int32) += sums of 4 products of u (unsigned bytes) and s (signed bytes); without VNNI
// through 16-bit pairs (exact for Q4_0's u <= 15; Q8_0 is packed only with VNNI).
inline __m512i dot_u8s8(__m512i acc, __m512i u, __m512i s) {
#if defined(__AVX512VNNI__)
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

inline __m512i activation_word(const int8_t* x) {
  int32_t v;
  std::memcpy(&v, x, 4);
  return _mm512_set1_epi32(v);
}

// A block's 8 zmm of unsigned quants, u[j] pairing with activation quants 4j..4j+3 of the block
// (Q4_0: the low nibbles of chunk c hold values 4c.., the high ones 16 + 4c..).
template <bool kNibbles>
inline void block_quants(__m512i u[8], const PackedQuantWeight::Line* lines) {
  if (kNibbles) {
    const __m512i low = _mm512_set1_epi8(0x0F);
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_load_si512(lines[c].bytes);
      u[c] = _mm512_and_si512(v, low);
      u[4 + c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    }
  } else {
    for (int c = 0; c < 8; ++c) u[c] = _mm512_load_si512(lines[c].bytes);
  }
}

// y rows m0 .. m0 + MR - 1, columns of group g (+ bias, += if accumulate): per block, the integer
// sums of 16 rows x MR activation rows, then acc += sums * d_w * d_x.
template <int MR, bool kNibbles>
void group_product(float* y, const QuantizedActivations& xq, int64_t m0, const PackedQuantWeight& w, int64_t g,
                   const float* bias, bool accumulate) {
  constexpr int C = kNibbles ? 4 : 8;
  constexpr int32_t kOffset = kNibbles ? 8 : 128;
  const int64_t blocks = w.blocks, K = w.K;
  const uint16_t* scales = w.scales() + g * blocks * kRows;
  const PackedQuantWeight::Line* lines = w.quants() + g * blocks * C;
  __m512 acc[MR];
  for (int m = 0; m < MR; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m512i u[8];
    block_quants<kNibbles>(u, lines + b * C);
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * kRows)));
    for (int m = 0; m < MR; ++m) {
      const int64_t row = m0 + m;
      const int8_t* x = xq.q.data() + row * K + b * 32;
      __m512i s0 = _mm512_set1_epi32(-kOffset * xq.sums[size_t(row * blocks + b)]), s1 = _mm512_setzero_si512();
      for (int j = 0; j < 8; j += 2) {  // two chains: decode (MR = 1) is bound by their latency
        s0 = dot_u8s8(s0, u[j], activation_word(x + 4 * j));
        s1 = dot_u8s8(s1, u[j + 1], activation_word(x + 4 * j + 4));
      }
      const __m512 dx = _mm512_set1_ps(xq.d[size_t(row * blocks + b)]);
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(dw, dx), acc[m]);
    }
  }
  const int64_t n0 = g * kRows, valid = std::min<int64_t>(kRows, w.N - n0);
  const __mmask16 lanes = __mmask16((1u << valid) - 1);
  const __m512 b16 = bias ? _mm512_maskz_loadu_ps(lanes, bias + n0) : _mm512_setzero_ps();
  for (int m = 0; m < MR; ++m) {
    float* out = y + (m0 + m) * w.N + n0;
    __m512 v = _mm512_add_ps(acc[m], b16);
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, out));
    _mm512_mask_storeu_ps(out, lanes, v);
  }
}

using GroupKernel = void (*)(float*, const QuantizedActivations&, int64_t, const PackedQuantWeight&, int64_t,
                             const float*, bool);

template <bool kNibbles>
GroupKernel group_kernel(int64_t rows) {
  static constexpr GroupKernel kByRows[kMaxMRows] = {
      group_product<1, kNibbles>, group_product<2, kNibbles>, group_product<3, kNibbles>, group_product<4, kNibbles>,
      group_product<5, kNibbles>, group_product<6, kNibbles>, group_product<7, kNibbles>, group_product<8, kNibbles>};
  return kByRows[rows - 1];
}

}  // namespace

void packed_quant_matmul(float* y, const QuantizedActivations& xq, const PackedQuantWeight& w, const float* bias,
                         bool accumulate) {
  TAIA_CHECK(has_packed_quant(w.dtype), "[packed_quant_matmul] expected a packed Q4_0 or Q8_0 weight, got ",
             dtype_name(w.dtype));
  TAIA_CHECK(xq.weight_dtype == w.dtype && xq.K == w.K, "[packed_quant_matmul] expected activations quantized for ",
             dtype_name(w.dtype), " K ", w.K, ", got ", dtype_name(xq.weight_dtype), " K ", xq.K);
  const int64_t M = xq.M;
  const bool nibbles = w.dtype == DType::Q4_0;
#pragma omp parallel for schedule(static) if (M * w.N * w.K >= kMinParallelWork)
  for (int64_t g = 0; g < w.groups; ++g)
    for (int64_t m0 = 0; m0 < M; m0 += kMaxMRows) {
      const int64_t rows = std::min(kMaxMRows, M - m0);
      const GroupKernel kernel = nibbles ? group_kernel<true>(rows) : group_kernel<false>(rows);
      kernel(y, xq, m0, w, g, bias, accumulate);
    }
}

#else

void packed_quant_matmul(float*, const QuantizedActivations&, const PackedQuantWeight& w, const float*, bool) {
  TAIA_CHECK(false, "[packed_quant_matmul] no kernel for packed ", dtype_name(w.dtype), " on this machine (AVX-512 needed)");
}

#endif

}  // namespace taia
