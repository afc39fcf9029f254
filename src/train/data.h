// Training data: Alpaca, ShareGPT, OpenAI chat (JSON array or JSON Lines) and plain text,
// tokenized through the chat template with the assistant-token mask, truncated, and grouped
// by length into padded micro-batches.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "train/engine.h"

namespace taia {

struct Record {
  std::vector<ChatMessage> messages;  // empty for plain text
  std::string text;                   // plain text (language-model training)
  std::string origin;                 // "file:line" for messages
};

struct DataStats {
  int64_t records = 0, skipped_bad = 0, truncated = 0, dropped_no_target = 0, tokens = 0, target_tokens = 0;
};

// Reads every record. A bad record throws "file:line: reason", unless skip_bad_records, which
// counts it in stats.skipped_bad. A .txt file is one plain-text record per blank-line-separated
// paragraph.
std::vector<Record> load_records(const std::string& path, bool skip_bad_records, DataStats& stats);

struct Example {
  std::vector<int32_t> ids;
  std::vector<int32_t> targets;  // targets[t] = ids[t+1] if trained, else -1
};

// Tokenizes records: chat records through the template (loss on assistant tokens), text records
// with BOS and loss on every token. Sequences longer than max_length are cut (counted); examples
// left without any trained token are dropped (counted).
std::vector<Example> tokenize_records(const std::vector<Record>& records, const Tokenizer& tok,
                                      const ChatTemplate& chat_template, int64_t max_length, DataStats& stats);

// The optimizer steps of one epoch, each the example indices of one global batch (batch size x
// gradient accumulation x ranks sequences): shuffled with (seed, epoch), then grouped by length
// (sorted inside mega-batches of 50 global batches, as HF's group_by_length) and cut. It depends on
// the global batch alone, so every split of it into micro-batches and ranks trains on the same
// sequences in each step.
std::vector<std::vector<size_t>> plan_step_batches(const std::vector<Example>& examples, int64_t global_batch,
                                                   uint64_t seed, int64_t epoch);
// One step's examples cut into micro-batches of `batch_size` (the last may be shorter), in order:
// the step's length grouping keeps each micro-batch's lengths close.
std::vector<std::vector<size_t>> split_micro_batches(const std::vector<size_t>& step_examples, int64_t batch_size);
// Target tokens of these examples: the divisor of the step's token-mean loss.
int64_t count_targets(const std::vector<Example>& examples, const std::vector<size_t>& indices);
TrainBatch make_batch(const std::vector<Example>& examples, const std::vector<size_t>& indices, int32_t pad_id);

}  // namespace taia
