// The machine's resources: thread count for OpenMP regions (and the GEMM library, which uses
// OpenMP as well) and physical memory.
#pragma once
#include <cstdint>

namespace taia {

// n <= 0 means: all hardware threads.
void set_num_threads(int n);
int num_threads();

// Physical RAM in bytes (0 if unknown).
int64_t physical_memory_bytes();
// This process's peak resident set so far, in bytes (getrusage's ru_maxrss).
int64_t peak_rss_bytes();

// Hands the heap's free pages back to the system (glibc's malloc_trim; nothing elsewhere). The
// loaders call it after parsing: a GGUF vocabulary's metadata (~45 MB of parsed values for a
// 152K-token vocabulary) would otherwise stay resident under the weights paged in afterwards.
void return_free_heap();

}  // namespace taia
