// Writing GGUF v3 files: typed metadata and tensors of any storage type taia has (F32, F16,
// BF16, the block types), data aligned to 32 bytes, written atomically.
#pragma once
#include <string>
#include <vector>

#include "io/gguf.h"

namespace taia {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_f32(const std::string& key, float value);
  // Any value read by GgufFile (arrays included), e.g. to carry a base model's metadata over.
  void add_value(const std::string& key, const GgufValue& value);
  // ne in ggml order (innermost first); values copied.
  void add_tensor_f32(const std::string& name, std::vector<int64_t> ne, const float* data);
  // A tensor of any storage type (F32, F16, BF16, a block type), its bytes copied.
  void add_tensor(const std::string& name, std::vector<int64_t> ne, DType dtype, const void* data);
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    uint32_t ggml_type;
    std::vector<uint8_t> data;  // the stored bytes
  };
  std::vector<uint8_t> meta_;
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
  void key(const std::string& k, uint32_t type);
  void put_string(const std::string& s);
  void put_value(const GgufValue& v);
};

}  // namespace taia
