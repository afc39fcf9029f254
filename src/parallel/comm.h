// The processes of a data-parallel run and the collectives training needs, on MPI (Open MPI
// from Debian's packages). `mpirun -np K taia train ...` starts K ranks; each opens the world
// communicator through Comm::world(). Without MPI at build time, or when not launched by an MPI
// launcher, the world is one rank and every collective is the identity, so the trainer has one
// code path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace taia {

class Comm {
 public:
  // The world of this process: initializes MPI (MPI_Init_thread asking for SERIALIZED: the main
  // thread or the trainer's communication thread calls MPI, one at a time, never the OpenMP
  // threads; FUNNELED is enough without --overlap-comm) on first use when an MPI launcher started
  // it, else one rank. Throws when a launcher asked for several ranks but this binary was built
  // without MPI.
  static Comm& world();
  // The world if world() has run, else null (for the CLI's exit paths, which must not start MPI).
  static Comm* started();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }
  // Ranks on this machine (sharing its memory), this one included.
  int local_size() const { return local_size_; }
  // The MPI library lets one thread at a time call it from any thread (MPI_THREAD_SERIALIZED):
  // the data-parallel trainer's communication thread needs that.
  bool threads_serialized() const { return serialized_; }
  // "rank R of K" for messages (empty for one rank).
  std::string where() const;

  // In-place sums over the ranks; every rank gets the same values.
  void allreduce_sum(float* data, size_t n);
  void allreduce_sum(double* data, size_t n);
  // recv[0, counts[rank]) = sum over ranks of send[displ(rank), + counts[rank]), where the
  // ranks' parts of `send` follow one another in rank order.
  void reduce_scatter_sum(const float* send, float* recv, const std::vector<int>& counts);
  // In place: buf holds the ranks' parts (counts[r] elements each) one after another; each rank
  // fills its own part, afterwards every rank holds all of them.
  void allgather(float* buf, const std::vector<int>& counts);
  // Same, but only rank 0 receives (recv may be null elsewhere).
  void gather_to_root(const float* send, float* recv, const std::vector<int>& counts);
  // Every rank must hold the same value (a hash of its data, options or parameters); otherwise
  // every rank throws naming `what` and the ranks' values.
  void check_same(uint64_t value, const std::string& what);
  // Each rank's value, on every rank.
  std::vector<double> allgather_value(double value);

  // Seconds spent inside collectives since the last call (the trainer's per-step trace).
  double take_comm_seconds();

  // Ends every rank of the job (MPI_Abort) after this rank has printed its error; a rank that
  // fails alone must not leave the others waiting in a collective.
  [[noreturn]] void abort(int code);
  // MPI_Finalize, once, at a normal exit (nothing for one rank).
  void finalize();

 private:
  Comm() = default;
  int rank_ = 0, size_ = 1, local_size_ = 1;
  bool mpi_ = false, finalized_ = false, serialized_ = true;
  double comm_seconds_ = 0;
};

// Ranks an MPI launcher asked for, read from its environment without starting MPI (Open MPI,
// PMIx, PMI, MPICH/Hydra); 1 when not launched by one.
int launched_ranks();

// A 64-bit hash of bytes (for check_same), fast enough for a model's parameters.
uint64_t hash_bytes(const void* data, size_t bytes, uint64_t seed = 0);

}  // namespace taia
