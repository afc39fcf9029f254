#include "core/arena.h"

#include <cstdlib>
#include <cstring>

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

}  // namespace taia
