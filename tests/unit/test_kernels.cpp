#include <cmath>

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/ggml_quants.h"
#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/cross_entropy.h"
#include "kernels/linear.h"
#include "kernels/linear_cross_entropy.h"
#include "kernels/quant_matvec.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/softmax.h"
#include "kernels/swiglu.h"
#include "quant_blocks.h"
#include "test_util.h"

namespace taia {
namespace {

using test::random_blocks;

struct LinearCase {
  int64_t M, N, K;
  DType dtype;
  bool bias, accumulate;
};

class LinearTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearTest, MatchesReference) {
  const auto p = GetParam();
  auto wf = test::random_vector(size_t(p.N * p.K), 1, 0.1f);
  std::vector<uint16_t> wb(wf.size());  // the BF16 or F16 storage
  convert_from_f32(wf.data(), p.dtype == DType::F16 ? DType::F16 : DType::BF16, wb.data(), wf.size());
  TensorView w("w", p.dtype, {p.N, p.K}, p.dtype == DType::F32 ? static_cast<void*>(wf.data()) : wb.data());
  auto x = test::random_vector(size_t(p.M * p.K), 2);
  auto b = test::random_vector(size_t(p.N), 3);
  auto y0 = test::random_vector(size_t(p.M * p.N), 4);
  std::vector<float> fast = y0, ref = y0;
  linear_forward(fast.data(), x.data(), w, p.bias ? b.data() : nullptr, p.M, p.accumulate);
  linear_forward_reference(ref.data(), x.data(), w, p.bias ? b.data() : nullptr, p.M, p.accumulate);
  EXPECT_LE(test::max_abs_diff(fast, ref), 2e-5f);
  if (!p.accumulate) {
    EXPECT_GT(test::max_abs_diff(fast, y0), 0.1f);  // the output was really written
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LinearTest,
    ::testing::Values(LinearCase{1, 33, 64, DType::F32, false, false}, LinearCase{1, 300, 96, DType::BF16, true, false},
                      LinearCase{3, 70, 40, DType::F32, true, true}, LinearCase{8, 65, 31, DType::BF16, false, true},
                      LinearCase{9, 257, 64, DType::F32, true, false}, LinearCase{40, 600, 48, DType::BF16, true, true},
                      LinearCase{64, 64, 128, DType::F32, false, true}, LinearCase{17, 513, 7, DType::BF16, false, false},
                      LinearCase{1, 300, 96, DType::F16, true, false}, LinearCase{8, 65, 31, DType::F16, false, true},
                      LinearCase{40, 600, 48, DType::F16, true, true},
                      // BF16 pairs kernel: a 16-weight tail, a 2-weight row, rows beyond a block of 8
                      LinearCase{2, 203, 80, DType::BF16, true, false}, LinearCase{5, 9, 2, DType::BF16, false, true},
                      LinearCase{1, 4099, 130, DType::BF16, false, false}, LinearCase{3, 17, 33, DType::F16, true, false}));

// Products sharing x (q, k, v) in one pass give linear_forward's values per output: every dense
// dtype, biases and accumulation, decode rows (the grouped kernel) and prefill rows (per output),
// F32 and --compute bf16.
TEST(LinearShared, EqualsOneLinearForwardPerOutput) {
  const int64_t K = 80;
  const std::vector<int64_t> rows = {48, 16, 33};
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t M : {int64_t(1), int64_t(3), int64_t(12)})
      for (Precision precision : {Precision::F32, Precision::BF16}) {
        if (precision == Precision::BF16 && dt != DType::BF16) continue;
        std::vector<std::vector<float>> wf;
        std::vector<std::vector<uint16_t>> w16;
        std::vector<TensorView> w;
        std::vector<std::vector<float>> bias, shared, single;
        for (size_t i = 0; i < rows.size(); ++i) {
          wf.push_back(test::random_vector(size_t(rows[i] * K), 10 + i, 0.1f));
          w16.emplace_back(wf.back().size());
          if (dt != DType::F32) convert_from_f32(wf.back().data(), dt, w16.back().data(), wf.back().size());
          bias.push_back(test::random_vector(size_t(rows[i]), 20 + i));
          shared.push_back(test::random_vector(size_t(M * rows[i]), 30 + i));
          single.push_back(shared.back());
        }
        for (size_t i = 0; i < rows.size(); ++i)
          w.emplace_back("w", dt, std::vector<int64_t>{rows[i], K},
                         dt == DType::F32 ? static_cast<void*>(wf[i].data()) : w16[i].data());
        const auto x = test::random_vector(size_t(M * K), 2);
        Bf16Workspace ws;
        const LinearCompute compute{precision, precision == Precision::BF16 ? &ws : nullptr};
        std::vector<LinearOutput> outs;
        for (size_t i = 0; i < rows.size(); ++i) outs.push_back({&w[i], i == 1 ? nullptr : bias[i].data(), shared[i].data(), i == 2});
        linear_forward_shared(outs, x.data(), M, compute);
        for (size_t i = 0; i < rows.size(); ++i) {
          linear_forward(single[i].data(), x.data(), w[i], i == 1 ? nullptr : bias[i].data(), M, i == 2, compute);
          EXPECT_LE(test::max_abs_diff(shared[i], single[i]), 1e-6f) << dtype_name(dt) << " M=" << M << " out " << i;
        }
      }
}

// Precision::BF16 on BF16 weights (--compute bf16): decode rows (matrix-vector kernel on rounded
// activations) and prefill rows (oneDNN's BF16 matmul) both give the products of the activations
// rounded to BF16 with the weights, summed in F32: against double sums of exactly those products.
TEST(LinearBf16Compute, RoundsTheActivationsOnBothPaths) {
  for (int64_t M : {int64_t(3), int64_t(40)}) {
    const int64_t N = 70, K = 96;
    auto wf = test::random_vector(size_t(N * K), 1, 0.1f);
    std::vector<uint16_t> wb(wf.size());
    convert_from_f32(wf.data(), DType::BF16, wb.data(), wf.size());
    TensorView w("w", DType::BF16, {N, K}, wb.data());
    auto x = test::random_vector(size_t(M * K), 2);
    auto b = test::random_vector(size_t(N), 3);
    std::vector<float> xr(x.size());  // x rounded to BF16 values
    for (size_t i = 0; i < x.size(); ++i) xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
    std::vector<float> fast(size_t(M * N)), ref(fast.size()), unrounded(fast.size());
    Bf16Workspace ws;
    linear_forward(fast.data(), x.data(), w, b.data(), M, false, LinearCompute{Precision::BF16, &ws});
    linear_forward_reference(ref.data(), xr.data(), w, b.data(), M);
    linear_forward_reference(unrounded.data(), x.data(), w, b.data(), M);
    EXPECT_LE(test::max_abs_diff(fast, ref), 2e-5f) << "M=" << M;
    EXPECT_GT(test::max_abs_diff(fast, unrounded), 1e-4f) << "M=" << M;  // the rounding is real
  }
}


// Quantized weights through the router: the matrix-vector kernel (M <= 8, blocks widened in
// registers) and the widened-tile GEMM (M > 8), and the input gradient, against double-precision
// products with the dequantized rows.
TEST(LinearQuantized, EveryBlockTypeMatchesTheDequantizedReference) {
  for (DType dtype : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                      DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t N = 37, K = 512;
    std::vector<uint8_t> wq = random_blocks(dtype, N * K, 7);
    TensorView w("w", dtype, {N, K}, wq.data());
    std::vector<float> wf(size_t(N * K));
    convert_to_f32(dtype, wq.data(), wf.data(), wf.size());
    TensorView w32("w32", DType::F32, {N, K}, wf.data());
    for (int64_t M : {1, 5, 8, 9, 40}) {
      auto x = test::random_vector(size_t(M * K), 2);
      auto bias = test::random_vector(size_t(N), 3);
      std::vector<float> fast(size_t(M * N), 1.0f), ref(size_t(M * N), 1.0f);
      linear_forward(fast.data(), x.data(), w, bias.data(), M, /*accumulate=*/true);
      linear_forward_reference(ref.data(), x.data(), w, bias.data(), M, /*accumulate=*/true);
      const float scale = test::max_abs(ref);
      EXPECT_LE(test::max_abs_diff(fast, ref), 2e-6f * scale + 1e-6f) << "M = " << M;
      EXPECT_GT(scale, 0.1f);
      auto dy = test::random_vector(size_t(M * N), 4);
      std::vector<float> dx(size_t(M * K), 0.5f), dx_ref(size_t(M * K), 0.5f);
      linear_backward(dx.data(), nullptr, nullptr, dy.data(), x.data(), w, M);
      linear_backward(dx_ref.data(), nullptr, nullptr, dy.data(), x.data(), w32, M);
      EXPECT_LE(test::max_abs_diff(dx, dx_ref), 1e-4f) << "M = " << M;
    }
    std::vector<float> dW(size_t(N * K));
    auto dy = test::random_vector(size_t(N), 4), x = test::random_vector(size_t(K), 2);
    EXPECT_THROW(linear_backward(nullptr, dW.data(), nullptr, dy.data(), x.data(), w, 1), Error);  // frozen
  }
}

// The AVX-512 kernels of every block type against the reference path (blocks widened by
// the exact dequantizer), on random blocks and rows.
TEST(LinearQuantized, FastKernelsMatchTheReferencePath) {
  for (DType dtype : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                      DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t N = 29, K = 768;
    std::vector<uint8_t> wq = random_blocks(dtype, N * K, 11);
    TensorView w("w", dtype, {N, K}, wq.data());
    for (int64_t M : {1, 3, 8}) {
      auto x = test::random_vector(size_t(M * K), 12);
      std::vector<float> fast(size_t(M * N)), ref(size_t(M * N));
      set_quant_fast_kernels(false);
      quant_matvec(ref.data(), x.data(), w, nullptr, M, false);
      set_quant_fast_kernels(true);
      quant_matvec(fast.data(), x.data(), w, nullptr, M, false);
      const float scale = test::max_abs(ref);
      EXPECT_GT(scale, 0.1f);
      EXPECT_LE(test::max_abs_diff(fast, ref), 2e-6f * scale) << "M = " << M;
    }
  }
}

// The fused head (vocabulary chunks of 128, blocks of 16 rows) against linear_forward, the plain
// cross-entropy and linear_backward on the same weight, for every kind of weight the head can be:
// same loss, same input gradient added to what dx held, nothing at rows without a target.
TEST(LinearCrossEntropy, MatchesTheUnfusedHeadOnEveryWeightType) {
  const int64_t rows = 40, V = 1000, K = 256;
  const float scale = 1.0f / 31;
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) targets[size_t(i)] = i % 4 == 1 ? -1 : int32_t((i * 379) % V);
  const auto x = test::random_vector(size_t(rows * K), 50);
  const auto wf = test::random_vector(size_t(V * K), 51, 0.2f);
  std::vector<uint16_t> wb(wf.size());
  convert_from_f32(wf.data(), DType::BF16, wb.data(), wf.size());
  const std::vector<uint8_t> q8 = random_blocks(DType::Q8_0, V * K, 52), q4k = random_blocks(DType::Q4_K, V * K, 53);
  struct Case {
    TensorView w;
    Precision precision;
    double tol;  // of the largest |dx|; BF16 compute rounds the probabilities, not their gradient
  };
  Bf16Workspace ws;
  const std::vector<Case> cases{
      {TensorView("f32", DType::F32, {V, K}, const_cast<float*>(wf.data())), Precision::F32, 1e-5},
      {TensorView("bf16", DType::BF16, {V, K}, wb.data()), Precision::F32, 1e-5},
      {TensorView("q8_0", DType::Q8_0, {V, K}, const_cast<uint8_t*>(q8.data())), Precision::F32, 1e-5},
      {TensorView("q4_k", DType::Q4_K, {V, K}, const_cast<uint8_t*>(q4k.data())), Precision::F32, 1e-5},
      {TensorView("f32_bf16_compute", DType::F32, {V, K}, const_cast<float*>(wf.data())), Precision::BF16, 2e-2}};
  for (const Case& c : cases) {
    LinearCompute compute;
    compute.precision = c.precision;
    compute.bf16 = &ws;
    std::vector<float> logits(size_t(rows * V)), d_unfused(size_t(rows * K), 0.5f);
    linear_forward(logits.data(), x.data(), c.w, nullptr, rows, false, compute);
    const double unfused_loss = cross_entropy_forward_backward<float>(logits.data(), targets.data(), rows, V, scale);
    linear_backward(d_unfused.data(), nullptr, nullptr, logits.data(), x.data(), c.w, rows, compute);

    LinearCrossEntropyScratch scratch;
    std::vector<float> d_fused(size_t(rows * K), 0.5f);
    const double loss = linear_cross_entropy(d_fused.data(), x.data(), c.w, targets.data(), rows, scale, compute,
                                             scratch, LinearCrossEntropyShape{128, 16});
    EXPECT_NEAR(loss, unfused_loss, 1e-5 * unfused_loss) << c.w.name;
    EXPECT_NEAR(linear_cross_entropy(nullptr, x.data(), c.w, targets.data(), rows, scale, compute, scratch), loss,
                1e-5 * unfused_loss) << c.w.name << ": the loss alone";
    float largest = 0, worst = 0;
    for (size_t i = 0; i < d_fused.size(); ++i) {
      largest = std::max(largest, std::abs(d_unfused[i] - 0.5f));
      worst = std::max(worst, std::abs(d_fused[i] - d_unfused[i]));
      if (targets[i / size_t(K)] < 0) {
        ASSERT_EQ(d_fused[i], 0.5f) << c.w.name << ": a row without a target";
      }
    }
    EXPECT_GT(largest, 1e-4f) << c.w.name;
    EXPECT_LE(worst, c.tol * largest) << c.w.name;
  }
}

TEST(LinearCrossEntropy, RefusesATargetOutsideTheVocabulary) {
  const int64_t V = 8, K = 4;
  std::vector<float> w(size_t(V * K), 0.1f), x(size_t(2 * K), 1.0f);
  const std::vector<int32_t> targets{1, 8};
  LinearCrossEntropyScratch scratch;
  try {
    linear_cross_entropy(nullptr, x.data(), TensorView("lm_head", DType::F32, {V, K}, w.data()), targets.data(), 2,
                         1.0f, {}, scratch);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 8 at row 1 expected in [0, 8)"), std::string::npos) << e.what();
  }
}

TEST(Sgemm, TransposesMatchPlainLoops) {
  const int64_t M = 5, N = 7, K = 9;
  auto a = test::random_vector(size_t(M * K), 5), b = test::random_vector(size_t(K * N), 6);
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      std::vector<float> c(size_t(M * N), 1.0f);
      sgemm(ta, tb, M, N, K, 2.0f, a.data(), ta ? M : K, b.data(), tb ? K : N, 0.5f, c.data(), N);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += double(ta ? a[size_t(k * M + i)] : a[size_t(i * K + k)]) * (tb ? b[size_t(j * K + k)] : b[size_t(k * N + j)]);
          EXPECT_NEAR(c[size_t(i * N + j)], 2 * acc + 0.5, 1e-4) << ta << tb;
        }
    }
  }
}

TEST(RmsNorm, MatchesFormula) {
  const int64_t rows = 3, dim = 37;
  auto x = test::random_vector(size_t(rows * dim), 7), w = test::random_vector(size_t(dim), 8);
  std::vector<float> y(x.size());
  rmsnorm_forward(y.data(), x.data(), w.data(), rows, dim, 1e-5f);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[size_t(r * dim + i)]) * x[size_t(r * dim + i)];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int64_t i = 0; i < dim; ++i)
      EXPECT_NEAR(y[size_t(r * dim + i)], w[size_t(i)] * x[size_t(r * dim + i)] * inv, 1e-5);
  }
}

TEST(Softmax, SumsToOneAndIsShiftInvariant) {
  std::vector<float> a{1000.0f, 1001.0f, 999.0f}, b{0.0f, 1.0f, -1.0f};
  softmax_forward(a.data(), 3);
  softmax_forward(b.data(), 3);
  EXPECT_NEAR(a[0] + a[1] + a[2], 1.0f, 1e-6);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(a[size_t(i)], b[size_t(i)], 1e-6);
  EXPECT_NEAR(b[1], std::exp(1.0) / (1 + std::exp(1.0) + std::exp(-1.0)), 1e-6);
}

TEST(SwiGlu, MatchesFormula) {
  std::vector<float> g{-3.0f, 0.0f, 2.5f}, u{2.0f, 5.0f, -1.0f}, out(3);
  swiglu_forward(out.data(), g.data(), u.data(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(out[size_t(i)], g[size_t(i)] / (1 + std::exp(-g[size_t(i)])) * u[size_t(i)], 1e-6);
}

TEST(Rope, RotatesHalvesByPositionTimesFrequency) {
  const int64_t hd = 8;
  auto inv = rope_inv_freq(hd, 10000.0f, RopeScaling{});
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_NEAR(inv[1], std::pow(10000.0, -0.25), 1e-7);
  auto x = test::random_vector(size_t(hd), 9);
  std::vector<float> y = x;
  const int64_t pos = 5;
  rope_forward(y.data(), &pos, 1, 1, hd, inv.data());
  for (int64_t i = 0; i < hd / 2; ++i) {
    const double a = double(pos) * inv[size_t(i)];
    EXPECT_NEAR(y[size_t(i)], x[size_t(i)] * std::cos(a) - x[size_t(i + 4)] * std::sin(a), 1e-5);
    EXPECT_NEAR(y[size_t(i + 4)], x[size_t(i + 4)] * std::cos(a) + x[size_t(i)] * std::sin(a), 1e-5);
  }
}

TEST(Rope, DotProductDependsOnlyOnRelativePosition) {
  const int64_t hd = 16;
  auto inv = rope_inv_freq(hd, 10000.0f, RopeScaling{});
  auto q = test::random_vector(size_t(hd), 10), k = test::random_vector(size_t(hd), 11);
  auto dot_at = [&](int64_t pq, int64_t pk) {
    std::vector<float> a = q, b = k;
    rope_forward(a.data(), &pq, 1, 1, hd, inv.data());
    rope_forward(b.data(), &pk, 1, 1, hd, inv.data());
    double d = 0;
    for (int64_t i = 0; i < hd; ++i) d += double(a[size_t(i)]) * b[size_t(i)];
    return d;
  };
  EXPECT_NEAR(dot_at(7, 3), dot_at(104, 100), 1e-4);
  EXPECT_GT(std::abs(dot_at(7, 3) - dot_at(7, 6)), 1e-3);
}

TEST(Rope, Llama3ScalingKeepsHighAndSlowsLowFrequencies) {
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.factor = 8;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  s.original_max_position_embeddings = 8192;
  const int64_t hd = 128;
  auto plain = rope_inv_freq(hd, 500000.0f, RopeScaling{});
  auto scaled = rope_inv_freq(hd, 500000.0f, s);
  EXPECT_FLOAT_EQ(scaled[0], plain[0]);                 // wavelength 2*pi: untouched
  EXPECT_FLOAT_EQ(scaled[63], plain[63] / 8.0f);        // longest wavelength: divided by factor
  bool some_medium = false;
  for (size_t i = 0; i < plain.size(); ++i)
    if (scaled[i] < plain[i] && scaled[i] > plain[i] / 8.0f * 1.0001f) some_medium = true;
  EXPECT_TRUE(some_medium);
}

// window 0: full causal attention; 4: each query sees its last 4 positions (Mistral's window).
class Attention : public ::testing::TestWithParam<int64_t> {};

TEST_P(Attention, MatchesNaiveCausalGqa) {
  const AttentionShape shape{4, 2, 8, GetParam()};
  const int64_t T = 6, pos0 = 3, ctx = pos0 + T, kvd = shape.n_kv_heads * shape.head_dim;
  auto q = test::random_vector(size_t(T * shape.n_heads * shape.head_dim), 12);
  auto k = test::random_vector(size_t(ctx * kvd), 13), v = test::random_vector(size_t(ctx * kvd), 14);
  std::vector<float> out(q.size());
  attention_forward(out.data(), q.data(), k.data(), v.data(), T, pos0, kvd, shape);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < shape.n_heads; ++h) {
      const int64_t g = h / 2;
      std::vector<double> s;
      double mx = -1e300, sum = 0;
      const int64_t first = shape.window > 0 ? std::max<int64_t>(0, pos0 + t - shape.window + 1) : 0;
      for (int64_t j = first; j <= pos0 + t; ++j) {
        double d = 0;
        for (int64_t i = 0; i < 8; ++i) d += double(q[size_t((t * 4 + h) * 8 + i)]) * k[size_t(j * kvd + g * 8 + i)];
        s.push_back(d / std::sqrt(8.0));
        mx = std::max(mx, s.back());
      }
      for (double& e : s) sum += (e = std::exp(e - mx));
      for (int64_t i = 0; i < 8; ++i) {
        double o = 0;
        for (size_t j = 0; j < s.size(); ++j) o += s[j] / sum * v[(first + j) * size_t(kvd) + size_t(g * 8 + i)];
        EXPECT_NEAR(out[size_t((t * 4 + h) * 8 + i)], o, 1e-5);
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Windows, Attention, ::testing::Values(int64_t(0), int64_t(4)));

// Keys and values stored as BF16, F16 or Q8_0 rows: attention over them equals F32 attention over
// the same rows widened (the values the stored bits mean), and differs from attention over the
// unrounded rows; two spans, grouped heads of 64 (two Q8_0 blocks each).
TEST(AttentionKvTypes, ReadTheStoredRowsAsTheirValues) {
  const AttentionShape shape{4, 2, 64, 0};
  const int64_t T = 3, ctx = 40, kvd = shape.n_kv_heads * shape.head_dim;
  auto q = test::random_vector(size_t(T * shape.n_heads * shape.head_dim), 61);
  auto k = test::random_vector(size_t(ctx * kvd), 62), v = test::random_vector(size_t(ctx * kvd), 63);
  std::vector<KeySpans> spans(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    spans[size_t(t)].begin[0] = 0;
    spans[size_t(t)].end[0] = 5;
    spans[size_t(t)].begin[1] = 20 + t;
    spans[size_t(t)].end[1] = 30 + 3 * t;
  }
  std::vector<float> exact(q.size());
  attention_forward_spans(exact.data(), q.data(), KvRows{k.data(), v.data(), DType::F32, kvd * 4}, spans.data(), T,
                          shape);
  for (DType dtype : {DType::BF16, DType::F16, DType::Q8_0}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t row_bytes = int64_t(dtype_bytes(dtype, kvd));
    std::vector<uint8_t> ks(size_t(ctx * row_bytes)), vs(ks.size());
    std::vector<float> kw(k.size()), vw(v.size());  // the stored rows widened back
    for (int64_t j = 0; j < ctx; ++j) {
      convert_from_f32(k.data() + j * kvd, dtype, ks.data() + j * row_bytes, size_t(kvd));
      convert_from_f32(v.data() + j * kvd, dtype, vs.data() + j * row_bytes, size_t(kvd));
      convert_to_f32(dtype, ks.data() + j * row_bytes, kw.data() + j * kvd, size_t(kvd));
      convert_to_f32(dtype, vs.data() + j * row_bytes, vw.data() + j * kvd, size_t(kvd));
    }
    std::vector<float> stored(q.size()), widened(q.size());
    attention_forward_spans(stored.data(), q.data(), KvRows{ks.data(), vs.data(), dtype, row_bytes}, spans.data(), T,
                            shape);
    attention_forward_spans(widened.data(), q.data(), KvRows{kw.data(), vw.data(), DType::F32, kvd * 4}, spans.data(),
                            T, shape);
    EXPECT_LE(test::max_abs_diff(stored, widened), 1e-6f);
    EXPECT_GT(test::max_abs_diff(stored, exact), 1e-5f);
    EXPECT_LE(test::max_abs_diff(stored, exact), 0.05f);
  }
  std::vector<uint8_t> rows(size_t(ctx * 34 * 2));  // Q8_0 rows need heads of whole blocks of 32
  std::vector<float> out(size_t(T * 4 * 16));
  const AttentionShape small{4, 2, 16, 0};
  EXPECT_THROW(attention_forward_spans(out.data(), q.data(), KvRows{rows.data(), rows.data(), DType::Q8_0, 34},
                                       spans.data(), T, small),
               Error);
}

// Heads of 64 go through the tiled path (tiles of 64 keys, an online softmax): against a double
// reference over several tiles, with a sliding window and soft-capping; rows attended in one call
// of 37 give each row the same bits as the row alone (a decode step), whatever block it shared.
TEST(AttentionTiles, MatchTheDoubleReferenceAndDoNotDependOnTheBlock) {
  for (const auto& [window, softcap] : {std::pair<int64_t, float>{0, 0.0f}, {90, 0.0f}, {0, 5.0f}}) {
    SCOPED_TRACE(testing::Message() << "window " << window << " softcap " << softcap);
    AttentionShape shape{6, 2, 64, window};
    shape.softcap = softcap;
    const int64_t T = 37, pos0 = 180, ctx = pos0 + T, kvd = shape.n_kv_heads * shape.head_dim, hd = 64;
    auto q = test::random_vector(size_t(T * shape.n_heads * hd), 71);
    auto k = test::random_vector(size_t(ctx * kvd), 72), v = test::random_vector(size_t(ctx * kvd), 73);
    for (float& x : q) x *= 3.0f;  // peaked softmaxes: the running max matters
    std::vector<float> out(q.size());
    attention_forward(out.data(), q.data(), k.data(), v.data(), T, pos0, kvd, shape);
    double worst = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < shape.n_heads; ++h) {
        const int64_t g = h / 3, first = window_start(pos0 + t, window);
        std::vector<double> s;
        double mx = -1e300, sum = 0;
        for (int64_t j = first; j <= pos0 + t; ++j) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i)
            d += double(q[size_t((t * shape.n_heads + h) * hd + i)]) * k[size_t(j * kvd + g * hd + i)];
          d /= 8.0;
          if (softcap > 0) d = softcap * std::tanh(d / softcap);
          s.push_back(d);
          mx = std::max(mx, d);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t i = 0; i < hd; ++i) {
          double o = 0;
          for (size_t j = 0; j < s.size(); ++j) o += s[j] / sum * v[(first + j) * size_t(kvd) + size_t(g * hd + i)];
          worst = std::max(worst, std::abs(double(out[size_t((t * shape.n_heads + h) * hd + i)]) - o));
        }
      }
    EXPECT_LE(worst, 1e-5);
    EXPECT_GT(worst, 0.0);  // float sums, not the reference's doubles
    for (int64_t t : {int64_t(0), int64_t(13), T - 1}) {  // the same row alone
      std::vector<float> alone(size_t(shape.n_heads * hd));
      attention_forward(alone.data(), q.data() + t * shape.n_heads * hd, k.data(), v.data(), 1, pos0 + t, kvd, shape);
      for (size_t i = 0; i < alone.size(); ++i)
        ASSERT_EQ(alone[i], out[size_t(t * shape.n_heads * hd) + i]) << "row " << t << " value " << i;
    }
  }
}

}  // namespace
}  // namespace taia
