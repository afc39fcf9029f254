#include "train/data.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <numeric>

#include "core/error.h"
#include "core/json_util.h"
#include "core/mmap_file.h"
#include "core/rng.h"

namespace taia {
namespace {

std::string str_field(const Json& j, const char* key, const std::string& where, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    TAIA_CHECK(!required, where, ": missing field '", key, "'");
    return "";
  }
  TAIA_CHECK(it->is_string(), where, ": field '", key, "' expected a string, got ", it->type_name());
  return it->get<std::string>();
}

std::string role_of(const std::string& who, const std::string& where) {
  if (who == "human" || who == "user") return "user";
  if (who == "gpt" || who == "assistant" || who == "bot" || who == "model") return "assistant";
  if (who == "system") return "system";
  fail(where, ": role expected user/human, assistant/gpt or system, got '", who, "'");
}

Record parse_record(const Json& j, const std::string& where) {
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  Record r;
  r.origin = where;
  if (j.contains("instruction")) {  // Alpaca
    std::string prompt = str_field(j, "instruction", where, true);
    const std::string input = str_field(j, "input", where, false);
    if (!input.empty()) prompt += "\n\n" + input;
    const std::string system = str_field(j, "system", where, false);
    if (!system.empty()) r.messages.push_back({"system", system});
    r.messages.push_back({"user", prompt});
    r.messages.push_back({"assistant", str_field(j, "output", where, true)});
  } else if (j.contains("conversations") || j.contains("messages")) {  // ShareGPT / OpenAI
    const bool sharegpt = j.contains("conversations");
    const Json& turns = sharegpt ? j["conversations"] : j["messages"];
    TAIA_CHECK(turns.is_array() && !turns.empty(), where, ": '", sharegpt ? "conversations" : "messages",
               "' expected a non-empty list");
    for (size_t i = 0; i < turns.size(); ++i) {
      const std::string w = where + " turn " + std::to_string(i);
      TAIA_CHECK(turns[i].is_object(), w, ": expected an object");
      const std::string role = role_of(str_field(turns[i], sharegpt ? "from" : "role", w, true), w);
      r.messages.push_back({role, str_field(turns[i], sharegpt ? "value" : "content", w, true)});
    }
  } else if (j.contains("text")) {
    r.text = str_field(j, "text", where, true);
  } else {
    fail(where, ": expected Alpaca (instruction/output), ShareGPT (conversations), OpenAI chat (messages) or "
         "{\"text\"} fields");
  }
  if (!r.messages.empty()) {
    const bool has_reply =
        std::any_of(r.messages.begin(), r.messages.end(), [](const ChatMessage& m) { return m.role == "assistant"; });
    TAIA_CHECK(has_reply, where, ": the conversation has no assistant turn to learn from");
  }
  return r;
}

}  // namespace

std::vector<Record> load_records(const std::string& path, bool skip_bad, DataStats& stats) {
  TAIA_CHECK(file_exists(path) && !is_directory(path), path, ": no such data file");
  std::vector<Record> out;
  auto take = [&](const std::function<Record()>& parse) {
    try {
      out.push_back(parse());
    } catch (const Error& e) {
      if (!skip_bad) throw;
      ++stats.skipped_bad;
    }
  };
  const bool txt = path.size() > 4 && path.compare(path.size() - 4, 4, ".txt") == 0;
  if (txt) {
    const std::string all = read_text_file(path);
    size_t start = 0;
    while (start < all.size()) {
      size_t end = all.find("\n\n", start);
      if (end == std::string::npos) end = all.size();
      const std::string para = all.substr(start, end - start);
      if (para.find_first_not_of(" \t\r\n") != std::string::npos) {
        Record r;
        r.text = para;
        r.origin = path;
        out.push_back(std::move(r));
      }
      start = end + 2;
    }
  } else {
    for (const JsonRecord& r : read_json_records(path))
      take([&] {
        TAIA_CHECK(r.error.empty(), r.error);
        return parse_record(r.value, r.where);
      });
  }
  stats.records = int64_t(out.size());
  TAIA_CHECK(!out.empty(), path, ": no usable records", stats.skipped_bad ? " (all were bad and skipped)" : "");
  return out;
}

std::vector<Example> tokenize_records(const std::vector<Record>& records, const Tokenizer& tok,
                                      const ChatTemplate& chat_template, int64_t max_length, DataStats& stats) {
  TAIA_CHECK(max_length >= 2, "[data] max_length expected >= 2, got ", max_length);
  std::vector<Example> out;
  for (const Record& r : records) {
    std::vector<int32_t> ids;
    std::vector<uint8_t> mask;
    if (r.messages.empty()) {
      ids = tok.encode(r.text, /*add_special=*/true).ids;
      mask.assign(ids.size(), 1);
      if (!ids.empty() && tok.bos_id && ids[0] == *tok.bos_id) mask[0] = 0;
    } else {
      ChatEncoding c = encode_chat(tok, chat_template, r.messages, false);
      ids = std::move(c.ids);
      mask = std::move(c.mask);
    }
    if (int64_t(ids.size()) > max_length) {
      ids.resize(size_t(max_length));
      mask.resize(size_t(max_length));
      ++stats.truncated;
    }
    Example e;
    e.ids = ids;
    e.targets.assign(ids.size(), -1);
    int64_t trained = 0;
    for (size_t t = 0; t + 1 < ids.size(); ++t)
      if (mask[t + 1]) {
        e.targets[t] = ids[t + 1];
        ++trained;
      }
    if (trained == 0) {
      ++stats.dropped_no_target;
      continue;
    }
    stats.tokens += int64_t(ids.size());
    stats.target_tokens += trained;
    out.push_back(std::move(e));
  }
  TAIA_CHECK(!out.empty(), "[data] no example has a token to train on (", stats.dropped_no_target,
             " dropped; is --max-length too small for the prompts?)");
  return out;
}

std::vector<std::vector<size_t>> plan_step_batches(const std::vector<Example>& examples, int64_t global_batch,
                                                   uint64_t seed, int64_t epoch) {
  TAIA_CHECK(global_batch > 0, "[data] global batch expected > 0, got ", global_batch);
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), size_t(0));
  Rng rng(seed * 1000003ull + uint64_t(epoch));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng.next_u64() % i)]);
  const size_t mega = size_t(global_batch) * 50;
  for (size_t s = 0; s < order.size(); s += mega) {
    const auto b = order.begin() + long(s), e = order.begin() + long(std::min(order.size(), s + mega));
    std::stable_sort(b, e, [&](size_t x, size_t y) { return examples[x].ids.size() > examples[y].ids.size(); });
  }
  return split_micro_batches(order, global_batch);
}

std::vector<std::vector<size_t>> split_micro_batches(const std::vector<size_t>& step_examples, int64_t batch_size) {
  TAIA_CHECK(batch_size > 0, "[data] batch size expected > 0, got ", batch_size);
  std::vector<std::vector<size_t>> out;
  for (size_t s = 0; s < step_examples.size(); s += size_t(batch_size))
    out.emplace_back(step_examples.begin() + long(s),
                     step_examples.begin() + long(std::min(step_examples.size(), s + size_t(batch_size))));
  return out;
}

int64_t count_targets(const std::vector<Example>& examples, const std::vector<size_t>& indices) {
  int64_t n = 0;
  for (size_t i : indices)
    n += std::count_if(examples[i].targets.begin(), examples[i].targets.end(), [](int32_t t) { return t >= 0; });
  return n;
}

TrainBatch make_batch(const std::vector<Example>& examples, const std::vector<size_t>& indices, int32_t pad_id) {
  TrainBatch b;
  b.B = int64_t(indices.size());
  for (size_t i : indices) b.L = std::max<int64_t>(b.L, int64_t(examples[i].ids.size()));
  b.tokens.assign(size_t(b.B * b.L), pad_id);
  b.targets.assign(size_t(b.B * b.L), -1);
  b.lengths.reserve(indices.size());
  b.sequence_ids.reserve(indices.size());
  for (size_t r = 0; r < indices.size(); ++r) {
    const Example& e = examples[indices[r]];
    std::copy(e.ids.begin(), e.ids.end(), b.tokens.begin() + long(r * size_t(b.L)));
    std::copy(e.targets.begin(), e.targets.end(), b.targets.begin() + long(r * size_t(b.L)));
    b.lengths.push_back(int64_t(e.ids.size()));
    b.sequence_ids.push_back(int64_t(indices[r]));
  }
  return b;
}

}  // namespace taia
