#include "model/decoder.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/glu.h"
#include "kernels/softcap.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

namespace taia {

Decoder::Decoder(const Model& model) : model_(model), recipe_(model_recipe(model.config)) {
  compute_.int8_activations = true;  // quantized files: llama.cpp's semantics unless set_exact_activations
  compute_.packed = model.packed.get();
  compute_.mapping = model.mapping.get();
  const ModelConfig& c = model.config;
  const int64_t dims = recipe_.rotary_dims;
  s_.inv_freq = rope_inv_freq(dims, float(c.rope_theta), c.rope_scaling,
                              model.rope_freq_factors.empty() ? nullptr : &model.rope_freq_factors);
  if (recipe_.uses(RotaryTable::Local)) s_.inv_freq_local = rope_inv_freq(dims, float(c.rope_local_theta), RopeScaling{});
  if (c.rope_scaling.type == RopeScaling::Type::LongRope)
    s_.inv_freq_long = rope_inv_freq(dims, float(c.rope_theta), c.rope_scaling, nullptr, true);
}

namespace {

void embed_rows(float* out, const TensorView& embed, const int32_t* tokens, int64_t T, int64_t D) {
  const int64_t V = embed.shape[0];
  for (int64_t t = 0; t < T; ++t) {
    const int64_t id = tokens[t];
    TAIA_CHECK(id >= 0 && id < V, "[Decoder::forward] token id ", id, " at position ", t,
               " is outside the vocabulary (", V, ")");
    const char* row = static_cast<const char*>(embed.data) + size_t(id) * dtype_bytes(embed.dtype, D);
    convert_to_f32(embed.dtype, row, out + t * D, size_t(D));
  }
}

}  // namespace

// Refuses an adapter made for another shape of model (layers, layout, module shapes) and a mask
// that splits a fused module.
void Decoder::check_adapter(const LoraAdapter& adapter, const ModuleMask& mask) const {
  const ModelConfig& c = model_.config;
  TAIA_CHECK(int64_t(adapter.layers.size()) == c.num_layers, "[Decoder::set_adapter] the adapter has ",
             adapter.layers.size(), " layers, the model ", c.num_layers);
  TAIA_CHECK(adapter.layout == c.proj_layout(), "[Decoder::set_adapter] the adapter's modules are ",
             adapter.layout == ProjLayout::Fused ? "fused" : "split", ", the model's are not");
  check_fused_targets(mask, c.proj_layout(), "[Decoder::set_adapter] modules");
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const LoraModule* m = adapter.find(l, Proj(i))) {
        const auto [in, out] = module_shape(c, Proj(i));
        TAIA_CHECK(m->in == in && m->out == out, "[Decoder::set_adapter] ", adapter.module_name(l, Proj(i)),
                   " is [", m->out, ", ", m->in, "] in the adapter but [", out, ", ", in, "] in the model");
      }
  for (int64_t l = 0; l < int64_t(adapter.molora.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const MoloraModule* m = adapter.molora.find(l, Proj(i))) {
        const auto [in, out] = module_shape(c, Proj(i));
        TAIA_CHECK(m->in == in && m->out == out, "[Decoder::set_adapter] the experts of ",
                   adapter.module_name(l, Proj(i)), " are [", m->out, ", ", m->in, "] but the model's projection is [",
                   out, ", ", in, "]");
      }
}

void Decoder::set_adapter(const LoraAdapter* adapter, const ModuleMask& mask) {
  if (adapter) check_adapter(*adapter, mask);
  adapter_ = adapter;
  mask_ = mask;
}

void Decoder::set_row_adapters(const std::vector<RowAdapter>* rows) {
  if (rows) {
    std::vector<RowAdapter> checked;
    for (const RowAdapter& r : *rows)
      if (r.adapter && std::find(checked.begin(), checked.end(), r) == checked.end()) {
        check_adapter(*r.adapter, r.mask);
        checked.push_back(r);
      }
  }
  row_adapters_ = rows;
}

void Decoder::set_compute(Precision precision) {
  if (precision == Precision::BF16) {
    const std::vector<ExpectedTensor> expected = expected_tensors(model_.config);
    const std::vector<const TensorView*> tensors = model_.named_tensors();  // in expected's order
    for (size_t i = 0; i < expected.size(); ++i)
      TAIA_CHECK(!expected[i].is_linear || tensors[i]->dtype == DType::BF16, "[Decoder] --compute bf16 multiplies ",
                 "BF16 weights; '", tensors[i]->name, "' is ", dtype_name(tensors[i]->dtype),
                 " (load the model with --dtype bf16)");
  }
  compute_.precision = precision;
  compute_.bf16 = precision == Precision::BF16 ? &bf16_ : nullptr;
}

void Decoder::set_exact_activations(bool exact) { compute_.int8_activations = !exact; }

void Decoder::configure(const DecoderSettings& s) {
  set_compute(s.precision);
  set_exact_activations(s.exact_activations);
  set_kv_dtype(s.kv_dtype);
}

void Decoder::set_kv_dtype(DType dtype) {
  KVCache::bytes_per_position(model_.config, dtype);  // refuses a type this model's heads cannot hold
  kv_dtype_ = dtype;
}

void Decoder::project(int64_t layer, Proj p, const Linear& lin, float* y, const float* x, int64_t T, bool accumulate) {
  linear_forward(y, x, lin.weight, lin.bias_ptr(), T, accumulate, compute_);
  add_lora(layer, p, lin, y, x, T);
}

void Decoder::project_shared(int64_t layer, const std::vector<Proj>& ps, const std::vector<const Linear*>& lins,
                             const std::vector<float*>& ys, const float* x, int64_t T) {
  std::vector<LinearOutput> outs;
  for (size_t i = 0; i < ps.size(); ++i) outs.push_back({&lins[i]->weight, lins[i]->bias_ptr(), ys[i], false});
  linear_forward_shared(outs, x, T, compute_);
  for (size_t i = 0; i < ps.size(); ++i) add_lora(layer, ps[i], *lins[i], ys[i], x, T);
}

// y += scale * B A x for p's module when the adapter applies it (unmerged), or p's mixture of
// experts (MoLoRA: each row routed to its experts). With per-row adapters, each run of consecutive
// rows sharing an adapter and mode gets that adapter's module for its rows.
void Decoder::add_lora(int64_t layer, Proj p, const Linear& lin, float* y, const float* x, int64_t T) {
  if (!row_adapters_) {
    if (adapter_ && mask_[size_t(p)]) add_adapter_rows(*adapter_, layer, p, lin, y, x, 0, T);
    return;
  }
  const std::vector<RowAdapter>& rows = *row_adapters_;
  TAIA_CHECK(int64_t(rows.size()) == T, "[Decoder] expected ", T, " row adapters, got ", rows.size());
  std::vector<AdapterRun> runs;
  bool any_molora = false;
  for (int64_t begin = 0, end = 0; begin < T; begin = end) {
    end = begin + 1;
    while (end < T && rows[size_t(end)] == rows[size_t(begin)]) ++end;
    const RowAdapter& r = rows[size_t(begin)];
    if (!r.adapter || !r.mask[size_t(p)]) continue;
    runs.push_back({r.adapter, begin, end});
    any_molora = any_molora || r.adapter->molora.find(layer, p) != nullptr;
  }
  // Runs together when there are enough to share out (two per thread at least; fewer, each run's
  // products split over the threads balance better) and the step is a decoding one.
  const bool together = int64_t(runs.size()) >= 2 * int64_t(omp_get_max_threads()) && T <= kRunsTogetherMaxRows;
  if (together && !any_molora) return add_lora_runs_together(runs, layer, p, lin, y, x);
  for (const AdapterRun& r : runs) add_adapter_rows(*r.adapter, layer, p, lin, y, x, r.begin, r.end);
}

// A decoding step's runs (one per adapter and mode, a row or a few each) share one parallel region,
// a run per thread at a time: two small products per run, each with its own region, cost more
// than the products (8 adapters x 3 modes on a 16M model: 0.67-0.76x of one adapter's rate).
// Inside the region oneDNN's sgemm and the few-rows product run on their calling thread.
void Decoder::add_lora_runs_together(const std::vector<AdapterRun>& runs, int64_t layer, Proj p, const Linear& lin,
                                     float* y, const float* x) {
  std::vector<std::optional<LoraView>> views;  // [runs]
  std::vector<int64_t> u_at(runs.size() + 1, 0);  // each run's rows of lora_u_ [rows, rank]
  for (size_t i = 0; i < runs.size(); ++i) {
    views.push_back(runs[i].adapter->view(layer, p, proj_row_offset(model_.config, p), lin.weight.shape[0]));
    u_at[i + 1] = u_at[i] + (views[i] ? (runs[i].end - runs[i].begin) * views[i]->rank : 0);
  }
  lora_u_.resize(size_t(u_at.back()));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < int64_t(runs.size()); ++i)
    if (views[size_t(i)])
      add_lora_view_rows(*views[size_t(i)], y, x, runs[size_t(i)].begin, runs[size_t(i)].end,
                         lora_u_.data() + u_at[size_t(i)]);
}

// Rows [begin, end) of y [T, out] += adapter's module of p applied to the same rows of x [T, in].
void Decoder::add_adapter_rows(const LoraAdapter& adapter, int64_t layer, Proj p, const Linear& lin, float* y,
                               const float* x, int64_t begin, int64_t end) {
  const int64_t T = end - begin;
  if (const MoloraModule* mm = adapter.molora.find(layer, p)) {
    const int64_t slots = T * mm->top_k;
    experts_.logits.resize(size_t(T * mm->experts));
    experts_.expert.resize(size_t(slots));
    experts_.gate.resize(size_t(slots));
    experts_.u.resize(size_t(slots * mm->rank));
    const MoloraRouting<float> r{experts_.logits.data(), experts_.expert.data(), experts_.gate.data(),
                                 experts_.u.data()};
    molora_forward<float>(y + begin * mm->out, r, x + begin * mm->in, mm->weights(), T);
    if (expert_counts_) {
      if (expert_counts_->size() <= size_t(layer)) expert_counts_->resize(size_t(layer) + 1);
      std::vector<int64_t>& c = (*expert_counts_)[size_t(layer)][size_t(p)];
      c.resize(std::max(c.size(), size_t(mm->experts)), 0);
      molora_count_slots(c.data(), experts_.expert.data(), mm->experts, slots);
    }
    return;
  }
  const auto m = adapter.view(layer, p, proj_row_offset(model_.config, p), lin.weight.shape[0]);
  if (!m) return;
  lora_u_.resize(size_t(T * m->rank));
  add_lora_view_rows(*m, y, x, begin, end, lora_u_.data());
}

// Rows [begin, end) of y [T, out] += m.scale * (x rows A^T) B^T; u: [end - begin, rank] scratch.
void Decoder::add_lora_view_rows(const LoraView& m, float* y, const float* x, int64_t begin, int64_t end, float* u) {
  const int64_t T = end - begin;
  linear_forward_few_rows(u, x + begin * m.in, TensorView("lora_A", DType::F32, {m.rank, m.in}, const_cast<float*>(m.A)),
                          T);
  sgemm(false, true, T, m.out, m.rank, m.scale, u, m.rank, m.B, m.rank, 1.0f, y + begin * m.out, m.out);
}

int64_t PackedBatch::add(int32_t token, int64_t position, int64_t slot, const KeySpans& attend) {
  tokens.push_back(token);
  positions.push_back(position);
  slots.push_back(slot);
  spans.push_back(attend);
  return size() - 1;
}

void PackedBatch::clear() {
  tokens.clear();
  positions.clear();
  slots.clear();
  spans.clear();
  logit_rows.clear();
}

void Decoder::forward(KVCache& cache, const int32_t* tokens, int64_t T, float* logits, bool all_logits) {
  forward_rows(cache, tokens, T, logits, all_logits ? LogitRows::All : LogitRows::Last);
}

void Decoder::forward_rows(KVCache& cache, const int32_t* tokens, int64_t T, float* logits, LogitRows want) {
  const int64_t pos0 = cache.length();
  TAIA_CHECK(T > 0, "[Decoder::forward] expected at least one token");
  TAIA_CHECK(pos0 + T <= cache.max_positions(), "[Decoder::forward] expected at most ", cache.max_positions(),
             " positions in the KV cache, got ", pos0 + T);
  const int64_t chunk = cache.rows_per_call();
  if (cache.has_rings() && T > chunk) {  // ring caches hold the windows of calls of at most `chunk` rows
    const int64_t V = model_.config.vocab_size;
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
      const int64_t n = std::min(chunk, T - t0);
      const LogitRows part = want == LogitRows::All ? LogitRows::All
                             : want == LogitRows::Last && t0 + n == T ? LogitRows::Last
                                                                      : LogitRows::None;
      forward_rows(cache, tokens + t0, n, want == LogitRows::All ? logits + t0 * V : logits, part);
    }
    return;
  }
  plain_.clear();
  for (int64_t t = 0; t < T; ++t) {
    KeySpans causal;
    causal.end[0] = pos0 + t + 1;
    plain_.add(tokens[t], pos0 + t, pos0 + t, causal);
  }
  if (want != LogitRows::None)
    for (int64_t t = want == LogitRows::All ? 0 : T - 1; t < T; ++t) plain_.logit_rows.push_back(t);
  forward_packed(cache, plain_, logits);
  cache.set_length(pos0 + T);
}

// Every row's slot, position and key spans inside the cache and the model, and the logit rows
// increasing. Returns whether the slots are consecutive (keys and values then go straight into
// the cache).
bool Decoder::check_packed_batch(const KVCache& cache, const PackedBatch& b) const {
  const ModelConfig& c = model_.config;
  const int64_t T = b.size();
  TAIA_CHECK(T > 0, "[Decoder::forward_packed] expected at least one token");
  TAIA_CHECK(int64_t(b.positions.size()) == T && int64_t(b.slots.size()) == T && int64_t(b.spans.size()) == T,
             "[Decoder::forward_packed] expected ", T, " positions, slots and spans");
  bool contiguous = true;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t slot = b.slots[size_t(t)];
    const KeySpans& sp = b.spans[size_t(t)];
    TAIA_CHECK(slot >= 0 && slot < cache.max_positions(), "[Decoder::forward_packed] row ", t, ": slot ", slot,
               " is outside the KV cache (", cache.max_positions(), " rows)");
    TAIA_CHECK(b.positions[size_t(t)] >= 0 && b.positions[size_t(t)] < c.max_position_embeddings,
               "[Decoder::forward_packed] row ", t, ": position ", b.positions[size_t(t)],
               " expected below max_position_embeddings = ", c.max_position_embeddings);
    for (int s = 0; s < 2; ++s)
      TAIA_CHECK(sp.begin[s] >= 0 && sp.begin[s] <= sp.end[s] && sp.end[s] <= cache.max_positions(),
                 "[Decoder::forward_packed] row ", t, ": key span [", sp.begin[s], ", ", sp.end[s],
                 ") is outside the KV cache");
    TAIA_CHECK(sp.size() > 0, "[Decoder::forward_packed] row ", t, " attends to nothing");
    contiguous = contiguous && slot == b.slots[0] + t;
  }
  for (size_t i = 0; i < b.logit_rows.size(); ++i) {
    const int64_t r = b.logit_rows[i], prev = i ? b.logit_rows[i - 1] : -1;
    TAIA_CHECK(r > prev && r < T, "[Decoder::forward_packed] logit rows expected increasing in 0..", T - 1, ", got ",
               r, " after ", prev);
  }
  return contiguous;
}

// The key spans of a layer: the batch's own, or under the layer's sliding window each span
// trimmed to the rows whose positions lie in the window of the query's position. The rows of a
// span hold consecutive increasing positions (how generation and the packed scorers fill the
// cache), so trimming the front is enough.
const KeySpans* Decoder::layer_spans(int64_t layer, const KVCache& cache, const PackedBatch& b) {
  const int64_t window = recipe_.layers[size_t(layer)].attention.window;  // the recipe's, as the training kernels'
  if (window == 0) return b.spans.data();
  const int64_t ring = cache.is_ring(layer) ? cache.layer_rows(layer) : 0;
  if (window_spans_for_ == window && ring_rows_for_ == ring) return window_spans_.data();
  window_spans_ = b.spans;
  for (int64_t t = 0; t < b.size(); ++t) {
    KeySpans& sp = window_spans_[size_t(t)];
    const int64_t first = window_start(b.positions[size_t(t)], window);
    for (int s = 0; s < 2; ++s)
      while (sp.begin[s] < sp.end[s] && cache.position(sp.begin[s]) < first) ++sp.begin[s];
    TAIA_CHECK(sp.size() > 0, "[Decoder::forward_packed] row ", t, " (position ", b.positions[size_t(t)],
               ") attends to no key inside its window of ", window);
  }
  if (ring > 0) map_spans_to_ring(window_spans_, b, ring);
  window_spans_for_ = window;
  ring_rows_for_ = ring;
  return window_spans_.data();
}

// Slots -> rows of a ring of `rows` rows: a row's one span of slots [begin, end) becomes one or
// two row ranges (wrapping at the end of the ring). Every slot the call reads or writes must
// have a row of its own: from the oldest slot read to the newest written, at most `rows` slots.
void Decoder::map_spans_to_ring(std::vector<KeySpans>& spans, const PackedBatch& b, int64_t rows) {
  int64_t oldest = b.slots[0], newest = b.slots[0];
  for (int64_t t = 0; t < b.size(); ++t) {
    KeySpans& sp = spans[size_t(t)];
    TAIA_CHECK(sp.begin[1] == sp.end[1], "[Decoder::forward_packed] row ", t, " attends to two spans of slots, "
               "which a ring KV cache cannot hold (make the cache with rows_per_call 0)");
    oldest = std::min(oldest, sp.begin[0]);
    newest = std::max(newest, b.slots[size_t(t)]);
    const int64_t first = sp.begin[0] % rows, n = sp.end[0] - sp.begin[0];
    sp.begin[0] = first;
    sp.end[0] = std::min(rows, first + n);
    sp.begin[1] = 0;
    sp.end[1] = first + n - sp.end[0];
  }
  TAIA_CHECK(newest - oldest < rows, "[Decoder::forward_packed] the call reads slot ", oldest, " and writes slot ",
             newest, ": more than the ", rows, " rows of a ring KV cache");
}

// The queries' and keys' rotation in a layer (recipe r), in place: q [T, H, hd], k [T, KV, hd].
void Decoder::rotate(const LayerRecipe& r, float* q, float* k, const int64_t* pos, int64_t T) {
  if (r.rotary.table == RotaryTable::None) return;
  const ModelConfig& c = model_.config;
  const float* inv_freq = r.rotary.table == RotaryTable::Local ? s_.inv_freq_local.data() : s_.inv_freq.data();
  float mscale = 1.0f;
  if (r.rotary.table == RotaryTable::Global) {
    mscale = c.rope_scaling.mscale();
    // LongRope: long factors when this call's positions pass the original context, as HF decides
    // per forward call (keys cached before keep the rotation they were written with, as in HF).
    if (!s_.inv_freq_long.empty() && c.rope_scaling.uses_long_factors(*std::max_element(pos, pos + T) + 1))
      inv_freq = s_.inv_freq_long.data();
  }
  const AttentionShape& a = r.attention;
  rope_forward(q, pos, T, a.n_heads, a.head_dim, inv_freq, mscale, r.rotary.dims);
  rope_forward(k, pos, T, a.n_kv_heads, a.head_dim, inv_freq, mscale, r.rotary.dims);
}

// One decoder layer on the T rows in s_.x (the residual stream, updated in place), the steps of
// its recipe in order.
void Decoder::layer_forward(int64_t l, KVCache& cache, const PackedBatch& b, bool contiguous) {
  const LayerRecipe& r = recipe_.layers[size_t(l)];
  const LayerWeights& L = model_.weights.layers[size_t(l)];
  const AttentionShape& a = r.attention;
  const int64_t T = b.size(), D = model_.config.hidden_size, I = model_.config.intermediate_size;
  const int64_t KV = a.n_kv_heads * a.head_dim;
  float* x = s_.x.data();
  float* xn = s_.xn.data();
  // Consecutive slots of an F32 cache go straight into it unless they wrap around a ring.
  const int64_t row0 = cache.row_of(l, b.slots[0]);
  contiguous = contiguous && row0 + T <= cache.layer_rows(l) && cache.dtype() == DType::F32;
  float* k_rows = contiguous ? cache.keys(l) + row0 * KV : s_.k.data();  // [T, KV]
  float* v_rows = contiguous ? cache.values(l) + row0 * KV : s_.v.data();
  DecodeProfile* p = profile_;  // each step's time and bytes read, when profiling
  {
    StepTimer t(p, DecodeStep::Norms);
    rmsnorm_forward(xn, x, L.attn_norm.ptr<const float>(), T, D, r.norm.eps, r.norm.weight_offset);
  }
  {
    StepTimer t(p, DecodeStep::Qkv, double(L.q.weight.nbytes() + L.k.weight.nbytes() + L.v.weight.nbytes()));
    project_shared(l, {Proj::Q, Proj::K, Proj::V}, {&L.q, &L.k, &L.v}, {s_.q.data(), k_rows, v_rows}, xn, T);
  }
  {
    StepTimer t(p, DecodeStep::Rotary);
    if (r.qk_norm) {  // per head: [T, H, hd] as T*H rows of hd
      rmsnorm_forward(s_.q.data(), s_.q.data(), L.q_norm.ptr<const float>(), T * a.n_heads, a.head_dim, r.norm.eps,
                      r.norm.weight_offset);
      rmsnorm_forward(k_rows, k_rows, L.k_norm.ptr<const float>(), T * a.n_kv_heads, a.head_dim, r.norm.eps,
                      r.norm.weight_offset);
    }
    rotate(r, s_.q.data(), k_rows, b.positions.data(), T);
  }
  if (!contiguous) {
    StepTimer t(p, DecodeStep::CacheWrite);
    for (int64_t i = 0; i < T; ++i)
      cache.store(l, cache.row_of(l, b.slots[size_t(i)]), k_rows + i * KV, v_rows + i * KV);
  }
  attend(l, cache, b);
  sublayer_output(l, r, Proj::O, L.o, L.attn_out_norm, s_.att.data(), T);
  {
    StepTimer t(p, DecodeStep::Norms);
    rmsnorm_forward(xn, x, L.ffn_norm.ptr<const float>(), T, D, r.norm.eps, r.norm.weight_offset);
  }
  {
    StepTimer t(p, DecodeStep::GateUp, double(L.gate.weight.nbytes() + L.up.weight.nbytes()));
    project_shared(l, {Proj::Gate, Proj::Up}, {&L.gate, &L.up}, {s_.gate.data(), s_.up.data()}, xn, T);
  }
  {
    StepTimer t(p, DecodeStep::Activation);
    glu_forward(r.activation, s_.gate.data(), s_.gate.data(), s_.up.data(), T * I);
  }
  if (ffn_observer_) ffn_observer_(l, s_.gate.data(), T, I);
  sublayer_output(l, r, Proj::Down, L.down, L.ffn_out_norm, s_.gate.data(), T);
}

// Attention of the T rows' queries (s_.q) over layer l's cache rows into s_.att. The spans carry
// the layer's window (layer_spans); the recipe's shape adds Gemma's scale and soft-cap.
void Decoder::attend(int64_t l, const KVCache& cache, const PackedBatch& b) {
  const KeySpans* spans = layer_spans(l, cache, b);
  const int64_t T = b.size();
  double bytes = 0.0;  // keys and values read
  if (profile_)
    for (int64_t t = 0; t < T; ++t) bytes += 2.0 * double(spans[t].size() * cache.row_bytes());
  StepTimer timer(profile_, DecodeStep::Attention, bytes);
  attention_forward_spans(s_.att.data(), s_.q.data(), cache.rows(l), spans, T, recipe_.layers[size_t(l)].attention);
}

// The last projection of a sub-layer (o or down) added to the residual stream s_.x: directly,
// or (output norms) through its norm first.
void Decoder::sublayer_output(int64_t l, const LayerRecipe& r, Proj p, const Linear& lin, const TensorView& out_norm,
                              const float* in, int64_t T) {
  const int64_t D = model_.config.hidden_size;
  StepTimer timer(profile_, p == Proj::O ? DecodeStep::AttnOut : DecodeStep::Down, double(lin.weight.nbytes()));
  if (!r.output_norms && !observer_) {
    project(l, p, lin, s_.x.data(), in, T, /*accumulate=*/true);
    return;
  }
  float* y = s_.block_out.data();
  project(l, p, lin, y, in, T, false);
  if (r.output_norms) rmsnorm_forward(y, y, out_norm.ptr<const float>(), T, D, r.norm.eps, r.norm.weight_offset);
  if (observer_) observer_(l, p, y, T);
  float* x = s_.x.data();
#pragma omp parallel for schedule(static) if (T * D > 65536)
  for (int64_t i = 0; i < T * D; ++i) x[i] += y[i];
}

void Decoder::forward_packed(KVCache& cache, const PackedBatch& b, float* logits) {
  const auto start = std::chrono::steady_clock::now();
  struct AddBusy {  // also on the way out of an exception
    std::chrono::steady_clock::time_point start;
    double* total;
    ~AddBusy() { *total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
  } add_busy{start, &busy_seconds_};
  const bool contiguous = check_packed_batch(cache, b);
  const ModelConfig& c = model_.config;
  const ModelWeights& w = model_.weights;
  const int64_t D = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  const int64_t T = b.size();
  s_.x.resize(size_t(T * D));
  s_.xn.resize(size_t(T * D));
  s_.q.resize(size_t(T * Q));
  s_.att.resize(size_t(T * Q));
  s_.gate.resize(size_t(T * I));
  s_.up.resize(size_t(T * I));
  if (recipe_.layers[0].output_norms || observer_) s_.block_out.resize(size_t(T * D));
  if (!contiguous || cache.has_rings() || cache.dtype() != DType::F32) {
    s_.k.resize(size_t(T * KV));
    s_.v.resize(size_t(T * KV));
  }
  for (int64_t t = 0; t < T; ++t) cache.set_position(b.slots[size_t(t)], b.positions[size_t(t)]);
  window_spans_for_ = ring_rows_for_ = 0;
  float* x = s_.x.data();
  {
    StepTimer t(profile_, DecodeStep::Embed);
    embed_rows(x, w.embed, b.tokens.data(), T, D);
    if (recipe_.embedding_scale != 1.0f)  // Gemma: times sqrt(hidden) rounded to F32, as HF does
      for (int64_t i = 0; i < T * D; ++i) x[i] *= recipe_.embedding_scale;
  }
  for (int64_t l = 0; l < c.num_layers; ++l) layer_forward(l, cache, b, contiguous);
  const int64_t rows = int64_t(b.logit_rows.size());
  if (rows == 0) return;
  // Gather the wanted rows (consecutive for plain forward calls) before the final norm and head.
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t r = b.logit_rows[size_t(i)];
    if (r != i) std::memmove(x + i * D, x + r * D, size_t(D) * sizeof(float));
  }
  StepTimer t(profile_, DecodeStep::LmHead, double(w.lm_head.nbytes()));
  rmsnorm_forward(s_.xn.data(), x, w.final_norm.ptr<const float>(), rows, D, recipe_.norm.eps,
                  recipe_.norm.weight_offset);
  linear_forward(logits, s_.xn.data(), w.lm_head, nullptr, rows, false, compute_);
  if (recipe_.final_softcap > 0) softcap_forward<float>(logits, rows * c.vocab_size, recipe_.final_softcap);
}

}  // namespace taia
