// Thread count for OpenMP regions (and the GEMM library, which uses OpenMP as well).
#pragma once

namespace taia {

// n <= 0 means: all hardware threads.
void set_num_threads(int n);
int num_threads();

}  // namespace taia
