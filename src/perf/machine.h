// The machine's measured ceilings, against which `taia bench` and bench/ print what a model
// reaches: read bandwidth (decode is bound by it) and GEMM throughput (prefill, training).
#pragma once
#include <cstddef>
#include <string>

#include "kernels/linear.h"

namespace taia {

// /proc/cpuinfo's model name ("?" when unreadable).
std::string cpu_name();

// Read bandwidth in GB/s over a buffer of `bytes` bytes, read cyclically as decode reads the
// weights (a model that partly fits in the last-level cache gets a higher bound). Every thread
// of the current team reads its share with four independent AVX-512 accumulators; best of
// software-prefetch distances 0 and 4 KiB, median of the passes of each.
double read_bandwidth_gbs(size_t bytes);

// GEMM throughput in GFLOP/s of a 1024 x 1024 x 1024 product in `precision` (F32: the F32
// matmul primitive prefill uses; BF16: the BF16 one of --compute bf16), best of a few runs.
double gemm_peak_gflops(Precision precision);

}  // namespace taia
