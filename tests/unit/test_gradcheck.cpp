// Every backward kernel against central finite differences of its forward, in double precision.
#include <algorithm>
#include <cmath>
#include <functional>

#include "core/dtype.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/geglu.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/linear_cross_entropy.h"
#include "kernels/molora.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/softcap.h"
#include "kernels/swiglu.h"
#include "test_util.h"

namespace taia {
namespace {

using Vec = std::vector<double>;

Vec random_doubles(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Vec v(n);
  for (double& x : v) x = rng.normal() * scale;
  return v;
}

// Checks d(loss)/d(param) against (loss(p + h) - loss(p - h)) / 2h for every element.
void expect_gradient(const char* what, Vec& param, const Vec& analytic, const std::function<double()>& loss,
                     double tol = 1e-6) {
  ASSERT_EQ(param.size(), analytic.size()) << what;
  const double h = 1e-6;
  double worst = 0;
  for (size_t i = 0; i < param.size(); ++i) {
    const double keep = param[i];
    param[i] = keep + h;
    const double up = loss();
    param[i] = keep - h;
    const double down = loss();
    param[i] = keep;
    const double numeric = (up - down) / (2 * h);
    const double err = std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(numeric));
    worst = std::max(worst, err);
  }
  EXPECT_LT(worst, tol) << what << ": worst relative error " << worst;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

TEST(GradCheck, RmsNorm) {
  const int64_t N = 3, D = 7;
  Vec x = random_doubles(N * D, 1), w = random_doubles(D, 2), c = random_doubles(N * D, 3);
  Vec y(N * D), rstd(N);
  auto loss = [&] {
    rmsnorm_train_forward<double>(y.data(), rstd.data(), x.data(), w.data(), N, D, 1e-5);
    return dot(y, c);
  };
  loss();
  Vec dx(N * D, 0), dw(D, 0);
  rmsnorm_backward<double>(dx.data(), dw.data(), c.data(), x.data(), w.data(), rstd.data(), N, D);
  expect_gradient("rmsnorm dx", x, dx, loss);
  expect_gradient("rmsnorm dw", w, dw, loss);
}

TEST(GradCheck, Rope) {
  const int64_t N = 4, heads = 3, hd = 8;
  auto inv = rope_inv_freq(hd, 10000.0f, RopeScaling{});
  std::vector<int64_t> pos{0, 3, 7, 100};
  const RopeTable table = rope_table(inv, 101);
  Vec x = random_doubles(N * heads * hd, 4), c = random_doubles(N * heads * hd, 5);
  auto loss = [&] {
    Vec y = x;
    rope_train_forward<double>(y.data(), pos.data(), N, heads, hd, table);
    return dot(y, c);
  };
  Vec dx = c;  // backward: rotate the upstream gradient by the negative angle
  rope_backward<double>(dx.data(), pos.data(), N, heads, hd, table);
  expect_gradient("rope dx", x, dx, loss);
}

// GeGLU (Gemma's MLP, tanh-approximated GELU): gradients against finite differences; the float
// inference and training forwards against the double definition; the known value of gelu(1).
TEST(GradCheck, GeGlu) {
  const int64_t n = 20;
  Vec g = random_doubles(n, 46, 3.0), u = random_doubles(n, 47), c = random_doubles(n, 48), h(n);
  auto loss = [&] {
    geglu_train_forward<double>(h.data(), g.data(), u.data(), n);
    return dot(h, c);
  };
  Vec dg(n, 0), du(n, 0);
  geglu_backward<double>(dg.data(), du.data(), c.data(), g.data(), u.data(), n);
  expect_gradient("geglu dgate", g, dg, loss);
  expect_gradient("geglu dup", u, du, loss);
  loss();
  std::vector<float> gf(g.begin(), g.end()), uf(u.begin(), u.end()), hi(n), ht(n);
  geglu_forward(hi.data(), gf.data(), uf.data(), n);
  geglu_train_forward<float>(ht.data(), gf.data(), uf.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(hi[size_t(i)], h[size_t(i)], 1e-5 * std::max(1.0, std::abs(h[size_t(i)])));
    EXPECT_NEAR(ht[size_t(i)], h[size_t(i)], 1e-5 * std::max(1.0, std::abs(h[size_t(i)])));
  }
  const float one = 1.0f;
  float gelu1 = 0;
  geglu_forward(&gelu1, &one, &one, 1);
  EXPECT_NEAR(gelu1, 0.8411920, 1e-6);  // torch.nn.functional.gelu(1, approximate="tanh")
}

// Soft-capping (Gemma 2's attention and final logits): cap * tanh(x / cap), bounded by cap,
// gradients from the capped values against finite differences.
TEST(GradCheck, SoftCap) {
  const int64_t n = 16;
  const double cap = 2.5;
  Vec x = random_doubles(n, 49, 6.0), c = random_doubles(n, 50), y(n);
  auto loss = [&] {
    y = x;
    softcap_forward<double>(y.data(), n, cap);
    return dot(y, c);
  };
  loss();
  for (double v : y) EXPECT_LT(std::abs(v), cap);
  Vec dx(n, 0);
  softcap_backward<double>(dx.data(), c.data(), y.data(), n, cap);
  Vec in_place = c;  // the engine's form: the gradient at the capped values becomes the input's
  softcap_backward_inplace<double>(in_place.data(), y.data(), n, cap);
  for (int64_t i = 0; i < n; ++i) EXPECT_DOUBLE_EQ(in_place[size_t(i)], dx[size_t(i)]);
  expect_gradient("softcap dx", x, dx, loss);
}

TEST(GradCheck, SwiGlu) {
  const int64_t n = 20;
  Vec g = random_doubles(n, 6, 2.0), u = random_doubles(n, 7), c = random_doubles(n, 8), h(n);
  auto loss = [&] {
    swiglu_train_forward<double>(h.data(), g.data(), u.data(), n);
    return dot(h, c);
  };
  Vec dg(n, 0), du(n, 0);
  swiglu_backward<double>(dg.data(), du.data(), c.data(), g.data(), u.data(), n);
  expect_gradient("swiglu dg", g, dg, loss);
  expect_gradient("swiglu du", u, du, loss);
}

TEST(GradCheck, CausalGqaAttention) {
  const int64_t B = 2, L = 5, H = 4, KV = 2, hd = 3;
  Vec q = random_doubles(B * L * H * hd, 9), k = random_doubles(B * L * KV * hd, 10),
      v = random_doubles(B * L * KV * hd, 11), c = random_doubles(B * L * H * hd, 12);
  Vec out(B * L * H * hd), probs(B * H * L * L);
  auto loss = [&] {
    attention_train_forward<double>(out.data(), probs.data(), q.data(), k.data(), v.data(), B, L, AttentionShape{H, KV, hd});
    return dot(out, c);
  };
  loss();
  Vec dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
  attention_backward<double>(dq.data(), dk.data(), dv.data(), c.data(), probs.data(), q.data(), k.data(), v.data(), B,
                             L, AttentionShape{H, KV, hd});
  expect_gradient("attention dq", q, dq, loss);
  expect_gradient("attention dk", k, dk, loss);
  expect_gradient("attention dv", v, dv, loss);
  // Causality: the output at position 0 ignores later keys.
  const double before = out[0];
  k[(0 * L + 3) * KV * hd] += 1.0;
  loss();
  EXPECT_EQ(out[0], before);
}

TEST(GradCheck, CrossEntropyWithIgnoredRows) {
  const int64_t N = 4, V = 6;
  Vec logits = random_doubles(N * V, 13, 2.0);
  std::vector<int32_t> targets{2, -1, 5, 0};
  const double scale = 1.0 / 3.0;  // mean over the 3 non-ignored rows
  auto loss = [&] {
    Vec l = logits;
    return cross_entropy_forward_backward<double>(l.data(), targets.data(), N, V, scale) * scale;
  };
  Vec grad = logits;
  cross_entropy_forward_backward<double>(grad.data(), targets.data(), N, V, scale);
  expect_gradient("cross_entropy dlogits", logits, grad, loss);
  for (int64_t i = 0; i < V; ++i) EXPECT_EQ(grad[size_t(V + i)], 0.0) << "ignored row has no gradient";
}

// The fused LM head + cross-entropy over vocabulary chunks (running max and sum) against the head's
// logits in full, the plain cross-entropy and the head's backward, in double: chunks of 4 of a
// 37-token vocabulary (the last one short), blocks of 2 rows, logits large enough that the running
// maximum moves, and the gathered rows' gradients landing at their rows of dx.
TEST(GradCheck, LinearCrossEntropyEqualsTheFullHeadAndLoss) {
  const int64_t rows = 5, V = 37, K = 6;
  const Vec x = random_doubles(rows * K, 40, 1.5), W = random_doubles(V * K, 41, 1.5);
  const std::vector<int32_t> targets{3, 36, 0, 17, 33};
  const std::vector<int64_t> dx_rows{0, 2, 3, 5, 6};  // rows 1 and 4 of dx have no target
  const double scale = 0.2;
  // The full computation: logits [rows, V], then cross-entropy, then dx = dlogits W.
  Vec logits(rows * V), d_full(rows * K, 0.0);
  linear_train_forward_ref<double>(logits.data(), x.data(), W.data(), nullptr, rows, V, K);
  int moves = 0;  // how often a row's running maximum rises after its first chunk
  for (int64_t r = 0; r < rows; ++r) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (logits[size_t(r * V + v)] > logits[size_t(r * V + best)]) {
        best = v;
        moves += v >= 4;
      }
  }
  ASSERT_GE(moves, rows) << "the case should move the running maximum";
  const double full_loss = cross_entropy_forward_backward<double>(logits.data(), targets.data(), rows, V, scale);
  linear_backward_ref<double>(d_full.data(), nullptr, nullptr, logits.data(), x.data(), W.data(), rows, V, K);

  VocabChunkProducts<double> products;
  products.logits = [&](double* z, int64_t first, int64_t n, int64_t v0, int64_t vc) {
    linear_train_forward_ref<double>(z, x.data() + first * K, W.data() + v0 * K, nullptr, n, vc, K);
  };
  products.accumulate = [&](double* acc, const double* p, int64_t n, int64_t v0, int64_t vc) {
    linear_backward_ref<double>(acc, nullptr, nullptr, p, nullptr, W.data() + v0 * K, n, vc, K);
  };
  products.weight_row = [&](double* out, int64_t v) { std::copy_n(W.data() + v * K, K, out); };
  Vec dx(7 * K, 0.25), acc(rows * K), tile(2 * 4), mx(rows), sum(rows), zt(rows);
  const double loss = online_softmax_cross_entropy<double>(dx.data(), dx_rows.data(), targets.data(), rows, V, K,
                                                           scale, products, LinearCrossEntropyShape{4, 2},
                                                           acc.data(), tile.data(), mx.data(), sum.data(), zt.data());
  EXPECT_NEAR(loss, full_loss, 1e-6 * std::abs(full_loss));
  double worst = 0;
  for (int64_t r = 0; r < 7; ++r)
    for (int64_t k = 0; k < K; ++k) {
      const auto it = std::find(dx_rows.begin(), dx_rows.end(), r);
      const double expected = 0.25 + (it == dx_rows.end() ? 0.0 : d_full[size_t((it - dx_rows.begin()) * K + k)]);
      worst = std::max(worst, std::abs(dx[size_t(r * K + k)] - expected) / std::max(1e-3, std::abs(expected)));
    }
  EXPECT_LT(worst, 1e-6) << "dx against the full head's backward";
}

TEST(GradCheck, LinearReference) {
  const int64_t M = 3, N = 4, K = 5;
  Vec x = random_doubles(M * K, 14), W = random_doubles(N * K, 15), b = random_doubles(N, 16),
      c = random_doubles(M * N, 17), y(M * N);
  auto loss = [&] {
    linear_train_forward_ref<double>(y.data(), x.data(), W.data(), b.data(), M, N, K);
    return dot(y, c);
  };
  Vec dx(M * K, 0), dW(N * K, 0), db(N, 0);
  linear_backward_ref<double>(dx.data(), dW.data(), db.data(), c.data(), x.data(), W.data(), M, N, K);
  expect_gradient("linear dx", x, dx, loss);
  expect_gradient("linear dW", W, dW, loss);
  expect_gradient("linear db", b, db, loss);
}

TEST(GradCheck, FastLinearBackwardMatchesReference) {
  for (DType dt : {DType::F32, DType::BF16}) {
    const int64_t M = 37, N = 300, K = 65;
    auto x = test::random_vector(size_t(M * K), 18), wf = test::random_vector(size_t(N * K), 19, 0.1f),
         dy = test::random_vector(size_t(M * N), 20);
    std::vector<uint16_t> wb(wf.size());
    convert_from_f32(wf.data(), DType::BF16, wb.data(), wf.size());
    if (dt == DType::BF16) convert_to_f32(DType::BF16, wb.data(), wf.data(), wf.size());  // same values
    TensorView w("w", dt, {N, K}, dt == DType::F32 ? static_cast<void*>(wf.data()) : wb.data());
    std::vector<float> dx(size_t(M * K), 0.5f), dW(size_t(N * K), 0.25f), db(size_t(N), 1.0f);
    std::vector<float> rdx = dx, rdW = dW, rdb = db;
    linear_backward(dx.data(), dW.data(), db.data(), dy.data(), x.data(), w, M);
    linear_backward_ref<float>(rdx.data(), rdW.data(), rdb.data(), dy.data(), x.data(), wf.data(), M, N, K);
    EXPECT_LT(test::max_abs_diff(dx, rdx), 1e-4f) << dtype_name(dt);
    EXPECT_LT(test::max_abs_diff(dW, rdW), 1e-4f) << dtype_name(dt);
    EXPECT_LT(test::max_abs_diff(db, rdb), 1e-4f) << dtype_name(dt);
  }
}

// Sliding-window attention (Mistral): finite differences, and keys outside the window ignored.
TEST(GradCheck, SlidingWindowAttention) {
  const int64_t B = 2, L = 7, H = 4, KV = 2, hd = 3, W = 3;
  Vec q = random_doubles(B * L * H * hd, 19), k = random_doubles(B * L * KV * hd, 20),
      v = random_doubles(B * L * KV * hd, 21), c = random_doubles(B * L * H * hd, 22);
  Vec out(B * L * H * hd), probs(B * H * L * L);
  const AttentionShape shape{H, KV, hd, W};
  auto loss = [&] {
    attention_train_forward<double>(out.data(), probs.data(), q.data(), k.data(), v.data(), B, L, shape);
    return dot(out, c);
  };
  loss();
  Vec dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
  attention_backward<double>(dq.data(), dk.data(), dv.data(), c.data(), probs.data(), q.data(), k.data(), v.data(), B,
                             L, shape);
  expect_gradient("window attention dq", q, dq, loss);
  expect_gradient("window attention dk", k, dk, loss);
  expect_gradient("window attention dv", v, dv, loss);
  // Position 6 attends to 4..6: moving key 3 leaves it, moving key 4 does not.
  const size_t o6 = size_t((0 * L + 6) * H * hd);
  const double before = out[o6];
  k[size_t((0 * L + 3) * KV * hd)] += 1.0;
  loss();
  EXPECT_EQ(out[o6], before);
  k[size_t((0 * L + 4) * KV * hd)] += 1.0;
  loss();
  EXPECT_NE(out[o6], before);
}

// Gemma 2's attention: logits scaled by a custom factor and soft-capped, with a window.
TEST(GradCheck, SoftCappedScaledAttention) {
  const int64_t B = 1, L = 6, H = 2, KV = 1, hd = 4;
  Vec q = random_doubles(B * L * H * hd, 51, 2.0), k = random_doubles(B * L * KV * hd, 52, 2.0),
      v = random_doubles(B * L * KV * hd, 53), c = random_doubles(B * L * H * hd, 54);
  Vec out(B * L * H * hd), probs(B * H * L * L);
  AttentionShape shape{H, KV, hd, 4};
  shape.scale = 0.7f;
  shape.softcap = 1.5f;  // |q.k| * 0.7 reaches several units: the cap bends it
  auto loss = [&] {
    attention_train_forward<double>(out.data(), probs.data(), q.data(), k.data(), v.data(), B, L, shape);
    return dot(out, c);
  };
  loss();
  Vec dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
  attention_backward<double>(dq.data(), dk.data(), dv.data(), c.data(), probs.data(), q.data(), k.data(), v.data(), B,
                             L, shape);
  expect_gradient("capped attention dq", q, dq, loss);
  expect_gradient("capped attention dk", k, dk, loss);
  expect_gradient("capped attention dv", v, dv, loss);
}

// The float kernels run attention as GEMMs in blocks of 64 query rows against the keys up to
// the block's end (from the window's start under a sliding window); L = 150 gives two full
// blocks and a partial one. They must compute what the double-precision loops (checked above
// against finite differences) compute, with and without a window (37: blocks start mid-window).
class BlockedAttention : public ::testing::TestWithParam<int64_t> {};

TEST_P(BlockedAttention, FloatMatchesDoubleLoops) {
  const int64_t B = 2, L = 150, H = 4, KV = 2, hd = 16, W = GetParam();
  const Vec q = random_doubles(B * L * H * hd, 31, 0.5), k = random_doubles(B * L * KV * hd, 32, 0.5),
            v = random_doubles(B * L * KV * hd, 33), c = random_doubles(B * L * H * hd, 34);
  Vec out(q.size()), probs(size_t(B * H * L * L)), dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
  attention_train_forward<double>(out.data(), probs.data(), q.data(), k.data(), v.data(), B, L,
                                  AttentionShape{H, KV, hd, W});
  attention_backward<double>(dq.data(), dk.data(), dv.data(), c.data(), probs.data(), q.data(), k.data(), v.data(), B,
                             L, AttentionShape{H, KV, hd, W});
  auto to_f = [](const Vec& x) { return std::vector<float>(x.begin(), x.end()); };
  std::vector<float> qf = to_f(q), kf = to_f(k), vf = to_f(v), cf = to_f(c);
  std::vector<float> outf(out.size()), probsf(probs.size(), 7.0f), dqf(dq.size(), 0), dkf(dk.size(), 0),
      dvf(dv.size(), 0);
  attention_train_forward<float>(outf.data(), probsf.data(), qf.data(), kf.data(), vf.data(), B, L,
                                 AttentionShape{H, KV, hd, W});
  attention_backward<float>(dqf.data(), dkf.data(), dvf.data(), cf.data(), probsf.data(), qf.data(), kf.data(),
                            vf.data(), B, L, AttentionShape{H, KV, hd, W});
  auto worst = [](const Vec& ref, const std::vector<float>& got) {
    double w = 0;
    for (size_t i = 0; i < ref.size(); ++i) w = std::max(w, std::abs(double(got[i]) - ref[i]) / std::max(1.0, std::abs(ref[i])));
    return w;
  };
  EXPECT_LT(worst(out, outf), 1e-5);
  EXPECT_LT(worst(probs, probsf), 1e-5);  // includes the zero upper triangle (probsf started at 7)
  EXPECT_LT(worst(dq, dqf), 1e-4);
  EXPECT_LT(worst(dk, dkf), 1e-4);
  EXPECT_LT(worst(dv, dvf), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Windows, BlockedAttention, ::testing::Values(int64_t(0), int64_t(37), int64_t(64)));

// The blocked float kernels with Gemma 2's scale and soft-cap (the backward recomputes the capped
// logits of each block) against the double loops.
TEST(GradCheck, BlockedSoftCappedAttentionMatchesDoubleLoops) {
  const int64_t B = 1, L = 150, H = 2, KV = 1, hd = 16;
  const Vec q = random_doubles(B * L * H * hd, 55, 1.0), k = random_doubles(B * L * KV * hd, 56, 1.0),
            v = random_doubles(B * L * KV * hd, 57), c = random_doubles(B * L * H * hd, 58);
  AttentionShape shape{H, KV, hd, 37};
  shape.scale = 0.5f;
  shape.softcap = 2.0f;
  Vec out(q.size()), probs(size_t(B * H * L * L)), dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
  attention_train_forward<double>(out.data(), probs.data(), q.data(), k.data(), v.data(), B, L, shape);
  attention_backward<double>(dq.data(), dk.data(), dv.data(), c.data(), probs.data(), q.data(), k.data(), v.data(), B,
                             L, shape);
  auto to_f = [](const Vec& x) { return std::vector<float>(x.begin(), x.end()); };
  std::vector<float> qf = to_f(q), kf = to_f(k), vf = to_f(v), cf = to_f(c);
  std::vector<float> outf(out.size()), probsf(probs.size()), dqf(dq.size(), 0), dkf(dk.size(), 0), dvf(dv.size(), 0);
  attention_train_forward<float>(outf.data(), probsf.data(), qf.data(), kf.data(), vf.data(), B, L, shape);
  attention_backward<float>(dqf.data(), dkf.data(), dvf.data(), cf.data(), probsf.data(), qf.data(), kf.data(),
                            vf.data(), B, L, shape);
  auto worst = [](const Vec& ref, const std::vector<float>& got) {
    double w = 0;
    for (size_t i = 0; i < ref.size(); ++i) w = std::max(w, std::abs(double(got[i]) - ref[i]) / std::max(1.0, std::abs(ref[i])));
    return w;
  };
  EXPECT_LT(worst(out, outf), 1e-5);
  EXPECT_LT(worst(dq, dqf), 1e-4);
  EXPECT_LT(worst(dk, dkf), 1e-4);
  EXPECT_LT(worst(dv, dvf), 1e-4);
}

// MoLoRA on one projection: N rows, E experts of rank r, top-k routing, optional balance loss.
struct MoloraCase {
  int64_t top_k;
  double balance;
};
class MoloraGrad : public ::testing::TestWithParam<MoloraCase> {};

TEST_P(MoloraGrad, MatchesFiniteDifferences) {
  const int64_t N = 7, E = 4, R = 3, in = 5, out = 6, k = GetParam().top_k;
  const double bw = GetParam().balance;
  Vec x = random_doubles(N * in, 51), A = random_doubles(E * R * in, 52), B = random_doubles(E * out * R, 53),
      rw = random_doubles(E * in, 54), rb = random_doubles(E, 55), c = random_doubles(N * out, 56);
  Vec y(N * out), logits(N * E), gate(N * k), u(N * k * R);
  std::vector<int32_t> expert(size_t(N * k));
  MoloraWeights<double> w{E, k, R, in, out, 0.75, A.data(), B.data(), rw.data(), rb.data()};
  const MoloraRouting<double> r{logits.data(), expert.data(), gate.data(), u.data()};
  auto loss = [&] {
    std::fill(y.begin(), y.end(), 0.0);
    molora_forward<double>(y.data(), r, x.data(), w, N);
    return dot(y, c) + bw * molora_balance_loss<double>(r, w, N);
  };
  loss();
  Vec dx(x.size(), 0), dA(A.size(), 0), dB(B.size(), 0), drw(rw.size(), 0), drb(rb.size(), 0);
  const double aux = molora_backward<double>(dx.data(), {dA.data(), dB.data(), drw.data(), drb.data()}, c.data(),
                                             x.data(), r, w, N, bw);
  EXPECT_NEAR(aux, molora_balance_loss<double>(r, w, N), 1e-12);
  expect_gradient("molora dx", x, dx, loss);
  expect_gradient("molora dA", A, dA, loss);
  expect_gradient("molora dB", B, dB, loss);
  expect_gradient("molora d_router_w", rw, drw, loss);
  expect_gradient("molora d_router_b", rb, drb, loss);
  // Top-1 without the balance loss: the router learns nothing (the gate is softmax of one logit).
  if (k == 1 && bw == 0) {
    for (double g : drw) EXPECT_EQ(g, 0.0);
    for (double g : drb) EXPECT_EQ(g, 0.0);
  } else {
    EXPECT_GT(std::abs(dot(drw, drw)), 0.0);
  }
  // Every row's gates sum to one, over k distinct experts.
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t j = 0; j < k; ++j) {
      s += gate[size_t(n * k + j)];
      for (int64_t i = 0; i < j; ++i) EXPECT_NE(expert[size_t(n * k + i)], expert[size_t(n * k + j)]);
    }
    EXPECT_NEAR(s, 1.0, 1e-12);
  }
}

INSTANTIATE_TEST_SUITE_P(Routing, MoloraGrad,
                         ::testing::Values(MoloraCase{1, 0.0}, MoloraCase{2, 0.0}, MoloraCase{1, 0.5},
                                           MoloraCase{2, 0.5}, MoloraCase{4, 0.0}));

// The balance loss over the counted rows (padding left out): the aux of those rows alone, and its
// gradient reaches no row left out.
TEST(GradCheck, MoloraBalanceLeavesUncountedRowsOut) {
  const int64_t N = 7, E = 4, R = 3, in = 5, out = 6, k = 2;
  const double bw = 0.5;
  const std::vector<uint8_t> counted{1, 1, 0, 1, 1, 0, 0};
  Vec x = random_doubles(N * in, 71), A = random_doubles(E * R * in, 72), B = random_doubles(E * out * R, 73),
      rw = random_doubles(E * in, 74), rb = random_doubles(E, 75);
  Vec y(N * out), logits(N * E), gate(N * k), u(N * k * R);
  std::vector<int32_t> expert(size_t(N * k));
  MoloraWeights<double> w{E, k, R, in, out, 0.75, A.data(), B.data(), rw.data(), rb.data()};
  const MoloraRouting<double> r{logits.data(), expert.data(), gate.data(), u.data()};
  auto aux_of = [&] {
    std::fill(y.begin(), y.end(), 0.0);
    molora_forward<double>(y.data(), r, x.data(), w, N);
    return bw * molora_balance_loss<double>(r, w, N, counted.data());
  };
  const double masked = aux_of() / bw;
  // The same rows alone.
  Vec xs;
  for (int64_t n = 0; n < N; ++n)
    if (counted[size_t(n)]) xs.insert(xs.end(), x.begin() + n * in, x.begin() + (n + 1) * in);
  const int64_t M = int64_t(xs.size()) / in;
  Vec ys(M * out), ls(M * E), gs(M * k), us(M * k * R);
  std::vector<int32_t> es(size_t(M * k));
  const MoloraRouting<double> rs{ls.data(), es.data(), gs.data(), us.data()};
  molora_forward<double>(ys.data(), rs, xs.data(), w, M);
  EXPECT_NEAR(masked, molora_balance_loss<double>(rs, w, M), 1e-12);
  EXPECT_GT(std::abs(masked - molora_balance_loss<double>(r, w, N)), 1e-6);  // the padding rows did count before
  aux_of();
  const Vec zero_dy(N * out, 0.0);
  Vec dx(x.size(), 0), dA(A.size(), 0), dB(B.size(), 0), drw(rw.size(), 0), drb(rb.size(), 0);
  molora_backward<double>(dx.data(), {dA.data(), dB.data(), drw.data(), drb.data()}, zero_dy.data(), x.data(), r, w,
                          N, bw, counted.data());
  expect_gradient("masked balance d_router_w", rw, drw, aux_of);
  expect_gradient("masked balance dx", x, dx, aux_of);
  for (int64_t n = 0; n < N; ++n)
    if (!counted[size_t(n)])
      for (int64_t i = 0; i < in; ++i) EXPECT_EQ(dx[size_t(n * in + i)], 0.0);
}

// The float kernels (grouped sgemm) against the double loops, on a size where experts get many rows.
TEST(GradCheck, MoloraFloatMatchesDoubleLoops) {
  const int64_t N = 300, E = 4, R = 8, in = 48, out = 40, k = 2;
  Vec xd = random_doubles(N * in, 61), Ad = random_doubles(E * R * in, 62, 0.2), Bd = random_doubles(E * out * R, 63, 0.2),
      rwd = random_doubles(E * in, 64, 0.2), rbd = random_doubles(E, 65), cd = random_doubles(N * out, 66);
  auto to_f = [](const Vec& v) { return std::vector<float>(v.begin(), v.end()); };
  auto xf = to_f(xd), Af = to_f(Ad), Bf = to_f(Bd), rwf = to_f(rwd), rbf = to_f(rbd), cf = to_f(cd);
  // The double run starts from the float values, so both see the same inputs.
  Vec x(xf.begin(), xf.end()), A(Af.begin(), Af.end()), B(Bf.begin(), Bf.end()), rw(rwf.begin(), rwf.end()),
      rb(rbf.begin(), rbf.end()), c(cf.begin(), cf.end());
  Vec y(N * out, 0), logits(N * E), gate(N * k), u(N * k * R), dx(N * in, 0), dA(A.size(), 0), dB(B.size(), 0),
      drw(rw.size(), 0), drb(E, 0);
  std::vector<int32_t> expert(size_t(N * k)), expert_f(size_t(N * k));
  const MoloraWeights<double> w{E, k, R, in, out, 2.0, A.data(), B.data(), rw.data(), rb.data()};
  const MoloraRouting<double> r{logits.data(), expert.data(), gate.data(), u.data()};
  molora_forward<double>(y.data(), r, x.data(), w, N);
  molora_backward<double>(dx.data(), {dA.data(), dB.data(), drw.data(), drb.data()}, c.data(), x.data(), r, w, N, 0.3);
  std::vector<float> yf(size_t(N * out), 0), logits_f(size_t(N * E)), gate_f(size_t(N * k)), u_f(size_t(N * k * R)),
      dxf(size_t(N * in), 0), dAf(Af.size(), 0), dBf(Bf.size(), 0), drwf(rwf.size(), 0), drbf(size_t(E), 0);
  const MoloraWeights<float> wf{E, k, R, in, out, 2.0f, Af.data(), Bf.data(), rwf.data(), rbf.data()};
  const MoloraRouting<float> rf{logits_f.data(), expert_f.data(), gate_f.data(), u_f.data()};
  molora_forward<float>(yf.data(), rf, xf.data(), wf, N);
  molora_backward<float>(dxf.data(), {dAf.data(), dBf.data(), drwf.data(), drbf.data()}, cf.data(), xf.data(), rf, wf,
                         N, 0.3);
  EXPECT_EQ(expert, expert_f);
  auto worst = [](const Vec& a, const std::vector<float>& b) {
    double m = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      m = std::max(m, std::abs(a[i] - double(b[i])));
      scale = std::max(scale, std::abs(a[i]));
    }
    return m / std::max(scale, 1e-30);
  };
  EXPECT_LT(worst(y, yf), 1e-5);
  EXPECT_LT(worst(dx, dxf), 1e-5);
  EXPECT_LT(worst(dA, dAf), 1e-5);
  EXPECT_LT(worst(dB, dBf), 1e-5);
  EXPECT_LT(worst(drw, drwf), 1e-5);
  EXPECT_LT(worst(drb, drbf), 1e-5);
}

// gemm_f32 (oneDNN's matmul primitive) in both weight layouts, overwriting and accumulating.
TEST(GradCheck, MatmulPrimitiveF32MatchesReference) {
  const int64_t M = 37, N = 300, K = 65;
  auto x = test::random_vector(size_t(M * K), 41), w = test::random_vector(size_t(N * K), 42, 0.1f);
  std::vector<float> ref(size_t(M * N));
  linear_train_forward_ref<float>(ref.data(), x.data(), w.data(), nullptr, M, N, K);
  std::vector<float> wt(size_t(K * N));  // W^T [K, N]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t kk = 0; kk < K; ++kk) wt[size_t(kk * N + n)] = w[size_t(n * K + kk)];
  for (bool b_is_nk : {true, false})
    for (bool accumulate : {false, true}) {
      std::vector<float> y(size_t(M * N), 0.5f), want = ref;
      if (accumulate)
        for (float& e : want) e += 0.5f;
      gemm_f32(M, N, K, x.data(), K, b_is_nk ? w.data() : wt.data(), b_is_nk ? K : N, b_is_nk, y.data(), N,
               accumulate);
      EXPECT_LT(test::max_abs_diff(y, want), 1e-4f) << "b_is_nk " << b_is_nk << " accumulate " << accumulate;
    }
}

}  // namespace
}  // namespace taia
