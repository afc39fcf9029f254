// safetensors: 8-byte little-endian header length, a JSON header, then the tensor bytes.
// https://github.com/huggingface/safetensors — read through mmap, every size and offset
// validated before any tensor byte is touched.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap_file.h"
#include "core/tensor.h"

namespace taia {

// Largest header accepted (the reference implementation's bound).
constexpr uint64_t kSafetensorsMaxHeader = 100u * 1024u * 1024u;

struct SafetensorsTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets inside the data section
  const uint8_t* data = nullptr;

  TensorView view() const;  // read-only contents as a view
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // maps and validates

  const std::string& path() const { return file_.path(); }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsTensor* find(const std::string& name) const;

 private:
  MappedFile file_;
  std::vector<SafetensorsTensor> tensors_;  // in file (offset) order
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One model's tensors across one file or the shards named by model.safetensors.index.json.
class SafetensorsCollection {
 public:
  // `path` is a .safetensors file, an index .json, or a folder holding either
  // model.safetensors or model.safetensors.index.json.
  explicit SafetensorsCollection(const std::string& path);

  const SafetensorsTensor* find(const std::string& name) const;
  std::vector<const SafetensorsTensor*> all() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  std::string describe_location(const std::string& name) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
};

// Writes tensors (contiguous views; F32/F16/BF16) in the given order, header padded with
// spaces to a multiple of 8 bytes, atomically (temporary file + fsync + rename).
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The same file from tensors that are not in memory as a whole: fill(i, sink) hands tensor i's
// bytes to sink in one or more pieces, in order (exactly its size, checked). The sharded
// optimizer state is written this way, one gathered piece at a time.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};
using ByteSink = std::function<void(const void* data, size_t bytes)>;
using TensorFiller = std::function<void(size_t index, const ByteSink& sink)>;
void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpec>& tensors,
                                const std::map<std::string, std::string>& metadata, const TensorFiller& fill);

}  // namespace taia
