#include "io/gguf_writer.h"

#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/ggml_quants.h"

namespace taia {
namespace {
constexpr uint64_t kAlignment = 32;
template <typename T>
void append(std::vector<uint8_t>& out, const T& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}
}  // namespace

void GgufWriter::put_string(const std::string& s) {
  append(meta_, uint64_t(s.size()));
  meta_.insert(meta_.end(), s.begin(), s.end());
}

void GgufWriter::key(const std::string& k, uint32_t type) {
  put_string(k);
  append(meta_, type);
  ++n_kv_;
}

void GgufWriter::add_string(const std::string& k, const std::string& v) {
  key(k, 8);
  put_string(v);
}

void GgufWriter::add_u32(const std::string& k, uint32_t v) {
  key(k, 4);
  append(meta_, v);
}

void GgufWriter::add_f32(const std::string& k, float v) {
  key(k, 6);
  append(meta_, v);
}

void GgufWriter::add_tensor_f32(const std::string& name, std::vector<int64_t> ne, const float* data) {
  add_tensor(name, std::move(ne), DType::F32, data);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, DType dtype, const void* data) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  TAIA_CHECK(ne.empty() || ne[0] % block_values(dtype) == 0, "[GgufWriter] tensor '", name, "': ", dtype_name(dtype),
             " needs rows of a multiple of ", block_values(dtype), " values, got ", ne.empty() ? 0 : ne[0]);
  const size_t bytes = dtype_bytes(dtype, n);
  const uint8_t* p = static_cast<const uint8_t*>(data);
  tensors_.push_back({name, std::move(ne), ggml_type_of(dtype), std::vector<uint8_t>(p, p + bytes)});
}

void GgufWriter::put_value(const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: append(meta_, uint8_t(v.u)); break;
    case GgufType::INT8: append(meta_, int8_t(v.i)); break;
    case GgufType::UINT16: append(meta_, uint16_t(v.u)); break;
    case GgufType::INT16: append(meta_, int16_t(v.i)); break;
    case GgufType::UINT32: append(meta_, uint32_t(v.u)); break;
    case GgufType::INT32: append(meta_, int32_t(v.i)); break;
    case GgufType::UINT64: append(meta_, uint64_t(v.u)); break;
    case GgufType::INT64: append(meta_, int64_t(v.i)); break;
    case GgufType::FLOAT32: append(meta_, float(v.f)); break;
    case GgufType::FLOAT64: append(meta_, double(v.f)); break;
    case GgufType::BOOL: append(meta_, uint8_t(v.u ? 1 : 0)); break;
    case GgufType::STRING: put_string(v.s); break;
    case GgufType::ARRAY:
      append(meta_, uint32_t(v.elem_type));
      append(meta_, uint64_t(v.arr.size()));
      for (const GgufValue& e : v.arr) put_value(e);
      break;
  }
}

void GgufWriter::add_value(const std::string& k, const GgufValue& v) {
  key(k, uint32_t(v.type));
  put_value(v);
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> head;
  head.insert(head.end(), {'G', 'G', 'U', 'F'});
  append(head, uint32_t(3));
  append(head, uint64_t(tensors_.size()));
  append(head, n_kv_);
  head.insert(head.end(), meta_.begin(), meta_.end());
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    append(head, uint64_t(t.name.size()));
    head.insert(head.end(), t.name.begin(), t.name.end());
    append(head, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) append(head, uint64_t(d));
    append(head, t.ggml_type);
    append(head, offset);
    offset += (t.data.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  head.resize((head.size() + kAlignment - 1) / kAlignment * kAlignment, 0);
  AtomicFile f(path);
  f.write(head.data(), head.size());
  const std::vector<uint8_t> zeros(kAlignment, 0);
  for (const Tensor& t : tensors_) {
    const size_t bytes = t.data.size();
    f.write(t.data.data(), bytes);
    f.write(zeros.data(), (kAlignment - bytes % kAlignment) % kAlignment);
  }
  f.commit();
}

}  // namespace taia
