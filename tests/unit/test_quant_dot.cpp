// kernels/quant_dot: the activation quantizers against llama.cpp's semantics, every block type's
// integer kernel against the double reference, the integer path against the exact one. This file
// is built twice: into taia_unit_tests (the host's instructions, VNNI where present) and into
// taia_quant_dot_no_vnni_tests with quant_dot.cpp and quant_packed.cpp compiled without VNNI (the
// vpmaddubsw path). The 16-row repacked Q4_0 / Q8_0 kernels (kernels/quant_packed) are tested here
// against the same reference.
#include <cmath>
#include <cstdio>

#include "core/dtype.h"
#include "core/error.h"
#include "core/ggml_quants.h"
#include "kernels/linear.h"
#include "kernels/quant_dot.h"
#include "kernels/quant_packed.h"
#include "quant_blocks.h"
#include "test_util.h"

namespace taia {
namespace {

using test::random_blocks;

const DType kBlockTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                              DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

bool is_k_type(DType t) { return block_values(t) == 256; }

// Sum of |w_k x_k| over a row: the size of a dot product's terms, which its errors scale with.
double term_magnitude(const float* w, const float* x, int64_t K) {
  double sum = 0.0;
  for (int64_t k = 0; k < K; ++k) sum += std::fabs(double(w[k]) * x[k]);
  return sum;
}

// Activations in llama.cpp's vec_dot formats: every quant within half a step of x / d (the
// 32-value blocks' step taken before d is rounded to F16), the
// block's largest magnitude at +-127, d of the 32-value blocks an F16 value, the sums right.
TEST(QuantDot, ActivationsFollowLlamaCppsQuantizers) {
  for (DType dtype : {DType::Q4_0, DType::Q4_K}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t M = 2, K = 512, B = is_k_type(dtype) ? 256 : 32;
    auto x = test::random_vector(size_t(M * K), 21);
    std::fill(x.begin() + K, x.begin() + K + B, 0.0f);  // an all-zero block: d 0, quants 0
    QuantizedActivations a;
    quantize_activations(a, x.data(), M, K, dtype);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t b = 0; b < K / B; ++b) {
        const float d = a.d[size_t(m * (K / B) + b)];
        int largest = 0;
        for (int64_t i = 0; i < B; ++i) {
          const int64_t k = m * K + b * B + i;
          largest = std::max(largest, std::abs(int(a.q[size_t(k)])));
          // half a step, plus (32-value blocks) 127 quants' share of d's rounding to F16 (2^-11)
          const float bound = (0.5f + (B == 32 ? 127.0f / 2048.0f : 0.0f)) * std::fabs(d) * 1.0001f;
          if (d != 0.0f) {
            EXPECT_LE(std::fabs(d * a.q[size_t(k)] - x[size_t(k)]), bound) << k;
          }
        }
        if (m == 1 && b == 0) {
          EXPECT_EQ(d, 0.0f);
          EXPECT_EQ(largest, 0);
        } else {
          EXPECT_EQ(largest, 127);
        }
        if (B == 32) {
          EXPECT_EQ(d, f16_to_f32(f32_to_f16(d)));
        }
      }
    if (B == 256)
      for (int64_t g = 0; g < M * K / 16; ++g) {
        int sum = 0;
        for (int i = 0; i < 16; ++i) sum += a.q[size_t(16 * g + i)];
        EXPECT_EQ(a.bsums[size_t(g)], sum);
      }
  }
  QuantizedActivations a;
  auto x = test::random_vector(64, 1);
  EXPECT_THROW(quantize_activations(a, x.data(), 1, 64, DType::Q4_K), Error);  // K not a multiple of 256
}

// The integer kernels of every block type against the double reference on the dequantized
// values of both sides, random blocks (every bit pattern of quants and scales), 1..8 rows; an
// odd count of 32-value blocks exercises the last half-filled pair.
TEST(QuantDot, KernelsMatchTheReference) {
  for (DType dtype : kBlockTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    for (int64_t K : {768, 800}) {
      if (is_k_type(dtype) && K % 256) continue;
      const int64_t N = 29;
      std::vector<uint8_t> wq = random_blocks(dtype, N * K, 31);
      TensorView w("w", dtype, {N, K}, wq.data());
      std::vector<float> wf(size_t(N * K));
      convert_to_f32(dtype, wq.data(), wf.data(), wf.size());
      for (int64_t M : {1, 3, 8}) {
        auto x = test::random_vector(size_t(M * K), 32);
        auto bias = test::random_vector(size_t(N), 33);
        QuantizedActivations a;
        quantize_activations(a, x.data(), M, K, dtype);
        std::vector<float> fast(size_t(M * N), 1.0f), ref(size_t(M * N), 1.0f);
        quant_dot_matvec(fast.data(), a, w, bias.data(), /*accumulate=*/true);
        quant_dot_reference(ref.data(), a, w, bias.data(), /*accumulate=*/true);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            // sum of |w x|: what the rounding of the scale products scales with
            const double magnitude = term_magnitude(wf.data() + n * K, x.data() + m * K, K);
            const size_t i = size_t(m * N + n);
            EXPECT_NEAR(fast[i], ref[i], 2e-6 * magnitude + 1e-6) << "K " << K << " M " << M << " m " << m << " n " << n;
          }
      }
    }
  }
}

// 8-bit activations move a product by about 1 / 127 of its terms' size, no more: the integer
// path against the exact F32 one on the same weights.
TEST(QuantDot, StaysCloseToTheExactProduct) {
  for (DType dtype : kBlockTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t N = 16, K = 512, M = 2;
    std::vector<uint8_t> wq = random_blocks(dtype, N * K, 41);
    TensorView w("w", dtype, {N, K}, wq.data());
    auto x = test::random_vector(size_t(M * K), 42);
    QuantizedActivations a;
    quantize_activations(a, x.data(), M, K, dtype);
    std::vector<float> q8(size_t(M * N)), exact(size_t(M * N));
    quant_dot_matvec(q8.data(), a, w, nullptr, false);
    linear_forward_reference(exact.data(), x.data(), w, nullptr, M);
    std::vector<float> wf(size_t(N * K));
    convert_to_f32(dtype, wq.data(), wf.data(), wf.size());
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const double magnitude = term_magnitude(wf.data() + n * K, x.data() + m * K, K);
        const size_t i = size_t(m * N + n);
        EXPECT_LE(std::fabs(q8[i] - exact[i]), magnitude / 127.0) << m << " " << n;
        EXPECT_NE(q8[i], exact[i]);  // really another computation
      }
  }
}

// With int8 activations, prefill rows (widened tiles, activations rounded to their 8-bit values)
// and decode rows (integer kernels) compute the same products: a 40-row call equals its rows one
// at a time, and differs from the exact path.
TEST(QuantDot, PrefillRowsEqualDecodeRows) {
  for (DType dtype : kBlockTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t N = 24, K = 512, M = 40;
    std::vector<uint8_t> wq = random_blocks(dtype, N * K, 51);
    TensorView w("w", dtype, {N, K}, wq.data());
    auto x = test::random_vector(size_t(M * K), 52);
    LinearCompute int8;
    int8.int8_activations = true;
    std::vector<float> prefill(size_t(M * N)), rows(size_t(M * N)), exact(size_t(M * N));
    linear_forward(prefill.data(), x.data(), w, nullptr, M, false, int8);
    linear_forward(exact.data(), x.data(), w, nullptr, M, false);
    for (int64_t m = 0; m < M; ++m) linear_forward(rows.data() + m * N, x.data() + m * K, w, nullptr, 1, false, int8);
    const float scale = test::max_abs(exact);
    EXPECT_LE(test::max_abs_diff(prefill, rows), 1e-5f * scale);
    EXPECT_GT(test::max_abs_diff(prefill, exact), 1e-4f * scale);
  }
}

// The repacked kernels against the double reference on the source weight: a partial last
// group of 16 rows (N 45), an odd block count, 1..8 activation rows and two passes of 8 (M 13),
// bias and accumulation.
TEST(QuantPacked, KernelsMatchTheReference) {
  for (DType dtype : {DType::Q4_0, DType::Q8_0}) {
    SCOPED_TRACE(dtype_name(dtype));
    if (!has_packed_quant(dtype)) {  // Q8_0 without VNNI: the file-layout kernel serves it
      std::printf("%s is not repacked with these instructions: not tested here\n", dtype_name(dtype));
      continue;
    }
    for (int64_t K : {768, 800}) {
      const int64_t N = 45;
      std::vector<uint8_t> wq = random_blocks(dtype, N * K, 61);
      TensorView w("w", dtype, {N, K}, wq.data());
      const PackedQuantWeight packed = pack_quant_rows(w);
      EXPECT_EQ(packed.groups, 3);
      std::vector<float> wf(size_t(N * K));
      convert_to_f32(dtype, wq.data(), wf.data(), wf.size());
      for (int64_t M : {1, 3, 8, 13}) {
        auto x = test::random_vector(size_t(M * K), 62);
        auto bias = test::random_vector(size_t(N), 63);
        QuantizedActivations a;
        quantize_activations(a, x.data(), M, K, dtype);
        std::vector<float> fast(size_t(M * N), 1.0f), ref(size_t(M * N), 1.0f);
        packed_quant_matmul(fast.data(), a, packed, bias.data(), /*accumulate=*/true);
        quant_dot_reference(ref.data(), a, w, bias.data(), /*accumulate=*/true);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            const double magnitude = term_magnitude(wf.data() + n * K, x.data() + m * K, K);
            const size_t i = size_t(m * N + n);
            EXPECT_NEAR(fast[i], ref[i], 2e-6 * magnitude + 1e-6) << "K " << K << " M " << M << " m " << m << " n " << n;
          }
        std::vector<float> plain(size_t(M * N));
        packed_quant_matmul(plain.data(), a, packed, nullptr, /*accumulate=*/false);
        for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(plain[i] + bias[i % size_t(N)] + 1.0f, fast[i]);  // the kernel's order
      }
    }
  }
}

// Through the router with the model's cache: prefill rows and decode rows give the same values
// on the packed weight, the file-layout kernel (no cache) agrees, and the cache packs once.
TEST(QuantPacked, RouterUsesOneCopyForPrefillAndDecode) {
  for (DType dtype : {DType::Q4_0, DType::Q8_0}) {
    SCOPED_TRACE(dtype_name(dtype));
    if (!has_packed_quant(dtype)) {  // Q8_0 without VNNI: the file-layout kernel serves it
      std::printf("%s is not repacked with these instructions: not tested here\n", dtype_name(dtype));
      continue;
    }
    const int64_t N = 40, K = 512, M = 40;
    std::vector<uint8_t> wq = random_blocks(dtype, N * K, 71);
    TensorView w("w", dtype, {N, K}, wq.data());
    auto x = test::random_vector(size_t(M * K), 72);
    PackedQuantCache cache;
    LinearCompute packed, file_layout;
    packed.int8_activations = file_layout.int8_activations = true;
    packed.packed = &cache;
    std::vector<float> prefill(size_t(M * N)), rows(size_t(M * N)), unpacked(size_t(M * N));
    linear_forward(prefill.data(), x.data(), w, nullptr, M, false, packed);
    for (int64_t m = 0; m < M; ++m) {
      linear_forward(rows.data() + m * N, x.data() + m * K, w, nullptr, 1, false, packed);
      linear_forward(unpacked.data() + m * N, x.data() + m * K, w, nullptr, 1, false, file_layout);
    }
    const float scale = test::max_abs(unpacked);
    EXPECT_LE(test::max_abs_diff(prefill, rows), 1e-5f * scale);
    EXPECT_LE(test::max_abs_diff(rows, unpacked), 1e-5f * scale);
    EXPECT_EQ(cache.bytes(), size_t(N / 16 + 1) * (K / 32) * (16 * 2 + 16 * (dtype == DType::Q4_0 ? 16 : 32)));
    EXPECT_EQ(&cache.get(w), &cache.get(w));
    cache.clear();
    EXPECT_EQ(cache.bytes(), 0u);
  }
}

}  // namespace
}  // namespace taia
