// Data parallelism over the ranks of a Comm (`mpirun -np K taia train`): the sum of the ranks'
// gradients, in buckets of one flat layout of the trainable tensors; the global gradient norm;
// and --shard-optimizer (the ZeRO-1 idea): each rank keeps AdamW moments only for its part of
// every bucket, receives only that part of the summed gradients (reduce-scatter), updates it,
// and the parameters are all-gathered. With one rank everything is the one-process code.
//
// Flat layout: the trainable tensors one after another, N elements; with several ranks in the
// order the backward pass finishes them (the last layer's first, the model-level tensors last),
// so that with `overlap` a bucket is summed on a communication thread as soon as the backward has
// passed every layer it holds. Bucket b covers [b * S, min(N, (b + 1) * S)); rank r owns the r-th
// of K near-equal parts of each bucket. A rank's AdamW runs on the intersections of its parts
// with the tensors.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/comm.h"
#include "train/optimizer.h"

namespace taia {

struct DataParallelOptions {
  bool shard_optimizer = false;  // with several ranks (one rank keeps the whole state anyway)
  size_t bucket_elems = 0;       // elements per collective (TrainOptions::bucket_mb)
  bool overlap = false;          // sum buckets during the backward pass (a communication thread)
};

class DataParallel {
 public:
  DataParallel(Comm& comm, std::vector<ParamRef> params, const DataParallelOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  Comm& comm() const { return comm_; }
  bool sharded() const { return shard_; }
  // What this rank's AdamW updates: every tensor, or (sharded) the slices this rank owns.
  const std::vector<ParamRef>& optimizer_params() const { return shard_ ? owned_ : params_; }
  // Elements whose AdamW moments this rank keeps.
  size_t optimizer_elements() const;

  // With overlap, the step's last backward pass calls this after each layer (the engine's layer
  // hook): buckets whose tensors are all final go to the communication thread.
  void layer_done(int64_t layer);
  // After the backward passes: the sum over ranks of the gradients (all of them, or, sharded,
  // those of the owned slices; the rest of the gradient buffers is then stale). With overlap:
  // queues the buckets not yet sent and waits for all; returns the seconds waited.
  double reduce_gradients();
  bool overlapping() const { return overlap_; }
  // Overlap: buckets handed to the communication thread before the backward pass ended, in the
  // last step (the rest waited for reduce_gradients).
  size_t buckets_during_backward() const { return early_buckets_; }
  size_t buckets() const { return bucket_count(); }
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
  void reduce_bucket(size_t b);        // sum bucket b over the ranks (either thread, never both)
  void queue_buckets_up_to(int64_t ready);  // overlap: buckets whose readiness <= ready
  void comm_thread_main();
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
  // Overlap. readiness of a tensor: 0 for the last layer ... L-1 for layer 0, L for model-level
  // tensors; bucket_ready_[b]: the largest readiness among the tensors it holds (non-decreasing).
  bool overlap_ = false;
  std::vector<int64_t> bucket_ready_;
  int64_t layers_ = 0;
  size_t next_queued_ = 0;       // main thread: buckets [0, next_queued_) handed over this step
  size_t early_buckets_ = 0;     // main thread: next_queued_ when the last step's backward ended
  std::mutex mutex_;
  std::condition_variable cv_;
  size_t queued_ = 0, reduced_ = 0;  // under mutex_: buckets handed over / summed this step
  bool stop_ = false;
  std::string thread_error_;     // under mutex_: what the communication thread threw
  std::thread thread_;
};

}  // namespace taia
