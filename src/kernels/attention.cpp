#include "kernels/attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "kernels/fast_math.h"
#include "kernels/gemm.h"
#include "kernels/softcap.h"
#include "kernels/softmax.h"

namespace taia {
namespace {


// d cap*tanh(x/cap) / dx at the logit x.
template <typename T>
inline T soft_cap_grad(T x, T cap) {
  const T t = std::tanh(x / cap);
  return T(1) - t * t;
}

// Row i of a causal attention matrix: softmax over p[lo..i] (lo > 0 under a sliding window),
// zeros elsewhere.
template <typename T>
void causal_softmax_row(T* p, int64_t i, int64_t L, int64_t lo) {
  T mx = p[lo];
#pragma omp simd reduction(max : mx)
  for (int64_t j = lo + 1; j <= i; ++j) mx = p[j] > mx ? p[j] : mx;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = lo; j <= i; ++j) sum += (p[j] = exp_t(p[j] - mx));
  const T inv = T(1) / sum;
  for (int64_t j = lo; j <= i; ++j) p[j] *= inv;
  for (int64_t j = 0; j < lo; ++j) p[j] = 0;
  for (int64_t j = i + 1; j < L; ++j) p[j] = 0;
}

constexpr int64_t kMaxHeadDim = 512;  // the widening buffer of attend_one (on the stack)

inline float f16_value(uint16_t bits) {
#if defined(__F16C__)
  return _cvtsh_ss(bits);
#else
  return f16_to_f32(bits);
#endif
}

inline void widen_f16(const uint16_t* r, int64_t n, float* out) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + i))));
#endif
  for (; i < n; ++i) out[i] = f16_value(r[i]);
}

// Head `offset` .. offset + hd - 1 of a cache row widened to F32 (out[hd]); F32 rows are read in
// place. Q8_0: blocks of 32 (d, then 32 int8), offset and hd multiples of 32.
template <DType S>
inline const float* widen_head(const uint8_t* row, int64_t offset, int64_t hd, float* out) {
  if constexpr (S == DType::F32) {
    return reinterpret_cast<const float*>(row) + offset;
  } else if constexpr (S == DType::BF16) {
    const uint16_t* r = reinterpret_cast<const uint16_t*>(row) + offset;
#pragma omp simd
    for (int64_t i = 0; i < hd; ++i) out[i] = bf16_to_f32(r[i]);
  } else if constexpr (S == DType::F16) {
    widen_f16(reinterpret_cast<const uint16_t*>(row) + offset, hd, out);
  } else {
    const uint8_t* blk = row + (offset / 32) * 34;
    for (int64_t b = 0; b < hd / 32; ++b, blk += 34) {
      const float d = f16_value(uint16_t(blk[0] | blk[1] << 8));
      const int8_t* qs = reinterpret_cast<const int8_t*>(blk + 2);
#pragma omp simd
      for (int i = 0; i < 32; ++i) out[32 * b + i] = d * float(qs[i]);
    }
  }
  return out;
}

// One query row against the rows of its key spans, keys and values stored as S. HD > 0 fixes
// the head size at compile time so the dot products unroll into a few vector FMAs and one
// reduction; HD == 0 is the generic loop.
template <int HD, DType S>
void attend_one(float* out, const float* qh, const KvRows& kv, int64_t offset, const KeySpans& spans,
                int64_t hd_runtime, float scale, float softcap, float* scores) {
  const int64_t hd = HD > 0 ? HD : hd_runtime;
  const uint8_t* k = static_cast<const uint8_t*>(kv.k);
  const uint8_t* v = static_cast<const uint8_t*>(kv.v);
  alignas(64) float row[kMaxHeadDim];  // a widened key or value head
  int64_t n = 0;
  for (int s = 0; s < 2; ++s)
    for (int64_t j = spans.begin[s]; j < spans.end[s]; ++j) {
      const float* kj = widen_head<S>(k + j * kv.row_bytes, offset, hd, row);
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < hd; ++i) dot += qh[i] * kj[i];
      scores[n++] = dot * scale;
    }
  if (softcap > 0.0f) softcap_forward<float>(scores, n, softcap);
  softmax_forward(scores, n);
  for (int64_t i = 0; i < hd; ++i) out[i] = 0.0f;
  n = 0;
  for (int s = 0; s < 2; ++s)
    for (int64_t j = spans.begin[s]; j < spans.end[s]; ++j) {
      const float p = scores[n++];
      const float* vj = widen_head<S>(v + j * kv.row_bytes, offset, hd, row);
#pragma omp simd
      for (int64_t i = 0; i < hd; ++i) out[i] += p * vj[i];
    }
}

// ---- Tiled attention (flash-attention style) -------------------------------------------------
// For prefill at long contexts and for decode with grouped heads, attend_one re-widens every key
// and value row once per query head and reduces every dot product across lanes. The tiled path
// takes one key/value head and a block of query rows together: each tile of 64 key rows is
// widened once (keys transposed, so a vector holds one dimension of 64 keys), scores for 4 query
// vectors at a time come from broadcast-FMA chains, and an online softmax keeps a running max,
// sum and unnormalised output per query vector.
// Tiles start at multiples of kKeyTile cache rows and every (query, key) score and output sum is
// the same chain of FMAs whichever other rows share the block, so a row's result does not depend
// on how rows were grouped (decode one token at a time equals the same row in a prefill block).
constexpr int64_t kKeyTile = 64;
constexpr int64_t kQueryRowsPerBlock = 16;

struct QueryBlock {  // rows [t0, t1) of one call, each with one span, all inside [lo, hi)
  int64_t t0, t1, lo, hi;
  bool tiled;  // false: a row with two spans, or a head size the tiles do not take (attend_one)
};

// Per-thread scratch of one block. nq = rows x heads per key/value head.
struct TileScratch {
  std::vector<float> kt;    // [hd, kKeyTile] keys of a tile, widened and transposed
  std::vector<float> kw;    // [16, hd] 16 keys widened, before the transpose
  std::vector<float> vw;    // [kKeyTile, hd] values of a tile, widened (F32 rows are read in place)
  std::vector<const float*> vrow;  // [kKeyTile] each value row of the tile
  std::vector<float> zeros;        // [hd] what the tile's columns outside its keys read
  std::vector<float> s;     // [nq, kKeyTile] scores, then probabilities, of a tile
  std::vector<float> o;     // [nq, hd] unnormalised outputs
  std::vector<float> m, l;  // [nq] running max and sum of exp(score - max)
  std::vector<int64_t> c0, c1;  // [nq] the tile's columns a query attends to
  std::vector<const float*> q;  // [nq] query vectors
  std::vector<float*> out;      // [nq] where each normalised output goes
};

// s[i][c] = q_i . k_c for 4 query vectors (rows, fewer at the end) and the tile's 64 keys.
void tile_scores(float* s, const float* const* q, int64_t rows, const float* kt, int64_t hd) {
#if defined(__AVX512F__)
  __m512 acc[4][4];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t d = 0; d < hd; ++d) {
    const float* kd = kt + d * kKeyTile;
    const __m512 k0 = _mm512_loadu_ps(kd), k1 = _mm512_loadu_ps(kd + 16), k2 = _mm512_loadu_ps(kd + 32),
                 k3 = _mm512_loadu_ps(kd + 48);
    for (int r = 0; r < 4; ++r) {
      if (r >= rows) break;
      const __m512 qd = _mm512_set1_ps(q[r][d]);
      acc[r][0] = _mm512_fmadd_ps(qd, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qd, k1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(qd, k2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(qd, k3, acc[r][3]);
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < 4; ++c) _mm512_storeu_ps(s + r * kKeyTile + 16 * c, acc[r][c]);
#else
  for (int64_t r = 0; r < rows; ++r) {
    float acc[kKeyTile] = {};
    for (int64_t d = 0; d < hd; ++d) {
      const float qd = q[r][d];
      const float* kd = kt + d * kKeyTile;
#pragma omp simd
      for (int64_t c = 0; c < kKeyTile; ++c) acc[c] = std::fma(qd, kd[c], acc[c]);
    }
    for (int64_t c = 0; c < kKeyTile; ++c) s[r * kKeyTile + c] = acc[c];
  }
#endif
}

// o_i += sum_c p[i][c] v_c for 4 query vectors (p zero outside a query's columns, so adding
// them changes nothing), hd a multiple of 16.
void tile_accumulate(float* const* o, const float* p, int64_t rows, const float* const* vrow, int64_t cb, int64_t ce,
                     int64_t hd) {
#if defined(__AVX512F__)
  for (int64_t d0 = 0; d0 < hd; d0 += 64) {
    const int nv = int(std::min<int64_t>(4, (hd - d0) / 16));
    __m512 acc[4][4];
    for (int r = 0; r < rows; ++r)
      for (int v = 0; v < nv; ++v) acc[r][v] = _mm512_loadu_ps(o[r] + d0 + 16 * v);
    for (int64_t c = cb; c < ce; ++c) {
      const float* vc = vrow[c] + d0;
      __m512 vv[4];
      for (int v = 0; v < nv; ++v) vv[v] = _mm512_loadu_ps(vc + 16 * v);
      for (int r = 0; r < rows; ++r) {
        const __m512 pc = _mm512_set1_ps(p[r * kKeyTile + c]);
        for (int v = 0; v < nv; ++v) acc[r][v] = _mm512_fmadd_ps(pc, vv[v], acc[r][v]);
      }
    }
    for (int r = 0; r < rows; ++r)
      for (int v = 0; v < nv; ++v) _mm512_storeu_ps(o[r] + d0 + 16 * v, acc[r][v]);
  }
#else
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = cb; c < ce; ++c) {
      const float pc = p[r * kKeyTile + c];
      const float* vc = vrow[c];
#pragma omp simd
      for (int64_t d = 0; d < hd; ++d) o[r][d] = std::fma(pc, vc[d], o[r][d]);
    }
#endif
}

// dst[j * dst_stride + r] = rows[r][j] for a block of 16 rows x 16 columns.
inline void transpose_16x16(const float* const* rows, float* dst, int64_t dst_stride) {
#if defined(__AVX512F__)
  __m512 r[16], a[16], b[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(rows[i]);
  for (int i = 0; i < 8; ++i) {  // per 128-bit lane: rows 2i, 2i+1 interleaved
    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // b[4g + e], lane l: rows 4g..4g+3 of column 4l + e
    const __m512d x0 = _mm512_castps_pd(a[4 * g]), x1 = _mm512_castps_pd(a[4 * g + 1]);
    const __m512d x2 = _mm512_castps_pd(a[4 * g + 2]), x3 = _mm512_castps_pd(a[4 * g + 3]);
    b[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, x2));
    b[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x2));
    b[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, x3));
    b[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, x3));
  }
  for (int e = 0; e < 4; ++e) {  // column 4l + e: lane l of b[e], b[4 + e], b[8 + e], b[12 + e]
    const __m512 c0 = _mm512_shuffle_f32x4(b[e], b[4 + e], 0x44), c1 = _mm512_shuffle_f32x4(b[e], b[4 + e], 0xEE);
    const __m512 d0 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0x44);
    const __m512 d1 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0xEE);
    _mm512_storeu_ps(dst + (0 + e) * dst_stride, _mm512_shuffle_f32x4(c0, d0, 0x88));
    _mm512_storeu_ps(dst + (4 + e) * dst_stride, _mm512_shuffle_f32x4(c0, d0, 0xDD));
    _mm512_storeu_ps(dst + (8 + e) * dst_stride, _mm512_shuffle_f32x4(c1, d1, 0x88));
    _mm512_storeu_ps(dst + (12 + e) * dst_stride, _mm512_shuffle_f32x4(c1, d1, 0xDD));
  }
#else
  for (int64_t j = 0; j < 16; ++j)
    for (int64_t i = 0; i < 16; ++i) dst[j * dst_stride + i] = rows[i][j];
#endif
}

// Keys [jb, je) of head `offset` widened and transposed into kt; value rows pointed to by vrow
// (widened into vw unless stored as F32). The tile's other columns read a row of zeros: their
// scores and products are never used, but stay finite.
template <DType S>
void widen_tile(const KvRows& kv, int64_t offset, int64_t hd, int64_t j0, int64_t jb, int64_t je, TileScratch& w) {
  const uint8_t* k = static_cast<const uint8_t*>(kv.k);
  const uint8_t* v = static_cast<const uint8_t*>(kv.v);
  const float* zeros = w.zeros.data();
  const float* krow[16];
  for (int64_t c16 = 0; c16 < kKeyTile; c16 += 16) {
    for (int64_t r = 0; r < 16; ++r) {
      const int64_t c = c16 + r, j = j0 + c;
      const bool inside = j >= jb && j < je;
      krow[r] = inside ? widen_head<S>(k + j * kv.row_bytes, offset, hd, w.kw.data() + r * hd) : zeros;
      w.vrow[size_t(c)] = inside ? widen_head<S>(v + j * kv.row_bytes, offset, hd, w.vw.data() + c * hd) : zeros;
    }
    for (int64_t d0 = 0; d0 < hd; d0 += 16) {
      const float* cols[16];
      for (int r = 0; r < 16; ++r) cols[r] = krow[r] + d0;
      transpose_16x16(cols, w.kt.data() + d0 * kKeyTile + c16, kKeyTile);
    }
  }
}

// The next tile's key and value heads (rows [jb, je), head_bytes each from byte `offset`) asked
// for while this one is computed: one thread reads a few GB/s at best when each load waits.
inline void prefetch_tile(const KvRows& kv, int64_t offset, int64_t head_bytes, int64_t jb, int64_t je) {
  const char* k = static_cast<const char*>(kv.k) + offset;
  const char* v = static_cast<const char*>(kv.v) + offset;
  for (int64_t j = jb; j < je; ++j)
    for (int64_t b = 0; b < head_bytes; b += 64) {
      _mm_prefetch(k + j * kv.row_bytes + b, _MM_HINT_T0);
      _mm_prefetch(v + j * kv.row_bytes + b, _MM_HINT_T0);
    }
}

// Scores of one tile turned into probabilities against each query's running max, the running
// sums and outputs rescaled (columns [c0, c1) per query; none: the query skips the tile).
void online_softmax_step(TileScratch& w, int64_t nq, int64_t hd, float scale, float softcap) {
  for (int64_t i = 0; i < nq; ++i) {
    float* s = w.s.data() + i * kKeyTile;
    const int64_t c0 = w.c0[size_t(i)], c1 = w.c1[size_t(i)];
    for (int64_t c = 0; c < c0; ++c) s[c] = 0.0f;
    for (int64_t c = c1; c < kKeyTile; ++c) s[c] = 0.0f;
    if (c0 >= c1) continue;
    float mx = -INFINITY;
    for (int64_t c = c0; c < c1; ++c) {
      float x = s[c] * scale;
      if (softcap > 0.0f) x = softcap * std::tanh(x / softcap);
      s[c] = x;
      mx = std::max(mx, x);
    }
    float& m = w.m[size_t(i)];
    float& l = w.l[size_t(i)];
    const float m_new = std::max(m, mx);
    const float alpha = l > 0.0f ? fast_expf(m - m_new) : 0.0f;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = c0; c < c1; ++c) sum += (s[c] = fast_expf(s[c] - m_new));
    l = l * alpha + sum;
    m = m_new;
    float* o = w.o.data() + i * hd;
    if (alpha != 1.0f)
      for (int64_t d = 0; d < hd; ++d) o[d] *= alpha;
  }
}

// One block of query rows against one key/value head g: tiles over [lo, hi), then out = o / l.
template <DType S>
void attend_block(const QueryBlock& b, int64_t g, float* out, const float* q, const KvRows& kv,
                  const KeySpans* spans, const AttentionShape& shape, float scale, TileScratch& w) {
  const int64_t hd = shape.head_dim, H = shape.n_heads, group = H / shape.n_kv_heads;
  const int64_t nq = (b.t1 - b.t0) * group;
  w.kt.resize(size_t(hd * kKeyTile));
  w.kw.resize(size_t(16 * hd));
  w.vw.resize(size_t(kKeyTile * hd));
  w.vrow.resize(size_t(kKeyTile));
  w.zeros.assign(size_t(hd), 0.0f);
  w.s.resize(size_t(nq * kKeyTile));
  w.o.assign(size_t(nq * hd), 0.0f);
  w.m.assign(size_t(nq), -INFINITY);
  w.l.assign(size_t(nq), 0.0f);
  w.c0.resize(size_t(nq));
  w.c1.resize(size_t(nq));
  w.q.resize(size_t(nq));
  w.out.resize(size_t(nq));
  for (int64_t t = b.t0; t < b.t1; ++t)
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const size_t i = size_t((t - b.t0) * group + h - g * group);
      w.q[i] = q + (t * H + h) * hd;
      w.out[i] = out + (t * H + h) * hd;
    }
  std::vector<float*> o4(4);
  const int64_t head_bytes = int64_t(dtype_bytes(kv.dtype, hd));
  for (int64_t j0 = b.lo / kKeyTile * kKeyTile; j0 < b.hi; j0 += kKeyTile) {
    widen_tile<S>(kv, g * hd, hd, j0, std::max(j0, b.lo), std::min(j0 + kKeyTile, b.hi), w);
    prefetch_tile(kv, int64_t(dtype_bytes(kv.dtype, g * hd)), head_bytes,
                  j0 + kKeyTile, std::min(j0 + 2 * kKeyTile, b.hi));
    for (int64_t i = 0; i < nq; ++i) {
      const KeySpans& sp = spans[b.t0 + i / group];
      w.c0[size_t(i)] = std::clamp<int64_t>(sp.begin[0] - j0, 0, kKeyTile);
      w.c1[size_t(i)] = std::clamp<int64_t>(sp.end[0] - j0, 0, kKeyTile);
    }
    for (int64_t i = 0; i < nq; i += 4)
      tile_scores(w.s.data() + i * kKeyTile, w.q.data() + i, std::min<int64_t>(4, nq - i), w.kt.data(), hd);
    online_softmax_step(w, nq, hd, scale, shape.softcap);
    for (int64_t i = 0; i < nq; i += 4) {
      const int64_t rows = std::min<int64_t>(4, nq - i);
      int64_t cb = kKeyTile, ce = 0;
      for (int64_t r = 0; r < rows; ++r) {
        o4[size_t(r)] = w.o.data() + (i + r) * hd;
        if (w.c0[size_t(i + r)] < w.c1[size_t(i + r)]) {
          cb = std::min(cb, w.c0[size_t(i + r)]);
          ce = std::max(ce, w.c1[size_t(i + r)]);
        }
      }
      if (cb < ce) tile_accumulate(o4.data(), w.s.data() + i * kKeyTile, rows, w.vrow.data(), cb, ce, hd);
    }
  }
  for (int64_t i = 0; i < nq; ++i) {
    const float inv = 1.0f / w.l[size_t(i)];
    for (int64_t d = 0; d < hd; ++d) w.out[size_t(i)][d] = w.o[size_t(i * hd + d)] * inv;
  }
}

using AttendFn = void (*)(float*, const float*, const KvRows&, int64_t, const KeySpans&, int64_t, float, float, float*);

template <DType S>
AttendFn pick_for(int64_t hd) {
  switch (hd) {
    case 8: return attend_one<8, S>;
    case 16: return attend_one<16, S>;
    case 32: return attend_one<32, S>;
    case 64: return attend_one<64, S>;
    case 80: return attend_one<80, S>;
    case 96: return attend_one<96, S>;
    case 128: return attend_one<128, S>;
    case 256: return attend_one<256, S>;
    default: return attend_one<0, S>;
  }
}

AttendFn pick(DType dtype, int64_t hd) {
  switch (dtype) {
    case DType::F32: return pick_for<DType::F32>(hd);
    case DType::BF16: return pick_for<DType::BF16>(hd);
    case DType::F16: return pick_for<DType::F16>(hd);
    case DType::Q8_0: return pick_for<DType::Q8_0>(hd);
    default: return nullptr;
  }
}

using BlockFn = void (*)(const QueryBlock&, int64_t, float*, const float*, const KvRows&, const KeySpans*,
                         const AttentionShape&, float, TileScratch&);

// The tiled path for keys and values stored as dtype; nullptr where the head size does not fit
// its vectors of 16 (attend_one then takes every row).
BlockFn pick_block(DType dtype, int64_t hd) {
  if (hd % 16 != 0 || hd > kMaxHeadDim) return nullptr;
  switch (dtype) {
    case DType::F32: return attend_block<DType::F32>;
    case DType::BF16: return attend_block<DType::BF16>;
    case DType::F16: return attend_block<DType::F16>;
    case DType::Q8_0: return attend_block<DType::Q8_0>;
    default: return nullptr;
  }
}

// Consecutive rows with one span each and nearly the same keys (a causal prompt, a sliding
// window) share a block of up to kQueryRowsPerBlock rows; a row with two spans is a block of its
// own for attend_one, as is every row when `tiled` is false.
std::vector<QueryBlock> query_blocks(const KeySpans* spans, int64_t T, bool tiled) {
  std::vector<QueryBlock> blocks;
  for (int64_t t = 0; t < T; ++t) {
    const KeySpans& sp = spans[t];
    if (!tiled || sp.end[1] > sp.begin[1]) {
      blocks.push_back({t, t + 1, 0, 0, false});
      continue;
    }
    if (!blocks.empty()) {
      QueryBlock& b = blocks.back();
      if (b.tiled && b.t1 == t && t - b.t0 < kQueryRowsPerBlock && std::abs(sp.begin[0] - b.lo) <= kKeyTile &&
          std::abs(sp.end[0] - b.hi) <= kKeyTile) {
        b.t1 = t + 1;
        b.lo = std::min(b.lo, sp.begin[0]);
        b.hi = std::max(b.hi, sp.end[0]);
        continue;
      }
    }
    blocks.push_back({t, t + 1, sp.begin[0], sp.end[0], true});
  }
  return blocks;
}

}  // namespace

void attention_forward_spans(float* out, const float* q, const KvRows& kv, const KeySpans* spans, int64_t T,
                             const AttentionShape& shape) {
  const int64_t H = shape.n_heads, hd = shape.head_dim;
  const int64_t group = H / shape.n_kv_heads;
  const float scale = shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt(float(hd));
  const AttendFn attend = pick(kv.dtype, hd);
  TAIA_CHECK(attend != nullptr, "[attention] expected keys and values stored as F32, BF16, F16 or Q8_0, got ",
             dtype_name(kv.dtype));
  TAIA_CHECK(hd <= kMaxHeadDim && (kv.dtype != DType::Q8_0 || hd % 32 == 0), "[attention] expected head_dim <= ",
             kMaxHeadDim, " (a multiple of 32 for Q8_0 rows), got ", hd);
  int64_t longest = 0, work = 0;
  for (int64_t t = 0; t < T; ++t) {
    longest = std::max(longest, spans[t].size());
    work += spans[t].size();
  }
  const BlockFn attend_tiled = pick_block(kv.dtype, hd);
  const std::vector<QueryBlock> blocks = query_blocks(spans, T, attend_tiled != nullptr);
  const int64_t n_blocks = int64_t(blocks.size()), n_kv = shape.n_kv_heads;
  // Small problems (tiny models, short contexts) lose more to fork/join than they gain.
  const bool parallel = work * H * hd >= (int64_t(1) << 15);
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(longest));  // one row of probabilities, per thread
    TileScratch scratch;
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t bi = 0; bi < n_blocks; ++bi) {
      for (int64_t g = 0; g < n_kv; ++g) {
        const QueryBlock& b = blocks[size_t(bi)];
        if (b.tiled) {
          attend_tiled(b, g, out, q, kv, spans, shape, scale, scratch);
          continue;
        }
        for (int64_t t = b.t0; t < b.t1; ++t)
          for (int64_t h = g * group; h < (g + 1) * group; ++h)
            attend(out + (t * H + h) * hd, q + (t * H + h) * hd, kv, g * hd, spans[t], hd, scale, shape.softcap,
                   scores.data());
      }
    }
  }
}

void attention_forward(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                       int64_t kv_row_stride, const AttentionShape& shape) {
  std::vector<KeySpans> spans(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    spans[size_t(t)].begin[0] = window_start(pos0 + t, shape.window);
    spans[size_t(t)].end[0] = pos0 + t + 1;
  }
  attention_forward_spans(out, q, KvRows{k, v, DType::F32, kv_row_stride * int64_t(sizeof(float))}, spans.data(), T,
                          shape);
}

namespace {

// Float: per (sequence, head), GEMMs over blocks of query rows.
void attention_train_forward_blocked(float* out, float* probs, const float* q, const float* k, const float* v,
                                     int64_t batch, int64_t seq_len, const AttentionShape& shape) {
  const int64_t B = batch, L = seq_len, H = shape.n_heads, KV = shape.n_kv_heads, hd = shape.head_dim;
  const int64_t group = H / KV;
  const float scale = shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt(float(hd));
  const float cap = shape.softcap;
  // Per (sequence, head) and block of query rows [r0, r1): S = Q K^T over keys [k0, r1) only
  // (causality: later keys are masked; k0 > 0 under a sliding window), causal softmax by rows,
  // O = P V over the same keys. Blocks skip ~40 % of the full L x L products. Each thread runs
  // its own single-threaded GEMMs (oneDNN does not nest parallelism).
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      float* P = probs + (b * H + h) * L * L;
      const float* Q = q + (b * L * H + h) * hd;
      const float* K = k + (b * L * KV + g) * hd;
      const float* Vm = v + (b * L * KV + g) * hd;
      for (int64_t r0 = 0; r0 < L; r0 += kCausalBlock) {
        const int64_t r1 = std::min(L, r0 + kCausalBlock), k0 = window_start(r0, shape.window);
        float* Pb = P + r0 * L;
        sgemm(false, true, r1 - r0, r1 - k0, hd, scale, Q + r0 * H * hd, H * hd, K + k0 * KV * hd, KV * hd, 0.0f,
              Pb + k0, L);
        for (int64_t i = r0; i < r1; ++i) {
          const int64_t lo = window_start(i, shape.window);
          if (cap > 0.0f) softcap_forward<float>(P + i * L + lo, i - lo + 1, cap);
          causal_softmax_row(P + i * L, i, L, lo);
        }
        sgemm(false, false, r1 - r0, hd, r1 - k0, 1.0f, Pb + k0, L, Vm + k0 * KV * hd, KV * hd, 0.0f,
              out + (b * L * H + h + r0 * H) * hd, H * hd);
      }
    }
  }
}

// Any scalar (double in the gradient checks): plain loops, the definition.
template <typename T>
void attention_train_forward_loops(T* out, T* probs, const T* q, const T* k, const T* v, int64_t batch,
                                   int64_t seq_len, const AttentionShape& shape) {
  const int64_t B = batch, L = seq_len, H = shape.n_heads, KV = shape.n_kv_heads, hd = shape.head_dim;
  const int64_t group = H / KV;
  const T scale = shape.scale > 0.0f ? T(shape.scale) : T(1) / std::sqrt(T(hd));
  const T cap = T(shape.softcap);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < L; ++i) {
        const T* qi = q + ((b * L + i) * H + h) * hd;
        T* p = probs + ((b * H + h) * L + i) * L;
        const int64_t lo = window_start(i, shape.window);
        for (int64_t j = lo; j <= i; ++j) {
          const T* kj = k + ((b * L + j) * KV + g) * hd;
          T dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += qi[d] * kj[d];
          p[j] = dot * scale;
        }
        if (cap > T(0)) softcap_forward<T>(p + lo, i - lo + 1, cap);
        causal_softmax_row(p, i, L, lo);
        T* o = out + ((b * L + i) * H + h) * hd;
        for (int64_t d = 0; d < hd; ++d) o[d] = 0;
        for (int64_t j = lo; j <= i; ++j) {
          const T* vj = v + ((b * L + j) * KV + g) * hd;
          for (int64_t d = 0; d < hd; ++d) o[d] += p[j] * vj[d];
        }
      }
    }
  }
}

// Float: per (sequence, KV head), GEMMs over blocks of query rows.
void attention_backward_blocked(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                                const float* q, const float* k, const float* v, int64_t batch, int64_t seq_len,
                                const AttentionShape& shape) {
  const int64_t B = batch, L = seq_len, H = shape.n_heads, KV = shape.n_kv_heads, hd = shape.head_dim;
  const int64_t group = H / KV;
  const float scale = shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt(float(hd));
  const float cap = shape.softcap;
  // Per (sequence, KV head), for each query head of the group and each block of query rows
  // [r0, r1) against keys [k0, r1): dP = dO V^T, dS = P (dP - rowsum(P dP)) * scale,
  // dQ += dS K, dK += dS^T Q, dV += P^T dO: five GEMMs instead of scalar loops.
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < KV; ++g) {
      // Per-thread scratch that outlives the call: a fresh L x L buffer per head would be
      // mapped and faulted in on every layer of every step.
      thread_local std::vector<float> dS, S;
      dS.resize(static_cast<size_t>(L * L));
      // A block's logits before the cap, recomputed.
      if (cap > 0.0f) S.resize(static_cast<size_t>(kCausalBlock * L));
      const float* K = k + (b * L * KV + g) * hd;
      const float* Vm = v + (b * L * KV + g) * hd;
      float* dK = dk + (b * L * KV + g) * hd;
      float* dV = dv + (b * L * KV + g) * hd;
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const float* P = probs + (b * H + h) * L * L;
        const float* dO = dout + (b * L * H + h) * hd;
        const float* Q = q + (b * L * H + h) * hd;
        float* dQ = dq + (b * L * H + h) * hd;
        for (int64_t r0 = 0; r0 < L; r0 += kCausalBlock) {
          const int64_t r1 = std::min(L, r0 + kCausalBlock), rows = r1 - r0, k0 = window_start(r0, shape.window);
          const int64_t keys = r1 - k0;
          float* dSb = dS.data() + r0 * L + k0;
          const float* Pb = P + r0 * L + k0;
          const float* dOb = dO + r0 * H * hd;
          sgemm(false, true, rows, keys, hd, 1.0f, dOb, H * hd, Vm + k0 * KV * hd, KV * hd, 0.0f, dSb, L);
          if (cap > 0.0f)  // the logits before the cap again (probs hold only the softmax): S = scale Q K^T
            sgemm(false, true, rows, keys, hd, scale, Q + r0 * H * hd, H * hd, K + k0 * KV * hd, KV * hd, 0.0f,
                  S.data() + k0, L);
          for (int64_t i = r0; i < r1; ++i) {
            const float* p = P + i * L;
            float* d = dS.data() + i * L;
            const int64_t lo = window_start(i, shape.window);
            float row = 0;
#pragma omp simd reduction(+ : row)
            for (int64_t j = lo; j <= i; ++j) row += p[j] * d[j];
            if (cap > 0.0f) {
              const float* s = S.data() + (i - r0) * L;
              for (int64_t j = lo; j <= i; ++j) d[j] = p[j] * (d[j] - row) * soft_cap_grad(s[j], cap) * scale;
            } else {
#pragma omp simd
              for (int64_t j = lo; j <= i; ++j) d[j] = p[j] * (d[j] - row) * scale;
            }
            for (int64_t j = k0; j < lo; ++j) d[j] = 0;
            for (int64_t j = i + 1; j < r1; ++j) d[j] = 0;
          }
          sgemm(false, false, rows, hd, keys, 1.0f, dSb, L, K + k0 * KV * hd, KV * hd, 1.0f, dQ + r0 * H * hd, H * hd);
          sgemm(true, false, keys, hd, rows, 1.0f, dSb, L, Q + r0 * H * hd, H * hd, 1.0f, dK + k0 * KV * hd, KV * hd);
          sgemm(true, false, keys, hd, rows, 1.0f, Pb, L, dOb, H * hd, 1.0f, dV + k0 * KV * hd, KV * hd);
        }
      }
    }
  }
}

// Any scalar: plain loops, the definition.
template <typename T>
void attention_backward_loops(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                              const T* v, int64_t batch, int64_t seq_len, const AttentionShape& shape) {
  const int64_t B = batch, L = seq_len, H = shape.n_heads, KV = shape.n_kv_heads, hd = shape.head_dim;
  const int64_t group = H / KV;
  const T scale = shape.scale > 0.0f ? T(shape.scale) : T(1) / std::sqrt(T(hd));
  const T cap = T(shape.softcap);
  // Parallel over (sequence, KV head): every query head of a group writes the same dk/dv rows.
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < KV; ++g) {
      std::vector<T> dp(static_cast<size_t>(L));
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t i = 0; i < L; ++i) {
          const T* p = probs + ((b * H + h) * L + i) * L;
          const T* doi = dout + ((b * L + i) * H + h) * hd;
          const int64_t lo = window_start(i, shape.window);
          T row = 0;
          for (int64_t j = lo; j <= i; ++j) {
            const T* vj = v + ((b * L + j) * KV + g) * hd;
            T* dvj = dv + ((b * L + j) * KV + g) * hd;
            T d = 0;
            for (int64_t e = 0; e < hd; ++e) {
              d += doi[e] * vj[e];
              dvj[e] += p[j] * doi[e];
            }
            dp[size_t(j)] = d;
            row += p[j] * d;
          }
          const T* qi = q + ((b * L + i) * H + h) * hd;
          T* dqi = dq + ((b * L + i) * H + h) * hd;
          for (int64_t j = lo; j <= i; ++j) {
            const T* kj = k + ((b * L + j) * KV + g) * hd;
            T capped_grad = T(1);
            if (cap > T(0)) {  // the logit before the cap, recomputed
              T dot = 0;
              for (int64_t e = 0; e < hd; ++e) dot += qi[e] * kj[e];
              capped_grad = soft_cap_grad(dot * scale, cap);
            }
            const T ds = p[j] * (dp[size_t(j)] - row) * capped_grad * scale;
            T* dkj = dk + ((b * L + j) * KV + g) * hd;
            for (int64_t e = 0; e < hd; ++e) {
              dqi[e] += ds * kj[e];
              dkj[e] += ds * qi[e];
            }
          }
        }
      }
    }
  }
}


}  // namespace

template <typename T>
void attention_train_forward(T* out, T* probs, const T* q, const T* k, const T* v, int64_t batch, int64_t seq_len,
                             const AttentionShape& shape) {
  if constexpr (std::is_same_v<T, float>)
    attention_train_forward_blocked(out, probs, q, k, v, batch, seq_len, shape);
  else
    attention_train_forward_loops(out, probs, q, k, v, batch, seq_len, shape);
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k, const T* v,
                        int64_t batch, int64_t seq_len, const AttentionShape& shape) {
  if constexpr (std::is_same_v<T, float>)
    attention_backward_blocked(dq, dk, dv, dout, probs, q, k, v, batch, seq_len, shape);
  else
    attention_backward_loops(dq, dk, dv, dout, probs, q, k, v, batch, seq_len, shape);
}

#define TAIA_INSTANTIATE(T)                                                                                   \
  template void attention_train_forward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t,              \
                                           const AttentionShape&);                                              \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t,    \
                                      int64_t, const AttentionShape&);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
