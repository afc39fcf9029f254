// Answer extraction and comparison for generative tasks, and refusal detection, following the
// TAIA paper's evaluation: "The answer is X", then \boxed{...}, then the option letter (multiple
// choice) or GSM8K's "#### N" and the last number (numeric tasks); numbers match within 1e-3, text after
// normalisation (case, spaces, $...$, \left/\right, \dfrac, a trailing period, parentheses).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace taia {

struct AnswerStyle {
  bool numeric = false;             // fall back to the last number in the reply
  std::vector<std::string> labels;  // option letters: extract a letter
};

struct Extracted {
  std::string answer;
  std::string rule;  // "answer_is", "boxed", "letter", "hashes" (GSM8K's "#### N"), "last_number"
};

std::optional<Extracted> extract_answer(const std::string& reply, const AnswerStyle& style);

std::string normalize_answer(const std::string& s);
// A number written as 1,234 / -3.5 / 3/4 / \frac{3}{4} / $12 / 50%; nullopt otherwise.
std::optional<double> parse_number(const std::string& s);
bool answers_match(const std::string& predicted, const std::string& gold);

// The 29 refusal phrases of the official red-teaming evaluation (substring match, case-sensitive).
const std::vector<std::string>& default_refusal_phrases();
bool is_refusal(const std::string& reply, const std::vector<std::string>& phrases);

}  // namespace taia
