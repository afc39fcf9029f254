// JSON file reading with errors that name the file and the byte position.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace taia {

using Json = nlohmann::json;

// Parses text; on error throws "<origin>: invalid JSON at byte N: <reason>".
Json parse_json_text(const std::string& text, const std::string& origin);
Json parse_json_file(const std::string& path);

// The records of a JSON array file or a JSON Lines file (blank lines skipped). `where` is
// "file:line" (JSON Lines) or "file: record i" (array, 0-based). A line that is not valid JSON
// comes back with `error` set and a null value, so that callers can stop or skip it.
struct JsonRecord {
  std::string where;
  Json value;
  std::string error;
};
std::vector<JsonRecord> read_json_records(const std::string& path);

// Typed accessors that throw "<origin>: field 'key' expected <type>, got <json>".
// Without _or: the field is required ("<origin>: missing required field 'key'").
int64_t json_int(const Json& obj, const char* key, const std::string& origin);
double json_number(const Json& obj, const char* key, const std::string& origin);
std::string json_string(const Json& obj, const char* key, const std::string& origin);
// An array of numbers.
std::vector<double> json_numbers(const Json& obj, const char* key, const std::string& origin);
int64_t json_int_or(const Json& obj, const char* key, int64_t fallback, const std::string& origin);
double json_number_or(const Json& obj, const char* key, double fallback, const std::string& origin);
bool json_bool_or(const Json& obj, const char* key, bool fallback, const std::string& origin);
std::string json_string_or(const Json& obj, const char* key, const std::string& fallback, const std::string& origin);

}  // namespace taia
