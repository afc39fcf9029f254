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

}  // namespace taia
