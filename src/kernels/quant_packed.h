// Q4_0 and Q8_0 weights repacked 16 rows at a time for the integer dot products (kernels/
// quant_dot's semantics: activations quantized as llama.cpp's Q8_0, exact integer sums, one F32
// scale per block), as llama.cpp repacks Q4_0 for its CPU kernels. In the file's layout each row
// carries its own F16 scale every 18 (34) bytes, so a kernel spends more instructions on scales
// and unaligned loads than on products; repacked, one 64-byte load holds 4 quants of 16 rows (one
// row per 32-bit lane), vpdpbusd multiplies them with 4 activation quants broadcast to every
// lane, and the 16 rows' scales of a block come in one load. The same layout serves prefill: the
// 16 rows' quants are unpacked once per block for up to 8 activation rows.
//
// Layout of a packed weight, per group g of 16 rows (rows past N: zero quants, zero scale):
//   scales [blocks, 16] F16: the block's d of each row;
//   quants [blocks, C, 64] bytes: chunk c, lane r (bytes 4r..4r+3) = row r's stored bytes
//          4c..4c+3 of the block: Q4_0 C = 4 (low nibbles values 4c.., high nibbles 16 + 4c..),
//          Q8_0 C = 8 (values 4c.., stored + 128: unsigned).
// A value is d * (u - o): o = 8 (Q4_0), 128 (Q8_0); the sums carry -o * (sum of activation
// quants) as their starting value.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/arena.h"
#include "core/mmap_file.h"
#include "core/tensor.h"
#include "kernels/quant_dot.h"

namespace taia {

// Whether weights of this type are repacked here (Q4_0; Q8_0 where the machine has AVX512-VNNI:
// its unsigned quants reach 255, past what the 16-bit pairs of the fallback hold).
bool has_packed_quant(DType t);

struct PackedQuantWeight {
  struct alignas(64) Line {
    uint8_t bytes[64];
  };
  DType dtype = DType::F32;  // the source's block type
  int64_t N = 0, K = 0, groups = 0, blocks = 0;  // groups = ceil(N / 16), blocks = K / 32
  // One buffer in huge pages, resident as it is written (so packing slice by slice never holds a
  // whole source and its copy at once): the quants, then the scales.
  PageBuffer memory;
  const Line* quants() const { return reinterpret_cast<const Line*>(memory.data()); }  // [groups, blocks, C] chunks
  const uint16_t* scales() const {  // [groups, blocks, 16] F16
    return reinterpret_cast<const uint16_t*>(memory.data() + line_count() * 64);
  }
  size_t scale_count() const { return size_t(groups * blocks * 16); }
  size_t line_count() const { return size_t(groups * blocks * (dtype == DType::Q4_0 ? 4 : 8)); }
  size_t bytes() const { return scale_count() * 2 + line_count() * 64; }
};

// w [N, K] of a has_packed_quant type, repacked (parallel over groups), a slice of rows at a
// time; after each slice, release(its source bytes) if given (the cache drops the file's pages).
PackedQuantWeight pack_quant_rows(const TensorView& w, const std::function<void(const void*, size_t)>& release = {});

// y[M, N] (+)= xq W^T (+ bias[N]) for any M (decode rows and prefill): xq quantized for w.dtype.
// The products of quant_dot_matvec on the source weight (exact integer sums), summed in another
// order of F32 operations.
void packed_quant_matmul(float* y, const QuantizedActivations& xq, const PackedQuantWeight& w, const float* bias,
                         bool accumulate);

// The packed copies of one model's frozen weights, made on first use and kept (by the weight's
// address: the weights must not change while it holds them; Model::forget_packed drops them).
// Thread-safe. `mapping`: the file the weights may be used in place from; a packed weight's
// bytes there leave the resident set (drop_unmodified_mapped_pages: a page a merge wrote stays).
class PackedQuantCache {
 public:
  const PackedQuantWeight& get(const TensorView& w, const MappedFile* mapping = nullptr);
  void clear();
  size_t bytes() const;  // of every packed copy

 private:
  mutable std::mutex mu_;
  std::map<const void*, PackedQuantWeight> packed_;
};

}  // namespace taia
