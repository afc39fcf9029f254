// One allocation per model: callers first add up what they need (plan), then the arena
// allocates once and hands out 64-byte aligned slices. No per-tensor malloc, no frees.
#pragma once
#include <cstddef>
#include <memory>

namespace taia {

class Arena {
 public:
  static constexpr size_t kAlignment = 64;
  static size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

  Arena() = default;
  explicit Arena(size_t capacity_bytes) { reserve(capacity_bytes); }
  // Allocates the single block (zeroed). May be called once.
  void reserve(size_t capacity_bytes);
  // A slice of `bytes` bytes; throws if the plan was too small.
  void* take(size_t bytes);

  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }

 private:
  struct Free { void operator()(void* p) const; };
  std::unique_ptr<void, Free> block_;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

}  // namespace taia
