#include "tokenizer/spm.h"

#include <cstdio>
#include <queue>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace taia {

SpmModel::SpmModel(const std::vector<std::string>& pieces, const std::vector<float>& scores,
                   const std::vector<int32_t>& types, std::optional<int32_t> unk_id, const std::string& origin)
    : scores_(scores), unk_id_(unk_id) {
  TAIA_CHECK(scores.size() == pieces.size() && types.size() == pieces.size(), origin,
             ": expected as many scores (", scores.size(), ") and token types (", types.size(), ") as tokens (",
             pieces.size(), ")");
  byte_ids_.assign(256, -1);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto type = PieceType(types[i]);
    if (type == PieceType::Normal || type == PieceType::UserDefined) mergeable_.emplace(pieces[i], int32_t(i));
    if (type == PieceType::Byte) {
      unsigned b = 0;
      if (pieces[i].size() == 6 && std::sscanf(pieces[i].c_str(), "<0x%02X>", &b) == 1 && b < 256)
        byte_ids_[b] = int32_t(i);
    }
  }
}

void SpmModel::encode(std::string_view text, std::vector<int32_t>& ids, std::vector<uint32_t>& chars) const {
  struct Symbol { size_t begin, len; int32_t prev, next; uint32_t chars; bool alive; };
  std::vector<Symbol> sym;
  size_t pos = 0;
  for (std::string_view c : utf8_chars(text)) {
    sym.push_back({pos, c.size(), 0, 0, 1, true});
    pos += c.size();
  }
  const int32_t n = int32_t(sym.size());
  for (int32_t i = 0; i < n; ++i) {
    sym[size_t(i)].prev = i - 1;
    sym[size_t(i)].next = i + 1 < n ? i + 1 : -1;
  }
  struct Cand { float score; int32_t left; size_t len; };
  auto worse = [](const Cand& a, const Cand& b) { return a.score != b.score ? a.score < b.score : a.left > b.left; };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto push = [&](int32_t left) {
    if (left < 0 || sym[size_t(left)].next < 0) return;
    const Symbol& L = sym[size_t(left)];
    const Symbol& R = sym[size_t(L.next)];
    auto it = mergeable_.find(std::string(text.substr(L.begin, L.len + R.len)));
    if (it != mergeable_.end()) heap.push({scores_[size_t(it->second)], left, L.len + R.len});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Symbol& L = sym[size_t(c.left)];
    if (!L.alive || L.next < 0 || L.len + sym[size_t(L.next)].len != c.len) continue;  // stale
    Symbol& R = sym[size_t(L.next)];
    L.len += R.len;
    L.chars += R.chars;
    R.alive = false;
    L.next = R.next;
    if (R.next >= 0) sym[size_t(R.next)].prev = c.left;
    push(L.prev);
    push(c.left);
  }
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = sym[size_t(i)].next) {
    const Symbol& s = sym[size_t(i)];
    const std::string_view piece = text.substr(s.begin, s.len);
    if (auto it = mergeable_.find(std::string(piece)); it != mergeable_.end()) {
      ids.push_back(it->second);
      chars.push_back(s.chars);
      continue;
    }
    bool all_bytes = true;
    for (char b : piece) all_bytes = all_bytes && byte_ids_[uint8_t(b)] >= 0;
    if (all_bytes) {
      for (size_t k = 0; k < piece.size(); ++k) {
        ids.push_back(byte_ids_[uint8_t(piece[k])]);
        chars.push_back(k == 0 ? s.chars : 0);
      }
    } else if (unk_id_) {
      ids.push_back(*unk_id_);
      chars.push_back(s.chars);
    }
  }
}

}  // namespace taia
