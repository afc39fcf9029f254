// Builds GGUF files byte by byte for tests (the project has no GGUF writer yet; the export
// issue adds one). Layout per the GGUF spec: header, metadata, tensor infos, aligned data.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace taia::test {

class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3) : version_(version) {}

  void kv_u32(const std::string& k, uint32_t v) { key(k, 4); put(v); ++n_kv_; }
  void kv_i32(const std::string& k, int32_t v) { key(k, 5); put(v); ++n_kv_; }
  void kv_f32(const std::string& k, float v) { key(k, 6); put(v); ++n_kv_; }
  void kv_u8(const std::string& k, uint8_t v) { key(k, 0); put(v); ++n_kv_; }
  void kv_i8(const std::string& k, int8_t v) { key(k, 1); put(v); ++n_kv_; }
  void kv_u16(const std::string& k, uint16_t v) { key(k, 2); put(v); ++n_kv_; }
  void kv_i16(const std::string& k, int16_t v) { key(k, 3); put(v); ++n_kv_; }
  void kv_bool(const std::string& k, bool v) { key(k, 7); put(uint8_t(v)); ++n_kv_; }
  void kv_u64(const std::string& k, uint64_t v) { key(k, 10); put(v); ++n_kv_; }
  void kv_i64(const std::string& k, int64_t v) { key(k, 11); put(v); ++n_kv_; }
  void kv_f64(const std::string& k, double v) { key(k, 12); put(v); ++n_kv_; }
  void kv_str(const std::string& k, const std::string& v) { key(k, 8); str(v); ++n_kv_; }
  void kv_str_array(const std::string& k, const std::vector<std::string>& v) {
    key(k, 9);
    put(uint32_t(8));
    put(uint64_t(v.size()));
    for (const auto& s : v) str(s);
    ++n_kv_;
  }
  void kv_i32_array(const std::string& k, const std::vector<int32_t>& v) {
    key(k, 9);
    put(uint32_t(5));
    put(uint64_t(v.size()));
    for (int32_t x : v) put(x);
    ++n_kv_;
  }
  // Raw bytes appended to the metadata section (for malformed files).
  void raw_meta(const void* p, size_t n, int count_as_kv) {
    meta_.insert(meta_.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    n_kv_ += uint64_t(count_as_kv);
  }

  // ne in ggml order (innermost first); data = raw bytes of the tensor.
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, const void* data, size_t nbytes) {
    Tensor t{name, std::move(ne), type, std::vector<uint8_t>(static_cast<const uint8_t*>(data),
                                                             static_cast<const uint8_t*>(data) + nbytes)};
    tensors_.push_back(std::move(t));
  }
  void tensor_f32(const std::string& name, std::vector<uint64_t> ne, const std::vector<float>& v) {
    tensor(name, std::move(ne), 0, v.data(), v.size() * 4);
  }

  std::vector<uint8_t> bytes(uint64_t alignment = 32) const {
    std::vector<uint8_t> out;
    auto app = [&](const void* p, size_t n) {
      out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    };
    app("GGUF", 4);
    app(&version_, 4);
    uint64_t nt = tensors_.size();
    app(&nt, 8);
    app(&n_kv_, 8);
    app(meta_.data(), meta_.size());
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors_) {
      uint64_t len = t.name.size();
      app(&len, 8);
      app(t.name.data(), t.name.size());
      uint32_t nd = uint32_t(t.ne.size());
      app(&nd, 4);
      for (uint64_t d : t.ne) app(&d, 8);
      app(&t.type, 4);
      app(&offset, 8);
      offsets.push_back(offset);
      offset += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    while (out.size() % alignment) out.push_back(0);
    for (const auto& t : tensors_) {
      app(t.data.data(), t.data.size());
      while (out.size() % alignment) out.push_back(0);
    }
    return out;
  }

  void write(const std::string& path, uint64_t alignment = 32) const {
    auto b = bytes(alignment);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  }

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::vector<uint8_t> data;
  };
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    meta_.insert(meta_.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put(uint64_t(s.size()));
    meta_.insert(meta_.end(), s.begin(), s.end());
  }
  void key(const std::string& k, uint32_t type) {
    str(k);
    put(type);
  }
  uint32_t version_;
  uint64_t n_kv_ = 0;
  std::vector<uint8_t> meta_;
  std::vector<Tensor> tensors_;
};

}  // namespace taia::test
