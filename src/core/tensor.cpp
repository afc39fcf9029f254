#include "core/tensor.h"

#include <limits>

#include "core/error.h"

namespace taia {

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    TAIA_CHECK(d >= 0, "[", what, "] expected non-negative dimensions, got ", d);
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      fail("[", what, "] shape element count overflows 64 bits");
    n *= d;
  }
  return n;
}

TensorView::TensorView(std::string name_, DType dtype_, std::vector<int64_t> shape_, void* data_)
    : name(std::move(name_)), dtype(dtype_), shape(std::move(shape_)), data(data_) {
  strides = contiguous_strides(shape);
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorView::dim(int i) const {
  int r = rank();
  if (i < 0) i += r;
  TAIA_CHECK(i >= 0 && i < r, "[TensorView::dim] tensor '", name, "' has rank ", r, ", asked for dim ", i);
  return shape[size_t(i)];
}

bool TensorView::is_contiguous() const { return strides == contiguous_strides(shape); }

TensorView TensorView::row(int64_t i) const {
  TAIA_CHECK(rank() == 2 && is_contiguous(), "[TensorView::row] expected a contiguous 2-D tensor, got '", name,
             "' ", shape_string());
  TAIA_CHECK(i >= 0 && i < shape[0], "[TensorView::row] row ", i, " out of range for '", name, "' ", shape_string());
  char* base = static_cast<char*>(data) + size_t(i) * dtype_bytes(dtype, shape[1]);
  return TensorView(name, dtype, {shape[1]}, base);
}

TensorView TensorView::reshaped(std::vector<int64_t> new_shape) const {
  TAIA_CHECK(is_contiguous(), "[TensorView::reshaped] tensor '", name, "' is not contiguous");
  TAIA_CHECK(checked_numel(new_shape, "TensorView::reshaped") == numel(), "[TensorView::reshaped] cannot view '",
             name, "' ", shape_string(), " with ", new_shape.size(), " dims of another element count");
  return TensorView(name, dtype, std::move(new_shape), data);
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void expect_shape(const TensorView& t, const std::vector<int64_t>& shape, const char* where) {
  if (t.shape == shape) return;
  TensorView expected("", t.dtype, shape, nullptr);
  fail("[", where, "] tensor '", t.name, "' expected shape ", expected.shape_string(), ", got ", t.shape_string());
}

}  // namespace taia
