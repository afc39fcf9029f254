// Data parallelism over the ranks of a Comm (`mpirun -np K taia train`): the sum of the ranks'
// gradients, in buckets of one flat layout of the trainable tensors; the global gradient norm;
// and --shard-optimizer (the ZeRO-1 idea): each rank keeps AdamW moments only for its part of
// every bucket, receives only that part of the summed gradients (reduce-scatter), updates it,
// and the parameters are all-gathered. With one rank everything is the one-process code.
//
// Flat layout: the trainable tensors one after another in the optimizer's order, N elements.
// Bucket b covers [b * S, min(N, (b + 1) * S)); rank r owns the r-th of K near-equal parts of
// each bucket. A rank's AdamW runs on the intersections of its parts with the tensors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "train/optimizer.h"

namespace taia {

class DataParallel {
 public:
  // shard_optimizer takes effect with several ranks (one rank keeps the whole state anyway).
  // bucket_elems: elements per collective (TrainOptions::bucket_mb).
  DataParallel(Comm& comm, std::vector<ParamRef> params, bool shard_optimizer, size_t bucket_elems);

  Comm& comm() const { return comm_; }
  bool sharded() const { return shard_; }
  // What this rank's AdamW updates: every tensor, or (sharded) the slices this rank owns.
  const std::vector<ParamRef>& optimizer_params() const { return shard_ ? owned_ : params_; }
  // Elements whose AdamW moments this rank keeps.
  size_t optimizer_elements() const;

  // After the backward passes: the sum over ranks of the gradients (all of them, or, sharded,
  // those of the owned slices; the rest of the gradient buffers is then stale).
  void reduce_gradients();
  // The global L2 norm of the summed gradients; scales them down to max_norm (> 0) above it, as
  // clip_grad_norm. With several ranks each rank sums the squares of the slices it owns and the
  // sums are added, so the norm is the same with and without sharding.
  double clip_gradients(double max_norm);
  // Sharded: every rank's updated slices into every rank's parameters (nothing otherwise).
  void gather_parameters();

  // optimizer.safetensors in the one-process layout (m.NAME and v.NAME of whole tensors), so a
  // checkpoint resumes with any number of ranks, sharded or not. Rank 0 writes; sharded, it
  // gathers one bucket-sized piece at a time (never the whole state).
  void save_optimizer(AdamW& adam, const std::string& path);
  void load_optimizer(AdamW& adam, const std::string& path);

  // All ranks must hold the same parameters: throws naming `when` otherwise.
  void check_parameters_agree(const std::string& when);

 private:
  struct Slice {      // an owned part of a bucket inside one tensor
    size_t param;     // index into params_
    size_t begin;     // element offset inside the tensor
    size_t count;
    size_t flat;      // flat offset of its first element
  };
  size_t bucket_count() const { return (total_ + bucket_ - 1) / bucket_; }
  // Flat range [lo, hi) of bucket b, and rank r's part of it.
  void bucket_range(size_t b, size_t& lo, size_t& hi) const;
  void part_range(size_t b, int r, size_t& lo, size_t& hi) const;
  std::vector<int> part_counts(size_t lo, size_t hi, size_t b) const;
  // Calls f(param, offset inside it, count, flat offset) for each tensor piece of [lo, hi).
  template <typename F>
  void for_each_piece(size_t lo, size_t hi, F&& f) const;
  size_t slice_at(size_t flat) const;  // the owned slice holding flat element `flat`
  void gather_moment_piece(AdamW& adam, bool m, size_t lo, size_t hi, size_t b, float* out);

  Comm& comm_;
  std::vector<ParamRef> params_;
  std::vector<size_t> offsets_;  // flat offset of each tensor; [params + 1]
  size_t total_ = 0, bucket_ = 0;
  bool shard_ = false;
  std::vector<Slice> slices_;    // owned, in flat order
  std::vector<ParamRef> owned_;  // the slices as AdamW parameters, NAME@OFFSET
  std::vector<float> buffer_;    // [bucket] packing buffer
  std::vector<float> part_;      // [bucket / K + 1] sharded: this rank's part of a summed bucket
};

}  // namespace taia
