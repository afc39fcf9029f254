#include "parallel/comm.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "core/error.h"

#ifdef TAIA_HAVE_MPI
#include <mpi.h>
#endif

namespace taia {
namespace {

using Clock = std::chrono::steady_clock;

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : 0;
}

// Adds the time a collective took to `total` when it goes out of scope.
struct CommTimer {
  double& total;
  Clock::time_point t0 = Clock::now();
  ~CommTimer() { total += std::chrono::duration<double>(Clock::now() - t0).count(); }
};

#ifdef TAIA_HAVE_MPI
std::vector<int> displacements(const std::vector<int>& counts) {
  std::vector<int> d(counts.size(), 0);
  for (size_t r = 1; r < counts.size(); ++r) d[r] = d[r - 1] + counts[r - 1];
  return d;
}

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("[mpi] ", call, " failed: ", std::string(text, size_t(len)));
}
#endif

}  // namespace

int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"})
    if (int n = env_int(name); n > 0) return n;
  return 1;
}

namespace {
Comm* g_world = nullptr;  // set by the first Comm::world()
}  // namespace

Comm* Comm::started() { return g_world; }

Comm& Comm::world() {
  static Comm* comm = [] {
    auto* c = new Comm();  // never destroyed: finalize() ends MPI before exit
    const int launched = launched_ranks();
#ifdef TAIA_HAVE_MPI
    // Any rank variable of a launcher (Open MPI, PMIx as srun --mpi=pmix sets it, PMI / Hydra).
    if (launched > 1 || std::getenv("OMPI_COMM_WORLD_RANK") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK")) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
      TAIA_CHECK(provided >= MPI_THREAD_FUNNELED, "[mpi] expected thread support FUNNELED, the library provides ",
                 provided);
      c->serialized_ = provided >= MPI_THREAD_SERIALIZED;
      MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_);
      MPI_Comm_size(MPI_COMM_WORLD, &c->size_);
      MPI_Comm node;
      check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank_, MPI_INFO_NULL, &node),
                "MPI_Comm_split_type");
      MPI_Comm_size(node, &c->local_size_);
      MPI_Comm_free(&node);
      c->mpi_ = true;
    }
#else
    TAIA_CHECK(launched <= 1, "[mpi] launched as one of ", launched, " ranks, but this taia was built without MPI: "
               "install Open MPI (apt install openmpi-bin libopenmpi-dev, as scripts/setup.sh does) and rebuild, "
               "or run taia without mpirun");
#endif
    return c;
  }();
  g_world = comm;
  return *comm;
}

std::string Comm::where() const {
  return size_ > 1 ? "rank " + std::to_string(rank_) + " of " + std::to_string(size_) : std::string();
}

void Comm::allreduce_sum(float* data, size_t n) {
  if (!mpi_ || n == 0) return;
#ifdef TAIA_HAVE_MPI
  CommTimer timer{comm_seconds_};
  for (size_t done = 0; done < n;) {  // MPI counts are int
    const int count = int(std::min<size_t>(n - done, size_t(1) << 30));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    done += size_t(count);
  }
#endif
}

void Comm::allreduce_sum(double* data, size_t n) {
  if (!mpi_ || n == 0) return;
#ifdef TAIA_HAVE_MPI
  CommTimer timer{comm_seconds_};
  TAIA_CHECK(n < (size_t(1) << 30), "[mpi] allreduce of ", n, " doubles expected < 2^30");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, int(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
}

void Comm::reduce_scatter_sum(const float* send, float* recv, const std::vector<int>& counts) {
  TAIA_CHECK(int(counts.size()) == size_, "[mpi] reduce_scatter expected ", size_, " counts, got ", counts.size());
  if (!mpi_) {
    std::memcpy(recv, send, size_t(counts[0]) * sizeof(float));
    return;
  }
#ifdef TAIA_HAVE_MPI
  CommTimer timer{comm_seconds_};
  check_mpi(MPI_Reduce_scatter(send, recv, counts.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Reduce_scatter");
#endif
}

void Comm::allgather(float* buf, const std::vector<int>& counts) {
  TAIA_CHECK(int(counts.size()) == size_, "[mpi] allgather expected ", size_, " counts, got ", counts.size());
  if (!mpi_) return;
#ifdef TAIA_HAVE_MPI
  CommTimer timer{comm_seconds_};
  const std::vector<int> displs = displacements(counts);
  check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts.data(), displs.data(), MPI_FLOAT,
                           MPI_COMM_WORLD), "MPI_Allgatherv");
#endif
}

void Comm::gather_to_root(const float* send, float* recv, const std::vector<int>& counts) {
  TAIA_CHECK(int(counts.size()) == size_, "[mpi] gather expected ", size_, " counts, got ", counts.size());
  if (!mpi_) {
    if (recv != send) std::memmove(recv, send, size_t(counts[0]) * sizeof(float));
    return;
  }
#ifdef TAIA_HAVE_MPI
  CommTimer timer{comm_seconds_};
  const std::vector<int> displs = displacements(counts);
  check_mpi(MPI_Gatherv(send, counts[size_t(rank_)], MPI_FLOAT, recv, counts.data(), displs.data(), MPI_FLOAT, 0,
                        MPI_COMM_WORLD), "MPI_Gatherv");
#endif
}

std::vector<double> Comm::allgather_value(double value) {
  std::vector<double> all(size_t(size_), value);
#ifdef TAIA_HAVE_MPI
  if (mpi_) {
    CommTimer timer{comm_seconds_};
    check_mpi(MPI_Allgather(&value, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD), "MPI_Allgather");
  }
#endif
  return all;
}

void Comm::check_same(uint64_t value, const std::string& what) {
  if (!mpi_) return;
  std::vector<uint64_t> all(size_t(size_), value);
#ifdef TAIA_HAVE_MPI
  {
    CommTimer timer{comm_seconds_};
    check_mpi(MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
  }
#endif
  for (int r = 1; r < size_; ++r)
    if (all[size_t(r)] != all[0]) {
      std::string list;
      for (int q = 0; q < size_; ++q) list += (q ? ", " : "") + std::to_string(all[size_t(q)]);
      fail("[mpi] the ranks disagree on ", what, " (rank 0 and rank ", r, " differ; hashes by rank: ", list, ")");
    }
}

double Comm::take_comm_seconds() {
  const double s = comm_seconds_;
  comm_seconds_ = 0;
  return s;
}

void Comm::abort(int code) {
#ifdef TAIA_HAVE_MPI
  if (mpi_ && !finalized_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

void Comm::finalize() {
#ifdef TAIA_HAVE_MPI
  if (mpi_ && !finalized_) MPI_Finalize();
#endif
  finalized_ = true;
}

uint64_t hash_bytes(const void* data, size_t bytes, uint64_t seed) {
  // 64-bit words mixed by multiply-xorshift (a splitmix64 step per word), then the tail.
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = seed ^ (0x9e3779b97f4a7c15ull * (bytes + 1));
  auto mix = [&h](uint64_t w) {
    h ^= w + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ull;
  };
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    mix(w);
  }
  uint64_t tail = 0;
  if (bytes > i) std::memcpy(&tail, p + i, bytes - i);  // (p may be null for 0 bytes)
  mix(tail);
  return h ^ (h >> 29);
}

}  // namespace taia
