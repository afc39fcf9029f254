#include "core/arena.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace taia {

void Arena::Free::operator()(void* p) const { std::free(p); }

void Arena::reserve(size_t capacity_bytes) {
  TAIA_CHECK(!block_, "[Arena::reserve] the arena is already allocated");
  size_t bytes = aligned(capacity_bytes == 0 ? kAlignment : capacity_bytes);
  void* p = std::aligned_alloc(kAlignment, bytes);
  TAIA_CHECK(p != nullptr, "[Arena::reserve] could not allocate ", bytes, " bytes");
  std::memset(p, 0, bytes);
  block_.reset(p);
  capacity_ = bytes;
}

void* Arena::take(size_t bytes) {
  size_t n = aligned(bytes);
  TAIA_CHECK(block_ && used_ + n <= capacity_, "[Arena::take] expected at most ", capacity_ - used_,
             " free bytes, asked for ", n);
  void* p = static_cast<char*>(block_.get()) + used_;
  used_ += n;
  return p;
}

PageBuffer::PageBuffer(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes == 0) return;
  map_bytes_ = (bytes + kHuge - 1) / kHuge * kHuge + kHuge;  // room to align the start
  void* p = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  TAIA_CHECK(p != MAP_FAILED, "[PageBuffer] could not map ", bytes, " bytes");
  map_ = p;
  data_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + kHuge - 1) / kHuge * kHuge);
  size_ = bytes;
  // whole huge pages only: a partly used one would be resident whole (small tensors stay in 4 KiB)
  if (bytes >= kHuge) madvise(data_, bytes / kHuge * kHuge, MADV_HUGEPAGE);  // advice: failure is harmless
}

PageBuffer::~PageBuffer() { release(); }

PageBuffer::PageBuffer(PageBuffer&& o) noexcept { *this = std::move(o); }

PageBuffer& PageBuffer::operator=(PageBuffer&& o) noexcept {
  if (this != &o) {
    release();
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(map_, o.map_);
    std::swap(map_bytes_, o.map_bytes_);
  }
  return *this;
}

void PageBuffer::release() {
  if (map_) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  data_ = nullptr;
  size_ = map_bytes_ = 0;
}

}  // namespace taia
