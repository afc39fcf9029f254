// Non-owning, named, strided tensor views. Storage lives in an Arena (model weights),
// a MappedFile (tensors read straight from disk) or a std::vector (scratch).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace taia {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;    // outermost first, as PyTorch / safetensors
  std::vector<int64_t> strides;  // in elements, same order as shape
  void* data = nullptr;

  TensorView() = default;
  // A contiguous (row-major) view.
  TensorView(std::string name, DType dtype, std::vector<int64_t> shape, void* data);

  int64_t numel() const;
  size_t nbytes() const { return dtype_bytes(dtype, numel()); }
  int rank() const { return int(shape.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  bool is_contiguous() const;
  bool empty() const { return data == nullptr; }

  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }

  // Row i of a contiguous 2-D view as a 1-D view.
  TensorView row(int64_t i) const;
  // A view of a contiguous tensor with another shape of the same element count.
  TensorView reshaped(std::vector<int64_t> new_shape) const;

  std::string shape_string() const;  // "[4, 64]"
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);
// Product of the dimensions; throws if it overflows int64 or a dimension is negative.
int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what);

// Throws "[where] tensor 'name' expected shape [..], got [..]" on mismatch.
void expect_shape(const TensorView& t, const std::vector<int64_t>& shape, const char* where);

}  // namespace taia
