// JSON file reading with errors that name the file and the byte position.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace taia {

using Json = nlohmann::json;

// Parses text; on error throws "<origin>: invalid JSON at byte N: <reason>".
Json parse_json_text(const std::string& text, const std::string& origin);
Json parse_json_file(const std::string& path);

// Typed accessors that throw "<origin>: field 'key' expected <type>, got <json>".
int64_t json_int(const Json& obj, const char* key, const std::string& origin);
int64_t json_int_or(const Json& obj, const char* key, int64_t fallback, const std::string& origin);
double json_number_or(const Json& obj, const char* key, double fallback, const std::string& origin);
bool json_bool_or(const Json& obj, const char* key, bool fallback, const std::string& origin);
std::string json_string_or(const Json& obj, const char* key, const std::string& fallback, const std::string& origin);

}  // namespace taia
