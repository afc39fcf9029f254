#include "common.h"

#include <iostream>

#include "core/error.h"
#include "core/threading.h"

namespace taia::cli {

void add_format_option(CLI::App* cmd, OutputFormat* format) {
  static const std::map<std::string, OutputFormat> names{{"text", OutputFormat::Text}, {"json", OutputFormat::Json}};
  cmd->add_option("--format", *format, "Output format: text or json")
      ->transform(CLI::CheckedTransformer(names, CLI::ignore_case))
      ->default_str("text");
}

void add_threads_option(CLI::App* cmd, int* threads) {
  cmd->add_option("-t,--threads", *threads, "Worker threads (0: all cores)")->check(CLI::Range(0, 4096))->default_val(0);
}

void add_dtype_option(CLI::App* cmd, std::string* dtype, const char* help) {
  cmd->add_option("--dtype", *dtype, help)->check(CLI::IsMember({"auto", "f32", "bf16"}))->default_val("auto");
}

std::vector<int32_t> parse_id_list(const std::string& text, const char* option) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= text.size()) {
    size_t comma = text.find(',', i);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(i, comma - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX)
      throw CLI::ValidationError(option, "expected comma-separated non-negative token ids, got '" + item + "'");
    ids.push_back(int32_t(v));
    i = comma + 1;
  }
  return ids;
}

std::optional<DType> dtype_option(const std::string& value) {
  if (value.empty() || value == "auto") return std::nullopt;
  return parse_dtype(value);
}

std::unique_ptr<Model> load_for_run(const std::string& path, const std::string& dtype, int threads) {
  set_num_threads(threads);
  LoadOptions options;
  options.linear_dtype = dtype_option(dtype);
  return load_model(path, options);
}

void check_ids_in_vocab(const std::vector<int32_t>& ids, const ModelConfig& c, const std::string& model_path) {
  for (size_t i = 0; i < ids.size(); ++i)
    TAIA_CHECK(ids[i] < c.vocab_size, "prompt id ", ids[i], " at index ", i, " is outside the vocabulary of ",
               model_path, " (", c.vocab_size, " tokens)");
}

void print_json(const Json& j) { std::cout << j.dump() << std::endl; }

}  // namespace taia::cli
