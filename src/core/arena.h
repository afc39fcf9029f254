// One allocation per model: callers first add up what they need (plan), then the arena
// allocates once and hands out 64-byte aligned slices. No per-tensor malloc, no frees.
#pragma once
#include <cstddef>
#include <cstdint>
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

// Zero-filled anonymous memory for a large, long-lived buffer (repacked weights), 2 MiB aligned
// and advised for transparent huge pages: one page fault per 2 MiB instead of per 4 KiB where the
// kernel allows it (a fault costs microseconds on these VMs: 4 KiB pages made packing a 0.5B
// model's weights take ~1 s).
class PageBuffer {
 public:
  PageBuffer() = default;
  explicit PageBuffer(size_t bytes);  // throws if the mapping fails
  ~PageBuffer();
  PageBuffer(PageBuffer&& o) noexcept;
  PageBuffer& operator=(PageBuffer&& o) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;  // the whole mapping (data_ is its 2 MiB aligned part)
  size_t map_bytes_ = 0;
};

}  // namespace taia
