#include "io/gguf.h"

#include "core/ggml_quants.h"

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf_keys.h"

namespace taia {
namespace {

struct TypeLayout {
  uint32_t type;
  const char* name;
  uint32_t block_elems;
  uint32_t block_bytes;
};

constexpr TypeLayout kLayouts[] = {
    {0, "F32", 1, 4},      {1, "F16", 1, 2},      {2, "Q4_0", 32, 18},   {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},   {7, "Q5_1", 32, 24},   {8, "Q8_0", 32, 34},   {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84}, {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292}, {24, "I8", 1, 1},     {25, "I16", 1, 2},
    {26, "I32", 1, 4},     {27, "I64", 1, 8},     {28, "F64", 1, 8},     {30, "BF16", 1, 2},
};

const TypeLayout* layout_of(uint32_t type) {
  for (const auto& l : kLayouts)
    if (l.type == type) return &l;
  return nullptr;
}

// Max nesting of arrays inside arrays; real files use none.
constexpr int kMaxArrayDepth = 4;
// Max array elements in all metadata together. Each becomes a GgufValue (~100 bytes) however
// small it is in the file, so a file of N bytes could otherwise ask for ~100 N bytes of memory.
// The largest real vocabularies hold ~260k tokens x 3 arrays (tokens, scores, types/merges).
constexpr uint64_t kMaxArrayElements = uint64_t(1) << 23;

class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : d_(data), n_(size), path_(path) {}
  size_t pos() const { return p_; }
  size_t remaining() const { return n_ - p_; }
  uint64_t array_elements = 0;  // metadata array elements read so far

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, d_ + p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    const size_t at = p_;
    uint64_t len = read<uint64_t>(what);
    TAIA_CHECK(len <= remaining(), path_, ": at byte ", at, ": ", what, " string length ", len,
               " runs past the end of the file (", remaining(), " bytes left)");
    std::string s(reinterpret_cast<const char*>(d_ + p_), size_t(len));
    p_ += size_t(len);
    return s;
  }
  void need(size_t bytes, const char* what) const {
    TAIA_CHECK(bytes <= remaining(), path_, ": at byte ", p_, ": expected ", bytes, " more bytes for ", what,
               ", but the file ends (", remaining(), " bytes left)");
  }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t p_ = 0;
  const std::string& path_;
};

size_t min_value_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) { return t <= 12; }

GgufValue read_value(Cursor& c, GgufType type, const std::string& key, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::UINT8: v.u = c.read<uint8_t>("u8 value"); break;
    case GgufType::INT8: v.i = c.read<int8_t>("i8 value"); break;
    case GgufType::UINT16: v.u = c.read<uint16_t>("u16 value"); break;
    case GgufType::INT16: v.i = c.read<int16_t>("i16 value"); break;
    case GgufType::UINT32: v.u = c.read<uint32_t>("u32 value"); break;
    case GgufType::INT32: v.i = c.read<int32_t>("i32 value"); break;
    case GgufType::UINT64: v.u = c.read<uint64_t>("u64 value"); break;
    case GgufType::INT64: v.i = c.read<int64_t>("i64 value"); break;
    case GgufType::FLOAT32: v.f = c.read<float>("f32 value"); break;
    case GgufType::FLOAT64: v.f = c.read<double>("f64 value"); break;
    case GgufType::BOOL: {
      const size_t at = c.pos();
      uint8_t b = c.read<uint8_t>("bool value");
      TAIA_CHECK(b <= 1, c.path(), ": at byte ", at, ": key '", key, "' bool expected 0 or 1, got ", int(b));
      v.u = b;
      break;
    }
    case GgufType::STRING: v.s = c.read_string("metadata value"); break;
    case GgufType::ARRAY: {
      const size_t at = c.pos();
      TAIA_CHECK(depth < kMaxArrayDepth, c.path(), ": at byte ", at, ": key '", key, "' nests arrays deeper than ",
                 kMaxArrayDepth);
      uint32_t et = c.read<uint32_t>("array element type");
      TAIA_CHECK(valid_type(et), c.path(), ": at byte ", at, ": key '", key,
                 "' array element type expected 0..12, got ", et);
      uint64_t count = c.read<uint64_t>("array length");
      v.elem_type = GgufType(et);
      TAIA_CHECK(count <= c.remaining() / min_value_size(v.elem_type), c.path(), ": at byte ", at, ": key '", key,
                 "' array of ", count, " elements cannot fit in the ", c.remaining(), " bytes left");
      c.array_elements += count;
      TAIA_CHECK(c.array_elements <= kMaxArrayElements, c.path(), ": at byte ", at, ": key '", key, "' brings the ",
                 "metadata to ", c.array_elements, " array elements, more than the limit of ", kMaxArrayElements);
      v.arr.reserve(size_t(count));
      for (uint64_t k = 0; k < count; ++k) v.arr.push_back(read_value(c, v.elem_type, key, depth + 1));
      break;
    }
  }
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64",
                                "i64", "f64"};
  return uint32_t(t) <= 12 ? names[uint32_t(t)] : "?";
}

const char* ggml_type_name(uint32_t type) {
  const TypeLayout* l = layout_of(type);
  return l ? l->name : "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64: return true;
    default: return false;
  }
}

int64_t GgufValue::as_int() const {
  switch (type) {
    case GgufType::INT8: case GgufType::INT16: case GgufType::INT32: case GgufType::INT64: return i;
    case GgufType::UINT8: case GgufType::UINT16: case GgufType::UINT32: case GgufType::UINT64:
      TAIA_CHECK(u <= uint64_t(INT64_MAX), "[GgufValue::as_int] value ", u, " does not fit in int64");
      return int64_t(u);
    default: fail("[GgufValue::as_int] expected an integer, got ", gguf_type_name(type));
  }
}

double GgufValue::as_double() const {
  if (is_float()) return f;
  return double(as_int());
}

std::string GgufValue::to_string(size_t max_items) const {
  switch (type) {
    case GgufType::STRING: return "\"" + s + "\"";
    case GgufType::BOOL: return u ? "true" : "false";
    case GgufType::FLOAT32: case GgufType::FLOAT64: return str_cat(f);
    case GgufType::ARRAY: {
      std::string out = "[";
      for (size_t k = 0; k < arr.size() && k < max_items; ++k) out += (k ? ", " : "") + arr[k].to_string(max_items);
      if (arr.size() > max_items) out += str_cat(", ... (", arr.size(), " items)");
      return out + "]";
    }
    default: return is_integer() ? str_cat(as_int()) : "?";
  }
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensor::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

GgufFile::GgufFile(const std::string& path, MapAccess access) : file_(std::make_shared<MappedFile>(path, access)) {
  Cursor c(file_->data(), file_->size(), path);
  c.need(4, "the GGUF magic");
  TAIA_CHECK(std::memcmp(file_->data(), "GGUF", 4) == 0, path, ": expected the magic 'GGUF' at byte 0");
  c.read<uint32_t>("magic");
  version_ = c.read<uint32_t>("version");
  TAIA_CHECK(version_ == 2 || version_ == 3, path, ": GGUF version expected 2 or 3, got ", version_);
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each metadata pair takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8+4+8+4+8.
  TAIA_CHECK(n_kv <= c.remaining() / 13, path, ": metadata count ", n_kv, " cannot fit in a file of ",
             file_->size(), " bytes");
  TAIA_CHECK(n_tensors <= c.remaining() / 32, path, ": tensor count ", n_tensors, " cannot fit in a file of ",
             file_->size(), " bytes");
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key");
    const size_t at = c.pos();
    uint32_t type = c.read<uint32_t>("metadata value type");
    TAIA_CHECK(valid_type(type), path, ": at byte ", at, ": key '", key, "' value type expected 0..12, got ", type);
    TAIA_CHECK(!metadata_.count(key), path, ": at byte ", at, ": duplicate metadata key '", key, "'");
    metadata_[key] = read_value(c, GgufType(type), key, 0);
  }
  if (const GgufValue* a = find(gguf_key(GgufKey::GeneralAlignment))) {
    TAIA_CHECK(a->is_integer(), path, ": general.alignment expected an integer, got ", gguf_type_name(a->type));
    const int64_t al = a->as_int();
    TAIA_CHECK(al > 0 && al <= (1 << 20) && (al & (al - 1)) == 0, path,
               ": general.alignment expected a power of two, got ", al);
    alignment_ = uint64_t(al);
  }
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    const size_t at = c.pos();
    t.name = c.read_string("tensor name");
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    TAIA_CHECK(n_dims >= 1 && n_dims <= 4, path, ": at byte ", at, ": tensor '", t.name,
               "' dimension count expected 1..4, got ", n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = c.read<uint64_t>("tensor dimension");
      TAIA_CHECK(ne >= 1 && ne <= (uint64_t(1) << 40), path, ": at byte ", at, ": tensor '", t.name, "' dimension ",
                 d, " expected 1..2^40, got ", ne);
      TAIA_CHECK(numel <= (uint64_t(1) << 50) / ne, path, ": tensor '", t.name, "' element count is absurdly large");
      numel *= ne;
      t.ne.push_back(int64_t(ne));
    }
    t.type = c.read<uint32_t>("tensor type");
    const TypeLayout* l = layout_of(t.type);
    TAIA_CHECK(l != nullptr, path, ": tensor '", t.name, "' has unknown ggml type ", t.type);
    TAIA_CHECK(t.ne[0] % l->block_elems == 0, path, ": tensor '", t.name, "' of type ", l->name,
               " expected its first dimension to be a multiple of ", l->block_elems, ", got ", t.ne[0]);
    t.nbytes = numel / l->block_elems * l->block_bytes;
    t.offset = c.read<uint64_t>("tensor data offset");
    TAIA_CHECK(t.offset % alignment_ == 0, path, ": tensor '", t.name, "' offset ", t.offset,
               " is not a multiple of the alignment ", alignment_);
    TAIA_CHECK(!index_.count(t.name), path, ": duplicate tensor name '", t.name, "'");
    index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  const uint64_t data_start = (uint64_t(c.pos()) + alignment_ - 1) / alignment_ * alignment_;
  TAIA_CHECK(data_start <= file_->size() || tensors_.empty(), path, ": data section starts at byte ", data_start,
             ", past the end of the file (", file_->size(), " bytes)");
  const uint64_t data_size = data_start <= file_->size() ? file_->size() - data_start : 0;
  for (auto& t : tensors_) {
    TAIA_CHECK(t.offset <= data_size && t.nbytes <= data_size - t.offset, path, ": tensor '", t.name, "' bytes [",
               t.offset, ", ", t.offset + t.nbytes, ") lie outside the data section (", data_size, " bytes)");
    t.data = file_->data() + data_start + t.offset;
  }
  std::vector<const GgufTensor*> sorted;
  for (const auto& t : tensors_) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < sorted.size(); ++k)
    TAIA_CHECK(sorted[k]->offset >= sorted[k - 1]->offset + sorted[k - 1]->nbytes, path, ": tensor '",
               sorted[k]->name, "' overlaps tensor '", sorted[k - 1]->name, "'");
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  TAIA_CHECK(v != nullptr, path(), ": missing metadata key '", key, "'");
  TAIA_CHECK(v->type == GgufType::STRING, path(), ": metadata '", key, "' expected a string, got ",
             gguf_type_name(v->type));
  return v->s;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  TAIA_CHECK(v != nullptr, path(), ": missing metadata key '", key, "'");
  TAIA_CHECK(v->is_integer(), path(), ": metadata '", key, "' expected an integer, got ", gguf_type_name(v->type));
  return v->as_int();
}

int64_t GgufFile::get_int_or(const std::string& key, int64_t fallback) const {
  return find(key) ? get_int(key) : fallback;
}

double GgufFile::get_float_or(const std::string& key, double fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  TAIA_CHECK(v->is_float() || v->is_integer(), path(), ": metadata '", key, "' expected a number, got ",
             gguf_type_name(v->type));
  return v->as_double();
}

bool gguf_type_supported(uint32_t type) { return dtype_of_ggml_type(type).has_value(); }

const char* gguf_supported_types() { return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K"; }

DType gguf_tensor_dtype(const GgufTensor& t, const std::string& path) {
  const auto dtype = dtype_of_ggml_type(t.type);
  TAIA_CHECK(dtype.has_value(), path, ": tensor '", t.name, "' has ggml type ", ggml_type_name(t.type),
             ", which taia does not load (supported: ", gguf_supported_types(), ")");
  return *dtype;
}

void gguf_dequantize(const GgufTensor& t, float* out, const std::string& path) {
  convert_to_f32(gguf_tensor_dtype(t, path), t.data, out, size_t(t.numel()));
}

}  // namespace taia
