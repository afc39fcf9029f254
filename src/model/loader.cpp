#include "model/loader.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "core/error.h"
#include "core/ggml_quants.h"
#include "core/mmap_file.h"
#include "core/threading.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "io/gguf_keys.h"

namespace taia {

// Phi-3: q, k, v and gate, up as row views of their fused tensors.
static void set_fused_views(Model& model) {
  const ModelConfig& c = model.config;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = model.weights.layers[size_t(l)];
    for (int i = 0; i < kNumProj; ++i) {
      const Proj p = Proj(i);
      if (!fused_group(p)) continue;
      const TensorView& fused = module_linear(L, module_slot(p, ProjLayout::Fused)).weight;
      const auto [in, out] = proj_shape(c, p);
      char* rows = static_cast<char*>(fused.data) + size_t(proj_row_offset(c, p)) * dtype_bytes(fused.dtype, in);
      layer_proj(L, p).weight = TensorView(proj_tensor_name(l, p, "weight"), fused.dtype, {out, in}, rows);
    }
  }
}

// The type a tensor is kept in: as `kept` says (GGUF block types), else the linear dtype for
// the weights that feed matrix products and F32 for norms and biases.
static DType slot_dtype(const ExpectedTensor& e, DType linear_dtype, const std::map<std::string, DType>& kept) {
  const auto it = kept.find(e.name);
  return it != kept.end() ? it->second : e.is_linear ? linear_dtype : DType::F32;
}

void allocate_model(Model& model, DType linear_dtype, const std::map<std::string, DType>& kept,
                    const std::map<std::string, void*>& in_place) {
  TAIA_CHECK(linear_dtype == DType::F32 || linear_dtype == DType::BF16 || linear_dtype == DType::F16,
             "[allocate_model] expected linear dtype F32, BF16 or F16, got ", dtype_name(linear_dtype));
  model.linear_dtype = linear_dtype;
  const ModelConfig& c = model.config;
  model.weights.layers.assign(size_t(c.num_layers), LayerWeights{});
  const auto expected = expected_tensors(c);
  size_t bytes = 0;
  for (const ExpectedTensor& e : expected)
    if (!in_place.count(e.name))
      bytes += Arena::aligned(dtype_bytes(slot_dtype(e, linear_dtype, kept), checked_numel(e.shape, e.name)));
  model.arena.reserve(bytes);
  model.mapped_bytes = 0;
  for (const ExpectedTensor& e : expected) {
    const DType dt = slot_dtype(e, linear_dtype, kept);
    TensorView* v = model.find(e.name);
    TAIA_CHECK(v != nullptr, "[allocate_model] no slot for tensor '", e.name, "'");
    const size_t n = dtype_bytes(dt, checked_numel(e.shape, e.name));
    const auto it = in_place.find(e.name);
    if (it != in_place.end()) model.mapped_bytes += n;
    *v = TensorView(e.name, dt, e.shape, it != in_place.end() ? it->second : model.arena.take(n));
  }
  if (c.tie_word_embeddings) {
    model.weights.lm_head = model.weights.embed;
    model.weights.lm_head.name = kLmHeadTensor;
  }
  if (c.fused_proj) set_fused_views(model);
}

void unpermute_qk_rows(float* rows, int64_t n_heads, int64_t head_dim, int64_t row_len) {
  unpermute_qk_row_bytes(rows, n_heads, head_dim, size_t(row_len) * sizeof(float));
}

void unpermute_qk_row_bytes(void* rows, int64_t n_heads, int64_t head_dim, size_t row_bytes) {
  const int64_t half = head_dim / 2;
  std::vector<char> tmp(size_t(head_dim) * row_bytes);
  for (int64_t h = 0; h < n_heads; ++h) {
    char* head = static_cast<char*>(rows) + size_t(h * head_dim) * row_bytes;
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(&tmp[size_t(j * half + i) * row_bytes], head + size_t(2 * i + j) * row_bytes, row_bytes);
    std::memcpy(head, tmp.data(), tmp.size());
  }
}

namespace {

// Gemma 2 and 3 as llama.cpp's converter writes them. The file has no query_pre_attn_scalar:
// like llama.cpp, the 27B models (Gemma 2: 46 layers, Gemma 3: 62) scale by 1/sqrt(hidden /
// heads), the others by 1/sqrt(head_dim), which is what their configs say. Gemma 3's file has
// no layer pattern or local RoPE base either: llama.cpp fixes them at 6 and 10000, as every
// Gemma 3 config has them.
void read_gemma_gguf(const GgufFile& g, const std::string& arch, ModelConfig& c) {
  const bool gemma2 = c.arch == Arch::Gemma2;
  c.attn_softcap = g.get_float_or(gguf_key(GgufKey::AttnLogitSoftcap, arch), 0.0);
  c.final_softcap = g.get_float_or(gguf_key(GgufKey::FinalLogitSoftcap, arch), 0.0);
  c.sliding_window = g.get_int_or(gguf_key(GgufKey::SlidingWindow, arch), 0);
  c.sliding_window_pattern = gemma2 ? 2 : 6;  // HF's rule: layer l windowed iff (l + 1) % P != 0
  const bool is_27b = c.num_layers == (gemma2 ? 46 : 62);
  c.query_pre_attn_scalar = is_27b ? double(c.hidden_size / c.num_heads) : double(c.head_dim);
  if (!gemma2) c.rope_local_theta = 10000.0;
}

// Phi-3 as llama.cpp's converter writes it: a window on every layer (0: none), the rotated
// channels per head (Phi-4-mini: 96 of 128), and for the LongRope models the factors as the
// tensors rope_factors_short / rope_factors_long with the attention factor and the original
// context length as metadata.
void read_phi3_gguf(const GgufFile& g, const std::string& arch, ModelConfig& c) {
  c.sliding_window = g.get_int_or(gguf_key(GgufKey::SlidingWindow, arch), 0);
  const int64_t rot = g.get_int_or(gguf_key(GgufKey::RopeDimensionCount, arch), c.head_dim);
  TAIA_CHECK(rot >= 2 && rot <= c.head_dim && rot % 2 == 0, g.path(), ": ", gguf_key(GgufKey::RopeDimensionCount, arch), " expected an even ",
             "number in 2..", c.head_dim, " (head_dim), got ", rot);
  c.partial_rotary_factor = double(rot) / double(c.head_dim);
  TAIA_CHECK(c.rotary_dims() == rot, g.path(), ": ", gguf_key(GgufKey::RopeDimensionCount, arch), " ", rot, " of head_dim ", c.head_dim,
             " has no partial_rotary_factor that HF's int(head_dim * factor) maps back to it");
  const GgufTensor* shortf = g.find_tensor("rope_factors_short.weight");
  const GgufTensor* longf = g.find_tensor("rope_factors_long.weight");
  if (!shortf && !longf) return;
  TAIA_CHECK(shortf && longf, g.path(), ": expected both rope_factors_short.weight and rope_factors_long.weight");
  RopeScaling& rs = c.rope_scaling;
  rs.type = RopeScaling::Type::LongRope;
  for (auto [t, dst] : {std::pair{shortf, &rs.short_factor}, std::pair{longf, &rs.long_factor}}) {
    TAIA_CHECK(t->numel() == rot / 2, g.path(), ": ", t->name, " expected ", rot / 2, " elements (",
               gguf_key(GgufKey::RopeDimensionCount, arch), " / 2), got ", t->numel());
    dst->resize(size_t(t->numel()));
    gguf_dequantize(*t, dst->data(), g.path());
  }
  rs.original_max_position_embeddings = g.get_int(gguf_key(GgufKey::RopeScalingOriginalContext, arch));
  rs.attention_factor = float(g.get_float_or(gguf_key(GgufKey::RopeScalingAttnFactor, arch), 1.0));
}

}  // namespace

ModelConfig config_from_gguf(const GgufFile& g) {
  const std::string arch = g.get_string(gguf_key(GgufKey::GeneralArchitecture));
  ModelConfig c;
  c.arch = arch_from_gguf(arch, g.path());
  apply_arch_layer(c);
  c.hidden_size = g.get_int(gguf_key(GgufKey::EmbeddingLength, arch));
  c.intermediate_size = g.get_int(gguf_key(GgufKey::FeedForwardLength, arch));
  c.num_layers = g.get_int(gguf_key(GgufKey::BlockCount, arch));
  c.num_heads = g.get_int(gguf_key(GgufKey::HeadCount, arch));
  c.num_kv_heads = g.get_int_or(gguf_key(GgufKey::HeadCountKv, arch), c.num_heads);
  TAIA_CHECK(c.num_heads > 0, g.path(), ": ", gguf_key(GgufKey::HeadCount, arch), " expected > 0, got ", c.num_heads);
  c.head_dim = g.get_int_or(gguf_key(GgufKey::KeyLength, arch), c.hidden_size / c.num_heads);
  c.rms_norm_eps = g.get_float_or(gguf_key(GgufKey::RmsNormEpsilon, arch), 1e-5);
  c.rope_theta = g.get_float_or(gguf_key(GgufKey::RopeFreqBase, arch), 10000.0);
  c.max_position_embeddings = g.get_int_or(gguf_key(GgufKey::ContextLength, arch), 2048);
  if (const GgufValue* st = g.find(gguf_key(GgufKey::RopeScalingType, arch))) {
    TAIA_CHECK(st->type == GgufType::STRING, g.path(), ": ", gguf_key(GgufKey::RopeScalingType, arch), " expected a string");
    if (st->s == "linear") {
      c.rope_scaling.type = RopeScaling::Type::Linear;
      c.rope_scaling.factor = float(g.get_float_or(gguf_key(GgufKey::RopeScalingFactor, arch), 1.0));
    } else {
      TAIA_CHECK(st->s == "none", g.path(), ": ", gguf_key(GgufKey::RopeScalingType, arch), " expected none or linear, got '", st->s, "'");
    }
  }
  const std::string embd_name = gguf_tensor_name(kEmbedTensor, c.norm_layout());
  const GgufTensor* embd = g.find_tensor(embd_name);
  TAIA_CHECK(embd != nullptr && embd->ne.size() == 2, g.path(), ": expected a 2-D tensor '", embd_name, "'");
  c.vocab_size = embd->ne[1];
  c.tie_word_embeddings = g.find_tensor(gguf_tensor_name(kLmHeadTensor, c.norm_layout())) == nullptr;
  const ProjLayout pl = c.proj_layout();
  c.qkv_bias = g.find_tensor(gguf_proj_tensor_name(0, Proj::Q, ".bias", pl)) != nullptr;
  c.o_bias = g.find_tensor(gguf_proj_tensor_name(0, Proj::O, ".bias", pl)) != nullptr;
  c.mlp_bias = g.find_tensor(gguf_proj_tensor_name(0, Proj::Down, ".bias", pl)) != nullptr;
  if (c.arch == Arch::Gemma2 || c.arch == Arch::Gemma3) read_gemma_gguf(g, arch, c);
  if (c.arch == Arch::Phi3) read_phi3_gguf(g, arch, c);
  if (g.find(gguf_key(GgufKey::TokenizerBosId))) c.bos_token_ids = {g.get_int(gguf_key(GgufKey::TokenizerBosId))};
  if (g.find(gguf_key(GgufKey::TokenizerEosId))) c.eos_token_ids = {g.get_int(gguf_key(GgufKey::TokenizerEosId))};
  c.validate(g.path());
  return c;
}

namespace {

// The weights' storage when none is asked for: as the file stores them (F32, BF16, F16).
DType default_linear_dtype(DType stored) { return stored == DType::BF16 || stored == DType::F16 ? stored : DType::F32; }

// memcpy from a file mapping in 64 MiB slices, each slice's pages dropped once copied, so that a
// large tensor (a 0.5 GB embedding) is never resident twice.
void copy_dropping(void* dst, const void* src, size_t n) {
  constexpr size_t kSlice = size_t(64) << 20;
  for (size_t off = 0; off < n; off += kSlice) {
    const size_t len = std::min(kSlice, n - off);
    std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, len);
    drop_mapped_pages(static_cast<const char*>(src) + off, len);
  }
}

// A block-quantized GGUF weight into its slot as stored: its bytes, with LLaMA's Q/K rows
// un-permuted whole when `reorder` (a row of a quantized matrix is a run of blocks).
void copy_quantized(TensorView& dst, const GgufTensor& t, const ExpectedTensor& e, const ModelConfig& c, bool reorder) {
  TAIA_CHECK(dst.nbytes() == t.nbytes, "[load_gguf] tensor '", t.name, "' holds ", t.nbytes, " bytes, expected ",
             dst.nbytes());
  copy_dropping(dst.data, t.data, dst.nbytes());
  if (!reorder || e.shape.size() != 2) return;
  const size_t row_bytes = dtype_bytes(dst.dtype, e.shape[1]);
  const bool is_q = proj_of_tensor(e.name) == Proj::Q;
  unpermute_qk_row_bytes(dst.data, is_q ? c.num_heads : c.num_kv_heads, c.head_dim, row_bytes);
}

// Copies a source tensor into its slot, converting through F32 when the types differ.
void fill_from_f32(TensorView& dst, const std::vector<float>& values) {
  convert_from_f32(values.data(), dst.dtype, dst.data, values.size());
}

void load_hf(Model& model, const std::string& dir, const LoadOptions& options) {
  const std::string config_path = dir + "/config.json";
  TAIA_CHECK(file_exists(config_path), dir, ": expected an HF model folder with config.json");
  model.config = config_from_hf_json(parse_json_file(config_path), config_path);
  SafetensorsCollection st(dir);
  const auto expected = expected_tensors(model.config);
  // The dtype of the first linear weight decides the storage of all of them.
  const SafetensorsTensor* first = st.find(proj_tensor_name(0, Proj::Q, "weight", model.config.proj_layout()));
  DType stored = first ? first->dtype : DType::F32;
  // Every tensor present with its shape before anything is allocated: the sizes a config.json
  // asks for are then backed by bytes in the files (whose offsets the reader validated).
  for (const ExpectedTensor& e : expected) {
    const SafetensorsTensor* t = st.find(e.name);
    TAIA_CHECK(t != nullptr, st.describe_location(e.name), ": missing tensor '", e.name, "' required by ",
               config_path);
    if (t->shape != e.shape) {
      TensorView want("", t->dtype, e.shape, nullptr);
      fail(st.describe_location(e.name), ": tensor '", e.name, "' expected shape ", want.shape_string(), ", got ",
           t->view().shape_string());
    }
  }
  allocate_model(model, options.linear_dtype.value_or(default_linear_dtype(stored)));
  for (const ExpectedTensor& e : expected) {
    const SafetensorsTensor* t = st.find(e.name);
    TensorView& dst = *model.find(e.name);
    if (t->dtype == dst.dtype) {
      copy_dropping(dst.data, t->data, dst.nbytes());
    } else {
      std::vector<float> tmp(size_t(dst.numel()));
      convert_to_f32(t->dtype, t->data, tmp.data(), tmp.size());
      fill_from_f32(dst, tmp);
      drop_mapped_pages(t->data, size_t(t->end - t->begin));  // converted: the file's pages may go
    }
  }
}

// A GGUF tensor through F32 into its slot: LLaMA's Q/K rows un-permuted (reorder), Gemma's
// stored 1 + weight turned back into HF's weight (plus_one), converted to the slot's type.
void load_converted(TensorView& dst, const GgufTensor& t, const ExpectedTensor& e, const ModelConfig& c, bool reorder,
                    bool plus_one, const std::string& path) {
  std::vector<float> tmp(size_t(t.numel()));
  gguf_dequantize(t, tmp.data(), path);
  if (reorder) {
    const int64_t row_len = e.shape.size() == 2 ? e.shape[1] : 1;
    unpermute_qk_rows(tmp.data(), proj_of_tensor(e.name) == Proj::Q ? c.num_heads : c.num_kv_heads, c.head_dim,
                      row_len);
  }
  if (plus_one)
    for (float& v : tmp) v -= 1.0f;  // llama.cpp stored 1 + weight; taia keeps HF's weight
  fill_from_f32(dst, tmp);
  drop_mapped_pages(t.data, t.nbytes);  // converted: the file's pages may go (the copies drop as they go)
}

// Where one expected tensor comes from in a GGUF file and what loading it must change.
struct GgufSource {
  const GgufTensor* tensor;
  DType stored;
  bool reorder;   // LLaMA's Q/K rows, permuted by the converter
  bool plus_one;  // Gemma's norms, stored as 1 + weight
};

GgufSource gguf_source(const GgufFile& g, const ModelConfig& c, const ExpectedTensor& e) {
  const std::string gname = gguf_tensor_name(e.name, c.norm_layout());
  const GgufTensor* t = g.find_tensor(gname);
  TAIA_CHECK(t != nullptr, g.path(), ": missing tensor '", gname, "' (", e.name, ")");
  if (t->shape() != e.shape) {
    TensorView want("", DType::F32, e.shape, nullptr), got("", DType::F32, t->shape(), nullptr);
    fail(g.path(), ": tensor '", gname, "' expected shape ", want.shape_string(), " (reversed ggml order), got ",
         got.shape_string());
  }
  const auto proj = proj_of_tensor(e.name);
  return {t, gguf_tensor_dtype(*t, g.path()),
          arch_profile(c.arch).gguf_permutes_qk && (proj == Proj::Q || proj == Proj::K),
          arch_profile(c.arch).gguf_norms_plus_one && is_norm_tensor(e)};
}

// Block-quantized weights stay quantized unless a storage type was asked for (linear_dtype for
// every weight, block_dtype for the quantized ones).
std::map<std::string, DType> gguf_kept_types(const std::vector<ExpectedTensor>& expected,
                                             const std::vector<GgufSource>& sources, const LoadOptions& options) {
  std::map<std::string, DType> kept;
  for (size_t i = 0; i < expected.size(); ++i)
    if (expected[i].is_linear && is_block_dtype(sources[i].stored) && !options.linear_dtype)
      kept[expected[i].name] = options.block_dtype.value_or(sources[i].stored);
  return kept;
}

// GGUF tensor data is aligned to 32 bytes by default (general.alignment); a file that aligns
// less has its tensors copied, so that the kernels always see element-aligned rows.
constexpr uintptr_t kInPlaceAlignment = 32;

void load_gguf(Model& model, const std::string& path, const LoadOptions& options) {
  GgufFile g(path, MapAccess::CopyOnWrite);
  model.config = config_from_gguf(g);
  const ModelConfig& c = model.config;
  const auto expected = expected_tensors(c);
  std::vector<GgufSource> sources;  // all present and shaped before anything is allocated
  for (const ExpectedTensor& e : expected) sources.push_back(gguf_source(g, c, e));
  const GgufTensor* first = g.find_tensor(gguf_proj_tensor_name(0, Proj::Q, ".weight", c.proj_layout()));
  const DType stored = first ? gguf_tensor_dtype(*first, path) : DType::F32;
  const DType linear_dtype = options.linear_dtype.value_or(default_linear_dtype(stored));
  const std::map<std::string, DType> kept = gguf_kept_types(expected, sources, options);
  // A tensor the file stores as it is kept is used in place, from the copy-on-write mapping (no
  // copy and no load time, as llama.cpp does; a write, e.g. a merged adapter, copies its pages);
  // the others are converted into the arena, their file pages dropped.
  std::map<std::string, void*> in_place;
  for (size_t i = 0; i < expected.size(); ++i) {
    const GgufSource& src = sources[i];
    if (!options.copy_weights && src.stored == slot_dtype(expected[i], linear_dtype, kept) && !src.reorder &&
        !src.plus_one &&
        reinterpret_cast<uintptr_t>(src.tensor->data) % kInPlaceAlignment == 0)
      in_place[expected[i].name] = g.mapping()->writable(src.tensor->data);
  }
  allocate_model(model, linear_dtype, kept, in_place);
  if (!in_place.empty()) model.mapping = g.mapping();
  for (size_t i = 0; i < expected.size(); ++i) {
    const ExpectedTensor& e = expected[i];
    const GgufSource& src = sources[i];
    TensorView& dst = *model.find(e.name);
    if (in_place.count(e.name)) continue;
    if (is_block_dtype(dst.dtype))
      copy_quantized(dst, *src.tensor, e, c, src.reorder);
    else if (src.stored == dst.dtype && !src.reorder && !src.plus_one)
      copy_dropping(dst.data, src.tensor->data, dst.nbytes());  // stored as kept but not aligned
    else
      load_converted(dst, *src.tensor, e, c, src.reorder, src.plus_one, path);
  }
  if (const GgufTensor* rf = g.find_tensor(kGgufRopeFreqsTensor)) {
    TAIA_CHECK(rf->numel() == c.head_dim / 2, path, ": ", kGgufRopeFreqsTensor, " expected ", c.head_dim / 2,
               " elements, got ", rf->numel());
    model.rope_freq_factors.resize(size_t(rf->numel()));
    gguf_dequantize(*rf, model.rope_freq_factors.data(), path);
  }
}

bool looks_like_gguf(const std::string& path) {
  MappedFile f(path);
  return f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0;
}

}  // namespace

bool has_quantized_weights(const std::string& path) {
  if (is_directory(path) || !file_exists(path) || !looks_like_gguf(path)) return false;
  GgufFile g(path);
  for (const GgufTensor& t : g.tensors())
    if (const auto d = dtype_of_ggml_type(t.type); d && is_block_dtype(*d)) return true;
  return false;
}

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options) {
  auto model = std::make_unique<Model>();
  model->source_path = path;
  if (is_directory(path)) {
    model->source_format = "hf";
    load_hf(*model, path, options);
  } else {
    TAIA_CHECK(file_exists(path), path, ": no such file or folder");
    TAIA_CHECK(looks_like_gguf(path), path,
               ": expected a GGUF file (magic 'GGUF') or an HF model folder with config.json");
    model->source_format = "gguf";
    load_gguf(*model, path, options);
  }
  return_free_heap();  // the parsed metadata and conversion buffers are gone
  return model;
}

}  // namespace taia
