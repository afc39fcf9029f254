#include "kernels/gemm.h"

#include <dnnl.h>

#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/error.h"

namespace taia {
namespace {

#define DNNL_OK(call)                                                                          \
  do {                                                                                         \
    dnnl_status_t s_ = (call);                                                                 \
    TAIA_CHECK(s_ == dnnl_success, "[gemm] oneDNN call failed (status ", int(s_), "): ", #call); \
  } while (0)

dnnl_engine_t engine() {
  static dnnl_engine_t e = [] {
    // plan_for below keeps the primitives taia uses; oneDNN's own cache (1024 primitives by
    // default) would hold a second, unbounded-by-us copy of every shape seen (~120 MB measured
    // after 2000 batch lengths).
    DNNL_OK(dnnl_set_primitive_cache_capacity(0));
    dnnl_engine_t x = nullptr;
    DNNL_OK(dnnl_engine_create(&x, dnnl_cpu, 0));
    return x;
  }();
  return e;
}

dnnl_stream_t stream() {
  static dnnl_stream_t s = [] {
    dnnl_stream_t x = nullptr;
    DNNL_OK(dnnl_stream_create(&x, engine(), dnnl_stream_default_flags));
    return x;
  }();
  return s;
}

// A JIT-compiled matmul primitive for one shape (about 120 KB each).
struct Plan {
  dnnl_memory_desc_t a, b, c;
  dnnl_primitive_t prim = nullptr;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (prim) dnnl_primitive_destroy(prim);
  }
};

// (M, N, K, lda, ldw, ldc, b_is_nk, accumulate, operand type)
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, dnnl_data_type_t>;

// Primitives of the most recently used shapes. M varies with the batch (evaluation packs
// batches of any length, training groups sequences by length), so an unbounded cache would grow
// by a primitive per new length; the least recently used one goes beyond kMaxPlans (a
// recompilation costs ~0.4 ms). Callers hold a shared_ptr while they execute.
constexpr size_t kMaxPlans = 256;

std::shared_ptr<Plan> make_plan(const Key& key);

std::shared_ptr<Plan> plan_for(const Key& key) {
  using Entry = std::pair<Key, std::shared_ptr<Plan>>;
  static std::list<Entry> lru;  // most recent first
  static std::map<Key, std::list<Entry>::iterator> index;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = index.find(key); it != index.end()) {
    lru.splice(lru.begin(), lru, it->second);
    return it->second->second;
  }
  lru.emplace_front(key, make_plan(key));
  index[key] = lru.begin();
  if (lru.size() > kMaxPlans) {
    index.erase(lru.back().first);
    lru.pop_back();
  }
  return lru.front().second;
}

std::shared_ptr<Plan> make_plan(const Key& key) {
  const auto [M, N, K, lda, ldw, ldc, b_is_nk, accumulate, type] = key;
  auto plan = std::make_shared<Plan>();
  Plan& p = *plan;
  dnnl_dims_t a_dims = {M, K}, a_strides = {lda, 1};
  dnnl_dims_t b_dims = {K, N}, b_strides = {b_is_nk ? 1 : ldw, b_is_nk ? ldw : 1};
  dnnl_dims_t c_dims = {M, N}, c_strides = {ldc, 1};
  DNNL_OK(dnnl_memory_desc_init_by_strides(&p.a, 2, a_dims, type, a_strides));
  DNNL_OK(dnnl_memory_desc_init_by_strides(&p.b, 2, b_dims, type, b_strides));
  DNNL_OK(dnnl_memory_desc_init_by_strides(&p.c, 2, c_dims, dnnl_f32, c_strides));
  dnnl_matmul_desc_t desc;
  DNNL_OK(dnnl_matmul_desc_init(&desc, &p.a, &p.b, nullptr, &p.c));
  dnnl_primitive_attr_t attr = nullptr;
  DNNL_OK(dnnl_primitive_attr_create(&attr));
  if (accumulate) {
    dnnl_post_ops_t po = nullptr;
    DNNL_OK(dnnl_post_ops_create(&po));
    DNNL_OK(dnnl_post_ops_append_sum(po, 1.0f));
    DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
    dnnl_post_ops_destroy(po);
  }
  dnnl_primitive_desc_t pd = nullptr;
  DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, engine(), nullptr));
  DNNL_OK(dnnl_primitive_create(&p.prim, pd));
  dnnl_primitive_desc_destroy(pd);
  dnnl_primitive_attr_destroy(attr);
  return plan;
}

void run_matmul(dnnl_data_type_t type, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda, const void* W,
                int64_t ldw, bool b_is_nk, float* C, int64_t ldc, bool accumulate) {
  if (M == 0 || N == 0) return;
  const std::shared_ptr<Plan> plan = plan_for(Key{M, N, K, lda, ldw, ldc, b_is_nk, accumulate, type});
  const Plan& p = *plan;
  dnnl_memory_t a = nullptr, b = nullptr, c = nullptr;
  DNNL_OK(dnnl_memory_create(&a, &p.a, engine(), const_cast<void*>(A)));
  DNNL_OK(dnnl_memory_create(&b, &p.b, engine(), const_cast<void*>(W)));
  DNNL_OK(dnnl_memory_create(&c, &p.c, engine(), C));
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  const dnnl_status_t st = dnnl_primitive_execute(p.prim, stream(), 3, args);
  dnnl_stream_wait(stream());
  dnnl_memory_destroy(a);
  dnnl_memory_destroy(b);
  dnnl_memory_destroy(c);
  TAIA_CHECK(st == dnnl_success, "[gemm] oneDNN matmul failed with status ", int(st), " for M=", M, " N=", N, " K=", K);
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  TAIA_CHECK(st == dnnl_success, "[sgemm] oneDNN dnnl_sgemm failed with status ", int(st), " for M=", M, " N=", N,
             " K=", K);
}

void gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* W, int64_t ldw,
               bool b_is_nk, float* C, int64_t ldc, bool accumulate) {
  run_matmul(dnnl_bf16, M, N, K, A, lda, W, ldw, b_is_nk, C, ldc, accumulate);
}

void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W, int64_t ldw,
              bool b_is_nk, float* C, int64_t ldc, bool accumulate) {
  run_matmul(dnnl_f32, M, N, K, A, lda, W, ldw, b_is_nk, C, ldc, accumulate);
}

}  // namespace taia
