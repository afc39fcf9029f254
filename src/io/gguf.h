// GGUF (llama.cpp's model format), versions 2 and 3: header, typed metadata (arrays
// included), tensor infos, aligned data section. Everything is validated against the file
// size before use; tensor data stays in the memory map until dequantized.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

#include "core/mmap_file.h"

namespace taia {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);

struct GgufValue {
  GgufType type = GgufType::UINT8;
  uint64_t u = 0;  // unsigned integers and bool
  int64_t i = 0;   // signed integers
  double f = 0;    // floats
  std::string s;
  GgufType elem_type = GgufType::UINT8;  // for arrays
  std::vector<GgufValue> arr;

  bool is_integer() const;
  bool is_float() const { return type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }
  int64_t as_int() const;  // any integer type (throws on others)
  double as_double() const;  // any numeric type
  std::string to_string(size_t max_items = 8) const;
};

// ggml tensor types we know the block layout of (enough to validate sizes).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, Q3_K = 11,
  Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};
const char* ggml_type_name(uint32_t type);

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the innermost (contiguous) dimension
  uint32_t type = 0;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;

  int64_t numel() const;
  // Shape outermost-first (PyTorch order): reversed ne.
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path, MapAccess access = MapAccess::ReadOnly);
  // The mapping the tensors' data point into: a model keeps it to use tensors in place.
  std::shared_ptr<const MappedFile> mapping() const { return file_; }

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufValue* find(const std::string& key) const;
  const GgufTensor* find_tensor(const std::string& name) const;

  // Typed lookups naming the file and key on error.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  int64_t get_int_or(const std::string& key, int64_t fallback) const;
  double get_float_or(const std::string& key, double fallback) const;

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> index_;
};

// Dequantizes a tensor of type F32, F16, BF16 or a block type of io/ggml_quants (Q4_0 ... Q6_K)
// into out[numel] (F32).
// Throws naming the tensor for any other type.
void gguf_dequantize(const GgufTensor& t, float* out, const std::string& path);
bool gguf_type_supported(uint32_t type);
const char* gguf_supported_types();  // "F32, F16, BF16, Q4_0, ..." for messages
// The storage type of a tensor; a type taia does not read is refused naming the tensor.
DType gguf_tensor_dtype(const GgufTensor& t, const std::string& path);

}  // namespace taia
