#include "eval/scoring.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "generate/sampling.h"

namespace taia {
namespace {

// Logits are [rows, V] floats; keep one pass's share under this many floats (256 MB).
constexpr int64_t kLogitBudget = int64_t(1) << 26;

double log_sum_exp(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - double(m));
  return double(m) + std::log(s);
}

KeySpans one_span(int64_t begin, int64_t end) {
  KeySpans s;
  s.begin[0] = begin;
  s.end[0] = end;
  return s;
}

}  // namespace

namespace {

// Each request's (possibly left-cut) context and the rows it needs in a packed pass.
struct LoglikLayout {
  std::vector<std::vector<int32_t>> contexts;  // [requests] context tokens kept
  std::vector<int64_t> rows;                   // [requests] packed rows (context + every continuation)
  std::vector<int64_t> logit_rows;             // [requests] rows whose logits are read
};

LoglikLayout lay_out_requests(const std::vector<LoglikRequest>& requests, int64_t max_pos) {
  LoglikLayout l;
  l.contexts.resize(requests.size());
  l.rows.resize(requests.size());
  l.logit_rows.resize(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) {
    const LoglikRequest& q = requests[r];
    TAIA_CHECK(!q.context.empty(), "[score_loglik] request ", r, ": empty context");
    size_t longest = 0;
    int64_t rows = 0, logit_rows = 1;  // the context's last row predicts every continuation's first token
    for (const auto& cont : q.continuations) {
      TAIA_CHECK(!cont.empty(), "[score_loglik] request ", r, ": empty continuation");
      longest = std::max(longest, cont.size());
      rows += int64_t(cont.size());
      logit_rows += int64_t(cont.size()) - 1;
    }
    TAIA_CHECK(int64_t(longest) < max_pos, "[score_loglik] request ", r, ": a continuation of ", longest,
               " tokens does not fit the model's ", max_pos, " positions");
    const size_t keep = std::min(q.context.size(), size_t(max_pos) - longest);
    l.contexts[r].assign(q.context.end() - int64_t(keep), q.context.end());
    l.rows[r] = rows + int64_t(keep);
    l.logit_rows[r] = logit_rows;
  }
  return l;
}

// The end of the pass that starts at request r0: up to batch_size requests within the logits
// budget (at least one).
size_t pass_end(const LoglikLayout& l, size_t r0, int64_t batch_size, int64_t V) {
  size_t r1 = r0;
  int64_t logit_rows = 0;
  while (r1 < l.rows.size() && int64_t(r1 - r0) < batch_size &&
         (r1 == r0 || (logit_rows + l.logit_rows[r1]) * V <= kLogitBudget))
    logit_rows += l.logit_rows[r1++];
  return r1;
}

// A scored token: its request, continuation, and the packed row that predicts it.
struct ScoredToken {
  size_t r, k;
  int64_t row;
  int32_t token;
};

// Packs requests [r0, r1): each context once, every continuation after it attending to the
// context and to itself. Returns the tokens to score; pb.logit_rows lists their rows, once each.
std::vector<ScoredToken> pack_pass(const std::vector<LoglikRequest>& requests, const LoglikLayout& l, size_t r0,
                                   size_t r1, PackedBatch& pb) {
  pb.clear();
  std::vector<ScoredToken> scored;
  int64_t slot = 0;
  for (size_t r = r0; r < r1; ++r) {
    const auto& ctx = l.contexts[r];
    const int64_t base = slot, P = int64_t(ctx.size());
    int64_t last_ctx_row = -1;
    for (int64_t i = 0; i < P; ++i, ++slot) last_ctx_row = pb.add(ctx[size_t(i)], i, slot, one_span(base, slot + 1));
    for (size_t k = 0; k < requests[r].continuations.size(); ++k) {
      const auto& cont = requests[r].continuations[k];
      const int64_t start = slot;
      int64_t prev_row = last_ctx_row;
      for (size_t j = 0; j < cont.size(); ++j, ++slot) {
        scored.push_back({r, k, prev_row, cont[j]});
        KeySpans sp = one_span(base, base + P);
        sp.begin[1] = start;
        sp.end[1] = slot + 1;
        prev_row = pb.add(cont[j], P + int64_t(j), slot, sp);
      }
    }
  }
  std::set<int64_t> rows;
  for (const ScoredToken& s : scored) rows.insert(s.row);
  pb.logit_rows.assign(rows.begin(), rows.end());
  return scored;
}

// Adds log p(token) and the argmax test of every scored token to its request's result.
void add_scores(const std::vector<ScoredToken>& scored, const std::vector<int64_t>& logit_rows,
                const std::vector<float>& logits, int64_t V, std::vector<LoglikResult>& results) {
  std::vector<double> lse(logit_rows.size());
  std::vector<int32_t> best(logit_rows.size());
  for (size_t i = 0; i < lse.size(); ++i) {
    lse[i] = log_sum_exp(logits.data() + int64_t(i) * V, V);
    best[i] = argmax(logits.data() + int64_t(i) * V, V);
  }
  for (const ScoredToken& s : scored) {
    const size_t i = size_t(std::lower_bound(logit_rows.begin(), logit_rows.end(), s.row) - logit_rows.begin());
    TAIA_CHECK(s.token >= 0 && s.token < V, "[score_loglik] token id ", s.token, " outside the vocabulary (", V, ")");
    results[s.r].logprob[s.k] += double(logits[i * size_t(V) + size_t(s.token)]) - lse[i];
    if (best[i] != s.token) results[s.r].greedy[s.k] = false;
  }
}

}  // namespace

std::vector<LoglikResult> score_loglik(Decoder& decoder, const std::vector<LoglikRequest>& requests,
                                       int64_t batch_size, const ProgressFn& progress) {
  const ModelConfig& c = decoder.model().config;
  const int64_t V = c.vocab_size;
  TAIA_CHECK(batch_size >= 1, "[score_loglik] batch_size expected >= 1, got ", batch_size);
  const LoglikLayout layout = lay_out_requests(requests, c.max_position_embeddings);
  std::vector<LoglikResult> results(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) {
    results[r].logprob.assign(requests[r].continuations.size(), 0.0);
    results[r].greedy.assign(requests[r].continuations.size(), true);
  }
  PackedBatch pb;
  std::vector<float> logits;  // [logit rows, V]
  for (size_t r0 = 0; r0 < requests.size();) {
    const size_t r1 = pass_end(layout, r0, batch_size, V);
    const std::vector<ScoredToken> scored = pack_pass(requests, layout, r0, r1, pb);
    int64_t slots = 0;
    for (size_t r = r0; r < r1; ++r) slots += layout.rows[r];
    KVCache cache(c, slots, 0, decoder.kv_dtype());
    logits.resize(size_t(int64_t(pb.logit_rows.size()) * V));
    decoder.forward_packed(cache, pb, logits.data());
    add_scores(scored, pb.logit_rows, logits, V, results);
    r0 = r1;
    if (progress) progress(r0);
  }
  return results;
}

std::vector<std::vector<int32_t>> generate_greedy(Decoder& decoder, const std::vector<GenerationRequest>& requests,
                                                  const GreedyOptions& options, int64_t batch_size) {
  const ModelConfig& c = decoder.model().config;
  const int64_t V = c.vocab_size, max_pos = c.max_position_embeddings;
  const int64_t max_new = options.max_new_tokens;
  TAIA_CHECK(batch_size >= 1, "[generate_greedy] batch_size expected >= 1, got ", batch_size);
  TAIA_CHECK(max_new >= 1 && max_new < max_pos, "[generate_greedy] max_new_tokens expected in 1..", max_pos - 1,
             ", got ", max_new);
  std::vector<std::vector<int32_t>> outputs(requests.size());
  PackedBatch pb;
  std::vector<float> logits;
  const int64_t per_pass = std::max<int64_t>(1, std::min<int64_t>(batch_size, kLogitBudget / V));
  for (size_t r0 = 0; r0 < requests.size(); r0 += size_t(per_pass)) {
    const size_t r1 = std::min(requests.size(), r0 + size_t(per_pass));
    const size_t n = r1 - r0;
    std::vector<int64_t> base(n), len(n);
    std::vector<bool> active(n, true);
    pb.clear();
    int64_t slot = 0;
    for (size_t i = 0; i < n; ++i) {
      const auto& prompt = requests[r0 + i].prompt;
      TAIA_CHECK(!prompt.empty(), "[generate_greedy] request ", r0 + i, ": empty prompt");
      const size_t keep = std::min(prompt.size(), size_t(max_pos - max_new));  // cut on the left
      base[i] = slot;
      int64_t last_row = -1;
      for (size_t t = prompt.size() - keep; t < prompt.size(); ++t) {
        last_row = pb.add(prompt[t], slot - base[i], slot, one_span(base[i], slot + 1));
        ++slot;
      }
      len[i] = int64_t(keep);
      pb.logit_rows.push_back(last_row);
      slot += max_new;  // room for the reply
    }
    KVCache cache(c, slot, 0, decoder.kv_dtype());
    for (;;) {
      logits.resize(pb.logit_rows.size() * size_t(V));
      decoder.forward_packed(cache, pb, logits.data());
      std::vector<size_t> order;  // requests of this pass's rows, in row order
      for (size_t i = 0; i < n; ++i)
        if (active[i]) order.push_back(i);
      pb.clear();
      for (size_t a = 0; a < order.size(); ++a) {
        const size_t i = order[a];
        const float* row = logits.data() + a * size_t(V);
        const int32_t next = argmax(row, options.vocab_limit > 0 ? std::min(V, options.vocab_limit) : V);
        auto& out = outputs[r0 + i];
        const bool eos = std::find(options.eos_ids.begin(), options.eos_ids.end(), next) != options.eos_ids.end();
        if (!eos) out.push_back(next);
        if (eos || int64_t(out.size()) >= max_new || (options.stop && options.stop(r0 + i, out))) {
          active[i] = false;
          continue;
        }
        const int64_t s = base[i] + len[i];
        pb.logit_rows.push_back(pb.add(next, len[i], s, one_span(base[i], s + 1)));
        ++len[i];
      }
      if (pb.size() == 0) break;
    }
    if (options.progress) options.progress(r1);
  }
  return outputs;
}

std::vector<double> token_logprobs(Decoder& decoder, const std::vector<int32_t>& ids, int64_t window) {
  const ModelConfig& c = decoder.model().config;
  const int64_t V = c.vocab_size, n = int64_t(ids.size());
  TAIA_CHECK(window >= 2 && window <= c.max_position_embeddings, "[token_logprobs] window expected in 2..",
             c.max_position_embeddings, ", got ", window);
  std::vector<double> out;
  if (n < 2) return out;
  const int64_t piece = std::max<int64_t>(1, std::min<int64_t>(window, kLogitBudget / V));
  std::vector<float> logits;
  KVCache cache(c, window, 0, decoder.kv_dtype());
  for (int64_t s = 0; s < n - 1; s += window) {
    const int64_t e = std::min(s + window, n - 1);  // inputs ids[s, e), targets ids[s+1, e]
    cache.clear();
    for (int64_t p = s; p < e; p += piece) {
      const int64_t m = std::min(piece, e - p);
      logits.resize(size_t(m * V));
      decoder.forward(cache, ids.data() + p, m, logits.data(), true);
      for (int64_t t = 0; t < m; ++t) {
        const float* row = logits.data() + t * V;
        const int32_t target = ids[size_t(p + t + 1)];
        TAIA_CHECK(target >= 0 && target < V, "[token_logprobs] token id ", target, " outside the vocabulary");
        out.push_back(double(row[target]) - log_sum_exp(row, V));
      }
    }
  }
  return out;
}

std::vector<double> token_logprobs_llama_cpp(Decoder& decoder, const std::vector<int32_t>& ids, int64_t window,
                                             int32_t bos) {
  const ModelConfig& c = decoder.model().config;
  const int64_t V = c.vocab_size;
  TAIA_CHECK(window >= 4 && window <= c.max_position_embeddings, "[token_logprobs_llama_cpp] window expected in 4..",
             c.max_position_embeddings, ", got ", window);
  std::vector<double> out;
  std::vector<int32_t> chunk(static_cast<size_t>(window));
  std::vector<float> logits(static_cast<size_t>(window * V));
  KVCache cache(c, window, 0, decoder.kv_dtype());
  const int64_t first = window / 2;
  for (int64_t start = 0; start + window <= int64_t(ids.size()); start += window) {
    std::copy(ids.begin() + start, ids.begin() + start + window, chunk.begin());
    if (bos >= 0) chunk[0] = bos;
    cache.clear();
    decoder.forward(cache, chunk.data(), window, logits.data(), true);
    for (int64_t j = first; j < window - 1; ++j) {
      const float* row = logits.data() + j * V;
      const int32_t target = chunk[size_t(j + 1)];
      TAIA_CHECK(target >= 0 && target < V, "[token_logprobs] token id ", target, " outside the vocabulary");
      out.push_back(double(row[target]) - log_sum_exp(row, V));
    }
  }
  return out;
}

}  // namespace taia
