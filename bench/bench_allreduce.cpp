// The cost of summing gradients over ranks: MPI_Allreduce (in place, F32 sum, as
// train/data_parallel does per bucket) of 4 KiB ... 64 MiB, through taia's Comm.
//   mpirun -np 2 ./build/bench/bench_allreduce [--rounds 20] [--json]
// Prints per size the median seconds per all-reduce and the "bus bandwidth" 2 (K-1)/K x bytes / t
// (what a ring all-reduce moves through each rank's link), from which docs/BENCHMARKS.md projects
// the cost of a training step on K machines.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "parallel/comm.h"

int main(int argc, char** argv) {
  int rounds = 20;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--json")) json = true;
  }
  taia::Comm& comm = taia::Comm::world();
  const int K = comm.size();
  if (comm.rank() == 0 && !json)
    std::printf("%d ranks; median of %d all-reduces per size\n%12s %12s %14s\n", K, rounds, "bytes", "seconds",
                "bus GB/s");
  if (comm.rank() == 0 && json) std::printf("{\"ranks\": %d, \"sizes\": [", K);
  bool first = true;
  for (size_t bytes = 4096; bytes <= (size_t(64) << 20); bytes *= 4) {
    std::vector<float> data(bytes / 4, 1.0f);  // [bytes / 4] a bucket of gradients
    std::vector<double> times;
    for (int r = 0; r < rounds + 2; ++r) {
      comm.allgather_value(0.0);  // start together
      const auto t0 = std::chrono::steady_clock::now();
      comm.allreduce_sum(data.data(), data.size());
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r >= 2) times.push_back(t);  // two warm-up rounds
    }
    // The slowest rank's time of each round is the collective's time.
    std::vector<double> slowest;
    for (double t : times) {
      double m = 0;
      for (double x : comm.allgather_value(t)) m = std::max(m, x);
      slowest.push_back(m);
    }
    std::sort(slowest.begin(), slowest.end());
    const double med = slowest[slowest.size() / 2];
    const double bus = K > 1 ? 2.0 * (K - 1) / K * double(bytes) / med / 1e9 : 0.0;
    if (comm.rank() == 0) {
      if (json) std::printf("%s{\"bytes\": %zu, \"seconds\": %.9f, \"bus_gb_s\": %.3f}", first ? "" : ", ", bytes, med, bus);
      else std::printf("%12zu %12.6f %14.2f\n", bytes, med, bus);
    }
    first = false;
  }
  if (comm.rank() == 0 && json) std::printf("]}\n");
  comm.finalize();
  return 0;
}
