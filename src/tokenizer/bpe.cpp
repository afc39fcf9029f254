#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace taia {

namespace {
constexpr size_t kCacheLimit = 200000;
uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
}  // namespace

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, const BpeOptions& options,
                   const std::string& origin)
    : vocab_(std::move(vocab)), options_(options) {
  merges_.reserve(merges.size());
  std::string joined;  // a + b, one buffer for every merge
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    joined.assign(a).append(b);
    auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(joined);
    TAIA_CHECK(ia != vocab_.end() && ib != vocab_.end(), origin, ": merge ", r, " ('", a, "', '", b,
               "') names a piece that is not in the vocabulary");
    TAIA_CHECK(im != vocab_.end(), origin, ": merge ", r, " ('", a, "', '", b, "') makes '", a + b,
               "', which is not in the vocabulary");
    merges_.emplace(pair_key(ia->second, ib->second), Merge{int32_t(r), im->second});  // first rank wins
  }
  byte_ids_.assign(256, -1);
  if (options_.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      if (auto it = vocab_.find(name); it != vocab_.end()) byte_ids_[size_t(b)] = it->second;
    }
  }
}

std::optional<int32_t> BpeModel::find(std::string_view piece) const {
  auto it = vocab_.find(std::string(piece));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids, std::vector<uint32_t>& chars) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto it = vocab_.find(std::string(word)); it != vocab_.end()) {
      ids.push_back(it->second);
      chars.push_back(uint32_t(utf8_chars(word).size()));
      return;
    }
  }
  if (cached(word, ids, chars)) return;
  std::vector<Symbol> sym = initial_symbols(word);
  apply_merges(sym);
  std::vector<int32_t> out_ids;
  std::vector<uint32_t> out_chars;
  for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[size_t(i)].next) {
    out_ids.push_back(sym[size_t(i)].id);
    out_chars.push_back(sym[size_t(i)].chars);
  }
  ids.insert(ids.end(), out_ids.begin(), out_ids.end());
  chars.insert(chars.end(), out_chars.begin(), out_chars.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheLimit) cache_.clear();
  cache_.emplace(std::string(word), std::make_pair(std::move(out_ids), std::move(out_chars)));
}

bool BpeModel::cached(std::string_view word, std::vector<int32_t>& ids, std::vector<uint32_t>& chars) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  auto it = cache_.find(std::string(word));
  if (it == cache_.end()) return false;
  ids.insert(ids.end(), it->second.first.begin(), it->second.first.end());
  chars.insert(chars.end(), it->second.second.begin(), it->second.second.end());
  return true;
}

// One symbol per character (or per byte with byte fallback; an unknown character becomes the
// unknown token, fused with a preceding one under fuse_unk, or is dropped without one, as HF's
// BPE does), linked in order.
std::vector<BpeModel::Symbol> BpeModel::initial_symbols(std::string_view word) const {
  std::vector<Symbol> sym;
  for (std::string_view c : utf8_chars(word)) {
    auto it = vocab_.find(std::string(c));
    if (it != vocab_.end()) {
      sym.push_back({it->second, 0, 0, 1, true});
      continue;
    }
    bool all_bytes = options_.byte_fallback;
    for (char b : c) all_bytes = all_bytes && byte_ids_[uint8_t(b)] >= 0;
    if (all_bytes) {
      for (size_t k = 0; k < c.size(); ++k) sym.push_back({byte_ids_[uint8_t(c[k])], 0, 0, k == 0 ? 1u : 0u, true});
    } else if (options_.unk_id) {
      if (options_.fuse_unk && !sym.empty() && sym.back().id == *options_.unk_id)
        sym.back().chars += 1;
      else
        sym.push_back({*options_.unk_id, 0, 0, 1, true});
    }
  }
  const int32_t n = int32_t(sym.size());
  for (int32_t i = 0; i < n; ++i) {
    sym[size_t(i)].prev = i - 1;
    sym[size_t(i)].next = i + 1 < n ? i + 1 : -1;
  }
  return sym;
}

// Merges by rank, leftmost first among equal ranks: candidates in a heap, stale entries skipped
// when popped.
void BpeModel::apply_merges(std::vector<Symbol>& sym) const {
  struct Cand { int32_t rank, pos, left_id, right_id; };
  auto worse = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto push = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = sym[size_t(left)].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(sym[size_t(left)].id, sym[size_t(right)].id));
    if (it != merges_.end()) heap.push({it->second.rank, left, sym[size_t(left)].id, sym[size_t(right)].id});
  };
  for (int32_t i = 0; i + 1 < int32_t(sym.size()); ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Symbol& L = sym[size_t(c.pos)];
    if (!L.alive || L.id != c.left_id || L.next < 0) continue;
    Symbol& R = sym[size_t(L.next)];
    if (R.id != c.right_id) continue;
    L.id = merges_.at(pair_key(c.left_id, c.right_id)).id;
    L.chars += R.chars;
    R.alive = false;
    L.next = R.next;
    if (R.next >= 0) sym[size_t(R.next)].prev = c.pos;
    push(L.prev);
    push(c.pos);
  }
}

}  // namespace taia
