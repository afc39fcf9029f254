// CSV as RFC 4180 writes it (and as MMLU and AdvBench ship it): comma-separated fields, fields
// in double quotes may hold commas, newlines and doubled quotes (""), CRLF or LF line ends.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace taia {

struct CsvRow {
  int64_t line;  // 1-based line where the row starts
  std::vector<std::string> fields;
};

// Parses the whole text; blank lines are skipped. Throws "<origin>:LINE: ..." for a quote that
// never closes or text after a closing quote.
std::vector<CsvRow> parse_csv(const std::string& text, const std::string& origin);

}  // namespace taia
