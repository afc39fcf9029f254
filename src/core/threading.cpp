#include "core/threading.h"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace taia {

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

void return_free_heap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

int64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : 0;
}

int64_t peak_rss_bytes() {
  rusage u{};
  return ::getrusage(RUSAGE_SELF, &u) == 0 ? int64_t(u.ru_maxrss) * 1024 : 0;
}

}  // namespace taia
