#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

namespace taia {

namespace {

// The order in which the backward pass finishes a tensor's gradient: 0 for the last layer's,
// layers - 1 for the first layer's, `layers` for the model-level tensors (embeddings, final
// norm, LM head: the embedding gradient comes last).
int64_t readiness(const ParamRef& p, int64_t layers) { return p.layer < 0 ? layers : layers - 1 - p.layer; }

}  // namespace

DataParallel::DataParallel(Comm& comm, std::vector<ParamRef> params, const DataParallelOptions& options)
    : comm_(comm), params_(std::move(params)), bucket_(options.bucket_elems),
      shard_(options.shard_optimizer && comm.distributed()), overlap_(options.overlap && comm.distributed()) {
  TAIA_CHECK(bucket_ > 0, "[data parallel] bucket size expected > 0");
  for (const ParamRef& p : params_) layers_ = std::max(layers_, p.layer + 1);
  if (comm_.distributed())  // one rank keeps the optimizer's order (and its exact arithmetic)
    std::stable_sort(params_.begin(), params_.end(), [this](const ParamRef& a, const ParamRef& b) {
      return readiness(a, layers_) < readiness(b, layers_);
    });
  offsets_.push_back(0);
  for (const ParamRef& p : params_) offsets_.push_back(offsets_.back() + p.size);
  total_ = offsets_.back();
  // The owned slices: this rank's part of every bucket, cut at tensor boundaries.
  for (size_t b = 0; b < bucket_count(); ++b) {
    size_t lo, hi;
    part_range(b, comm_.rank(), lo, hi);
    for_each_piece(lo, hi, [&](size_t i, size_t begin, size_t count, size_t flat) {
      slices_.push_back({i, begin, count, flat});
      const ParamRef& p = params_[i];
      owned_.push_back({p.name + "@" + std::to_string(begin), p.value + begin, p.grad + begin, count, p.decay,
                        p.layer});
    });
    bucket_range(b, lo, hi);
    int64_t ready = 0;
    for_each_piece(lo, hi, [&](size_t i, size_t, size_t, size_t) {
      ready = std::max(ready, readiness(params_[i], layers_));
    });
    bucket_ready_.push_back(ready);
  }
  if (comm_.distributed()) buffer_.resize(std::min(bucket_, total_));
  if (shard_) part_.resize(buffer_.size() / size_t(comm_.size()) + 1);
  if (overlap_) {
    TAIA_CHECK(comm_.threads_serialized(), "[data parallel] --overlap-comm needs an MPI library with "
               "MPI_THREAD_SERIALIZED support; this one provides less");
    thread_ = std::thread(&DataParallel::comm_thread_main, this);
  }
}

DataParallel::~DataParallel() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

size_t DataParallel::optimizer_elements() const {
  if (!shard_) return total_;
  size_t n = 0;
  for (const Slice& s : slices_) n += s.count;
  return n;
}

void DataParallel::bucket_range(size_t b, size_t& lo, size_t& hi) const {
  lo = b * bucket_;
  hi = std::min(total_, lo + bucket_);
}

void DataParallel::part_range(size_t b, int r, size_t& lo, size_t& hi) const {
  size_t blo, bhi;
  bucket_range(b, blo, bhi);
  const size_t len = bhi - blo, k = size_t(comm_.size());
  lo = blo + len * size_t(r) / k;
  hi = blo + len * size_t(r + 1) / k;
}

// Elements of each rank's part of bucket b inside [lo, hi).
std::vector<int> DataParallel::part_counts(size_t lo, size_t hi, size_t b) const {
  std::vector<int> counts(size_t(comm_.size()), 0);
  for (int r = 0; r < comm_.size(); ++r) {
    size_t plo, phi;
    part_range(b, r, plo, phi);
    const size_t a = std::max(lo, plo), e = std::min(hi, phi);
    counts[size_t(r)] = e > a ? int(e - a) : 0;
  }
  return counts;
}

template <typename F>
void DataParallel::for_each_piece(size_t lo, size_t hi, F&& f) const {
  if (lo >= hi) return;
  size_t i = size_t(std::upper_bound(offsets_.begin(), offsets_.end(), lo) - offsets_.begin()) - 1;
  for (; i < params_.size() && offsets_[i] < hi; ++i) {
    const size_t a = std::max(lo, offsets_[i]), e = std::min(hi, offsets_[i + 1]);
    if (e > a) f(i, a - offsets_[i], e - a, a);
  }
}

size_t DataParallel::slice_at(size_t flat) const {
  auto it = std::upper_bound(slices_.begin(), slices_.end(), flat, [](size_t f, const Slice& s) { return f < s.flat; });
  TAIA_CHECK(it != slices_.begin(), "[data parallel] no owned slice holds element ", flat);
  const size_t i = size_t(it - slices_.begin()) - 1;
  TAIA_CHECK(flat < slices_[i].flat + slices_[i].count, "[data parallel] no owned slice holds element ", flat);
  return i;
}

void DataParallel::reduce_bucket(size_t b) {
  size_t lo, hi;
  bucket_range(b, lo, hi);
  float* buf = buffer_.data();  // [hi - lo] this bucket's gradients
  for_each_piece(lo, hi, [&](size_t i, size_t begin, size_t count, size_t flat) {
    std::memcpy(buf + (flat - lo), params_[i].grad + begin, count * sizeof(float));
  });
  if (!shard_) {
    comm_.allreduce_sum(buf, hi - lo);
    for_each_piece(lo, hi, [&](size_t i, size_t begin, size_t count, size_t flat) {
      std::memcpy(params_[i].grad + begin, buf + (flat - lo), count * sizeof(float));
    });
    return;
  }
  size_t plo, phi;
  part_range(b, comm_.rank(), plo, phi);
  float* mine = part_.data();  // [phi - plo] the summed gradients of this rank's part
  comm_.reduce_scatter_sum(buf, mine, part_counts(lo, hi, b));
  for_each_piece(plo, phi, [&](size_t i, size_t begin, size_t count, size_t flat) {
    std::memcpy(params_[i].grad + begin, mine + (flat - plo), count * sizeof(float));
  });
}

void DataParallel::comm_thread_main() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || reduced_ < queued_; });
    if (stop_) return;
    const size_t b = reduced_;
    lock.unlock();
    std::string error;
    try {
      reduce_bucket(b);
    } catch (const std::exception& e) {
      error = e.what();
    }
    lock.lock();
    if (!error.empty() && thread_error_.empty()) thread_error_ = error;
    ++reduced_;
    cv_.notify_all();
  }
}

void DataParallel::queue_buckets_up_to(int64_t ready) {
  const size_t before = next_queued_;
  while (next_queued_ < bucket_count() && bucket_ready_[next_queued_] <= ready) ++next_queued_;
  if (next_queued_ == before) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queued_ = next_queued_;
  }
  cv_.notify_all();
}

void DataParallel::layer_done(int64_t layer) {
  if (overlap_) queue_buckets_up_to(layers_ - 1 - layer);
}

double DataParallel::reduce_gradients() {
  if (!comm_.distributed()) return 0;
  if (!overlap_) {
    for (size_t b = 0; b < bucket_count(); ++b) reduce_bucket(b);
    return 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  early_buckets_ = next_queued_;
  queue_buckets_up_to(layers_);
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return reduced_ == bucket_count(); });
  queued_ = reduced_ = next_queued_ = 0;
  if (!thread_error_.empty()) fail(thread_error_);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double DataParallel::clip_gradients(double max_norm) {
  if (!comm_.distributed()) return clip_grad_norm(params_, max_norm);
  double sq = grad_square_sum(owned_);
  comm_.allreduce_sum(&sq, 1);
  const double norm = std::sqrt(sq);
  clip_to_norm(shard_ ? owned_ : params_, norm, max_norm);
  return norm;
}

void DataParallel::gather_parameters() {
  if (!shard_ || !comm_.distributed()) return;
  for (size_t b = 0; b < bucket_count(); ++b) {
    size_t lo, hi, plo, phi;
    bucket_range(b, lo, hi);
    part_range(b, comm_.rank(), plo, phi);
    float* buf = buffer_.data();  // [hi - lo] the bucket's updated values
    for_each_piece(plo, phi, [&](size_t i, size_t begin, size_t count, size_t flat) {
      std::memcpy(buf + (flat - lo), params_[i].value + begin, count * sizeof(float));
    });
    comm_.allgather(buf, part_counts(lo, hi, b));
    for_each_piece(lo, hi, [&](size_t i, size_t begin, size_t count, size_t flat) {
      std::memcpy(params_[i].value + begin, buf + (flat - lo), count * sizeof(float));
    });
  }
}

// Rank 0 receives the moment (m or v) of flat elements [lo, hi) (inside bucket b) into `out`.
void DataParallel::gather_moment_piece(AdamW& adam, bool m, size_t lo, size_t hi, size_t b, float* out) {
  size_t plo, phi;
  part_range(b, comm_.rank(), plo, phi);
  const size_t a = std::max(lo, plo), e = std::min(hi, phi);
  const float* send = nullptr;
  if (e > a) {
    const size_t s = slice_at(a);
    send = (m ? adam.m(s) : adam.v(s)).data() + (a - slices_[s].flat);
  }
  comm_.gather_to_root(send, out, part_counts(lo, hi, b));
}

void DataParallel::save_optimizer(AdamW& adam, const std::string& path) {
  if (!shard_ || !comm_.distributed()) {
    if (comm_.rank() == 0) save_optimizer_state(adam, path);
    return;
  }
  // Tensor 2i is m of params_[i], 2i + 1 its v; each is gathered bucket piece by bucket piece.
  std::vector<float> piece(comm_.rank() == 0 ? buffer_.size() : 0);
  auto fill = [&](size_t t, const ByteSink* sink) {
    const size_t i = t / 2;
    for (size_t lo = offsets_[i]; lo < offsets_[i + 1];) {
      const size_t b = lo / bucket_, hi = std::min(offsets_[i + 1], (b + 1) * bucket_);
      gather_moment_piece(adam, t % 2 == 0, lo, hi, b, piece.data());
      if (sink) (*sink)(piece.data(), (hi - lo) * sizeof(float));
      lo = hi;
    }
  };
  if (comm_.rank() != 0) {
    for (size_t t = 0; t < 2 * params_.size(); ++t) fill(t, nullptr);
    return;
  }
  std::vector<TensorSpec> specs;
  for (const ParamRef& p : params_)
    for (const char* which : {"m.", "v."}) specs.push_back({which + p.name, DType::F32, {int64_t(p.size)}});
  write_safetensors_streamed(path, specs, {{"steps_taken", std::to_string(adam.steps_taken())}},
                             [&](size_t t, const ByteSink& sink) { fill(t, &sink); });
}

void DataParallel::load_optimizer(AdamW& adam, const std::string& path) {
  if (!shard_ || !comm_.distributed()) {
    load_optimizer_state(adam, path);
    return;
  }
  SafetensorsFile f(path);
  for (size_t s = 0; s < slices_.size(); ++s) {
    const Slice& sl = slices_[s];
    const ParamRef& p = params_[sl.param];
    std::memcpy(adam.m(s).data(), optimizer_moment(f, "m.", p.name, p.size) + sl.begin, sl.count * sizeof(float));
    std::memcpy(adam.v(s).data(), optimizer_moment(f, "v.", p.name, p.size) + sl.begin, sl.count * sizeof(float));
  }
  adam.set_steps_taken(optimizer_steps_taken(f));
}

void DataParallel::check_parameters_agree(const std::string& when) {
  if (!comm_.distributed()) return;
  uint64_t h = 0;
  for (const ParamRef& p : params_) h = hash_bytes(p.value, p.size * sizeof(float), h);
  comm_.check_same(h, "the trainable parameters " + when);
}

}  // namespace taia
