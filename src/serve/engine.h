// `taia serve`'s engine: continuous batching of generation jobs on one loaded base. Each job has
// its own adapter and mode (applied unmerged), sampling, stop strings and token budget. One
// worker thread owns the Decoder; every step admits waiting jobs into free cache regions (their
// prompts prefilled in the step's pass) and advances every running job by one token, in one
// forward pass whatever the jobs' adapters and modes (Decoder::set_row_adapters). Text reaches the job's callbacks as
// UTF-8-complete deltas, held back while it could be the start of a stop string.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "generate/sampling.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/lora.h"
#include "model/modes.h"
#include "tokenizer/tokenizer.h"

namespace taia::serve {

struct Job {
  std::vector<int32_t> prompt;
  const LoraAdapter* adapter = nullptr;  // nullptr: the base
  std::shared_ptr<const LoraAdapter> adapter_ref;  // keeps a run-time adapter alive while the job runs
  ModuleMask mask{};
  SamplingParams sampling;
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
  // Called on the engine's thread: a text delta, then once the end: "stop", "length",
  // "cancelled" (the client left), "cut" (the server's drain ended it) or "error".
  std::function<void(const std::string&)> on_text;
  std::function<void(const std::string& finish_reason, int64_t completion_tokens)> on_done;
  std::atomic<bool> cancelled{false};  // the client went away: the slot is freed at the next step
  std::function<bool()> client_gone;   // asks the connection whether the client has closed it
  // Its client left (a failed write, or a closed connection while the job waited).
  bool departed() const { return cancelled.load() || (client_gone && client_gone()); }
};

class Engine {
 public:
  // parallel: jobs decoded together; ctx: positions per job (prompt + reply).
  // settings: Decoder::configure's (kv_dtype: the cache's type).
  Engine(const Model& model, const Tokenizer& tok, int64_t parallel, int64_t ctx, int64_t max_queue,
         const DecoderSettings& settings = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a job; false when the queue is full (the caller answers 429). Waiting jobs whose client
  // has left are dropped first (ended "cancelled"), so they hold no place.
  bool submit(std::shared_ptr<Job> job);
  // Whether the queue has a place now (checked before a request is tokenized; submit decides);
  // as submit, waiting jobs whose client left are dropped first.
  bool has_room();
  // Ends every running and waiting job with "cut" at the next step (a drain that ran out of time).
  void cut_all();
  int64_t ctx() const { return ctx_; }
  int64_t waiting();                                    // jobs in the queue
  int64_t running() const { return running_.load(); }  // jobs holding a cache region

 private:
  struct Running;
  void loop();
  void step(std::vector<Running>& running);
  void cut(std::vector<Running>& running);  // mu_ not held
  bool finish_if_done(Running& r, int32_t next);
  // Removes the queued jobs whose client left (mu_ held); the caller ends them outside the lock.
  std::vector<std::shared_ptr<Job>> take_departed();

  const Model& model_;
  const Tokenizer& tok_;
  Decoder decoder_;
  int64_t parallel_, ctx_, max_queue_;
  KVCache cache_;  // [parallel * ctx] positions: job region r owns [r * ctx, (r + 1) * ctx)
  std::vector<int64_t> eos_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  bool cutting_ = false;
  std::atomic<int64_t> running_{0};  // jobs holding a region (the worker's own list), for /metrics
  std::thread worker_;
};

}  // namespace taia::serve
