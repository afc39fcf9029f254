#include "serve/engine.h"

#include <algorithm>
#include <iterator>

#include "core/error.h"
#include "generate/generate.h"
#include "generate/stop_text.h"

namespace taia::serve {

// A job holding a cache region: region r owns slots [r * ctx, (r + 1) * ctx).
struct Engine::Running {
  std::shared_ptr<Job> job;
  int64_t region = 0;
  int64_t len = 0;           // cache positions filled
  bool prefilled = false;
  int32_t pending = -1;      // the token fed at the next step
  std::vector<int32_t> output, history;  // generated ids (no EOS); prompt + output (the penalty's)
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<IncrementalDecoder> detok;
  std::unique_ptr<StopText> text;  // the reply so far, cut at a stop string; what was sent
  bool done = false;
};

namespace {

KeySpans span_of(int64_t begin, int64_t end) {
  KeySpans s;
  s.begin[0] = begin;
  s.end[0] = end;
  return s;
}

// Every region's slots: --parallel x --ctx, checked first.
int64_t checked_slots(const ModelConfig& c, int64_t parallel, int64_t ctx) {
  TAIA_CHECK(parallel >= 1 && ctx >= 2 && ctx <= c.max_position_embeddings, "[serve] expected --parallel >= 1 and "
             "--ctx in 2..", c.max_position_embeddings, ", got ", parallel, " and ", ctx);
  // LongRope picks its factors per forward pass from the pass's largest position: rows of other
  // requests batched with one past the original context would be rotated with the long factors.
  TAIA_CHECK(!c.rope_scaling.uses_long_factors(ctx), "[serve] LongRope models are served within their original "
             "context: expected --ctx <= ", c.rope_scaling.original_max_position_embeddings, ", got ", ctx);
  return parallel * ctx;
}

}  // namespace

Engine::Engine(const Model& model, const Tokenizer& tok, int64_t parallel, int64_t ctx, int64_t max_queue,
               const DecoderSettings& settings)
    : model_(model),
      tok_(tok),
      decoder_(model),
      parallel_(parallel),
      ctx_(ctx),
      max_queue_(max_queue),
      cache_(model.config, checked_slots(model.config, parallel, ctx), 0, settings.kv_dtype) {
  decoder_.configure(settings);
  eos_ = stop_token_ids(model.config, &tok, /*chat=*/true);
  worker_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

bool Engine::submit(std::shared_ptr<Job> job) {
  TAIA_CHECK(!job->prompt.empty() && int64_t(job->prompt.size()) < ctx_, "[serve] prompt of ", job->prompt.size(),
             " tokens expected in 1..", ctx_ - 1);
  std::vector<std::shared_ptr<Job>> departed;
  bool queued = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (int64_t(queue_.size()) >= max_queue_) departed = take_departed();
    if (int64_t(queue_.size()) < max_queue_) {
      queue_.push_back(std::move(job));
      queued = true;
    }
  }
  for (auto& d : departed) d->on_done("cancelled", 0);
  if (queued) cv_.notify_all();
  return queued;
}

int64_t Engine::waiting() {
  std::lock_guard<std::mutex> lk(mu_);
  return int64_t(queue_.size());
}

bool Engine::has_room() {
  std::vector<std::shared_ptr<Job>> departed;
  bool room = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (int64_t(queue_.size()) >= max_queue_) departed = take_departed();  // as submit: they hold no place
    room = int64_t(queue_.size()) < max_queue_;
  }
  for (auto& d : departed) d->on_done("cancelled", 0);
  return room;
}

void Engine::cut_all() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    cutting_ = true;
  }
  cv_.notify_all();
}

void Engine::cut(std::vector<Running>& running) {
  std::deque<std::shared_ptr<Job>> queued;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queued.swap(queue_);
    cutting_ = false;
  }
  for (Running& r : running)
    if (!r.done) r.job->on_done("cut", int64_t(r.output.size()));
  running.clear();
  running_ = 0;
  for (auto& j : queued) j->on_done("cut", 0);
}

std::vector<std::shared_ptr<Job>> Engine::take_departed() {
  std::vector<std::shared_ptr<Job>> out;
  auto gone = std::stable_partition(queue_.begin(), queue_.end(), [](const auto& j) { return !j->departed(); });
  std::move(gone, queue_.end(), std::back_inserter(out));
  queue_.erase(gone, queue_.end());
  return out;
}

void Engine::loop() {
  std::vector<Running> running;
  for (;;) {
    bool cut_now = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || cutting_ || !queue_.empty() || !running.empty(); });
      if (stopping_) break;
      cut_now = cutting_;
    }
    if (cut_now) {
      cut(running);
      continue;
    }
    try {
      step(running);
    } catch (...) {  // every job of the failed step that had not ended ends with "error"
      for (Running& r : running)
        if (!r.done) r.job->on_done("error", int64_t(r.output.size()));
      running.clear();
    }
  }
  for (Running& r : running)
    if (!r.done) r.job->on_done("error", int64_t(r.output.size()));
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& j : queue_) j->on_done("error", 0);
}

// Appends `next` (or ends at EOS), sends the text that is now certain, and ends the job on a stop
// string, its token budget or the end of its region. Returns whether it ended.
bool Engine::finish_if_done(Running& r, int32_t next) {
  Job& job = *r.job;
  auto end = [&](const char* reason) {
    if (std::string rest = r.text->take_rest(); !rest.empty()) job.on_text(rest);
    job.on_done(reason, int64_t(r.output.size()));
    r.done = true;
    return true;
  };
  if (std::find(eos_.begin(), eos_.end(), next) != eos_.end()) {
    r.text->append(r.detok->flush());
    return end("stop");
  }
  r.output.push_back(next);
  r.history.push_back(next);
  if (r.text->append(r.detok->push(next))) return end("stop");
  if (int64_t(r.output.size()) >= job.max_tokens || r.len + 1 >= ctx_) {
    if (r.text->append(r.detok->flush())) return end("stop");
    return end("length");
  }
  if (std::string certain = r.text->take_certain(); !certain.empty()) job.on_text(certain);
  r.pending = next;
  return false;
}

void Engine::step(std::vector<Running>& running) {
  // 1. Drop the running jobs whose client went away (a failed write, or a closed connection while
  // a non-streaming reply was being made: nobody would read it); admit waiting jobs into free
  // regions, dropping the waiting ones whose client left.
  running.erase(std::remove_if(running.begin(), running.end(),
                               [](const Running& r) {
                                 if (!r.job->departed()) return false;
                                 r.job->on_done("cancelled", int64_t(r.output.size()));
                                 return true;
                               }),
                running.end());
  std::vector<std::shared_ptr<Job>> departed;
  {
    std::lock_guard<std::mutex> lk(mu_);
    departed = take_departed();  // their clients left while they waited
    while (int64_t(running.size()) < parallel_ && !queue_.empty()) {
      std::shared_ptr<Job> job = std::move(queue_.front());
      queue_.pop_front();
      std::vector<bool> used(size_t(parallel_), false);
      for (const Running& r : running) used[size_t(r.region)] = true;
      running.emplace_back();
      Running& r = running.back();  // in `running` first: a throw below still ends the job
      r.job = std::move(job);
      r.region = int64_t(std::find(used.begin(), used.end(), false) - used.begin());
      r.history = r.job->prompt;
      r.sampler = std::make_unique<Sampler>(r.job->sampling);
      r.detok = std::make_unique<IncrementalDecoder>(tok_, /*skip_special=*/true);
      r.text = std::make_unique<StopText>(r.job->stop);
    }
  }
  running_ = int64_t(running.size());
  for (auto& d : departed) d->on_done("cancelled", 0);
  // 2. One packed batch of every running job's rows (the prompts of new jobs, the pending token of
  // the others), ordered by adapter and mode: one forward pass runs the base projections once for
  // all rows and each adapter's modules on its own consecutive rows (Decoder::set_row_adapters).
  std::vector<Running*> members;
  for (Running& r : running) members.push_back(&r);
  auto row_adapter = [](const Running* r) {
    return RowAdapter{r->job->adapter, r->job->adapter ? r->job->mask : ModuleMask{}};
  };
  std::stable_sort(members.begin(), members.end(), [&](const Running* a, const Running* b) {
    const RowAdapter x = row_adapter(a), y = row_adapter(b);
    return std::less<const LoraAdapter*>()(x.adapter, y.adapter) || (x.adapter == y.adapter && x.mask < y.mask);
  });
  PackedBatch pb;
  std::vector<RowAdapter> rows;  // [batch rows]
  for (Running* r : members) {
    const int64_t base = r->region * ctx_;
    int64_t logit_row = -1;  // the job's last row: its next token's logits
    if (!r->prefilled) {
      for (size_t t = 0; t < r->job->prompt.size(); ++t) {
        logit_row = pb.add(r->job->prompt[t], int64_t(t), base + int64_t(t), span_of(base, base + int64_t(t) + 1));
        rows.push_back(row_adapter(r));
      }
    } else {
      logit_row = pb.add(r->pending, r->len, base + r->len, span_of(base, base + r->len + 1));
      rows.push_back(row_adapter(r));
    }
    pb.logit_rows.push_back(logit_row);
  }
  // 3. Forward the batch, sample each job's next token.
  const int64_t V = model_.config.vocab_size, sampled = std::min<int64_t>(V, tok_.vocab_size());
  std::vector<float> logits(pb.logit_rows.size() * size_t(V));
  decoder_.set_row_adapters(&rows);
  try {
    decoder_.forward_packed(cache_, pb, logits.data());
  } catch (...) {
    decoder_.set_row_adapters(nullptr);
    throw;
  }
  decoder_.set_row_adapters(nullptr);
  for (size_t i = 0; i < members.size(); ++i) {
    Running& r = *members[i];
    r.len = r.prefilled ? r.len + 1 : int64_t(r.job->prompt.size());
    r.prefilled = true;
    const int32_t next = r.sampler->sample(logits.data() + i * size_t(V), sampled, r.history);
    finish_if_done(r, next);
  }
  running.erase(std::remove_if(running.begin(), running.end(), [](const Running& r) { return r.done; }),
                running.end());
  running_ = int64_t(running.size());
}

}  // namespace taia::serve
