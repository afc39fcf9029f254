#include "core/json_util.h"

#include <fstream>

#include "core/error.h"
#include "core/mmap_file.h"

namespace taia {

Json parse_json_text(const std::string& text, const std::string& origin) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    std::string what = e.what();
    // nlohmann's message starts with "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    const auto colon = what.find(": ");
    std::string reason = colon == std::string::npos ? what : what.substr(colon + 2);
    fail(origin, ": invalid JSON at byte ", e.byte, ": ", reason);
  } catch (const Json::exception& e) {  // e.g. out_of_range.406: a number too large for a double
    std::string what = e.what();
    const auto close = what.find("] ");
    fail(origin, ": invalid JSON: ", close == std::string::npos ? what : what.substr(close + 2));
  }
}

Json parse_json_file(const std::string& path) { return parse_json_text(read_text_file(path), path); }

namespace {
std::string brief(const Json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}
}  // namespace

int64_t json_int(const Json& obj, const char* key, const std::string& origin) {
  auto it = obj.find(key);
  TAIA_CHECK(it != obj.end(), origin, ": missing required field '", key, "'");
  TAIA_CHECK(it->is_number_integer(), origin, ": field '", key, "' expected an integer, got ", brief(*it));
  return it->get<int64_t>();
}

double json_number(const Json& obj, const char* key, const std::string& origin) {
  auto it = obj.find(key);
  TAIA_CHECK(it != obj.end(), origin, ": missing required field '", key, "'");
  TAIA_CHECK(it->is_number(), origin, ": field '", key, "' expected a number, got ", brief(*it));
  return it->get<double>();
}

std::string json_string(const Json& obj, const char* key, const std::string& origin) {
  auto it = obj.find(key);
  TAIA_CHECK(it != obj.end(), origin, ": missing required field '", key, "'");
  TAIA_CHECK(it->is_string(), origin, ": field '", key, "' expected a string, got ", brief(*it));
  return it->get<std::string>();
}

std::vector<double> json_numbers(const Json& obj, const char* key, const std::string& origin) {
  auto it = obj.find(key);
  TAIA_CHECK(it != obj.end(), origin, ": missing required field '", key, "'");
  TAIA_CHECK(it->is_array(), origin, ": field '", key, "' expected an array of numbers, got ", brief(*it));
  std::vector<double> out;
  for (const Json& x : *it) {
    TAIA_CHECK(x.is_number(), origin, ": field '", key, "'[", out.size(), "] expected a number, got ", brief(x));
    out.push_back(x.get<double>());
  }
  return out;
}

int64_t json_int_or(const Json& obj, const char* key, int64_t fallback, const std::string& origin) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  TAIA_CHECK(it->is_number_integer(), origin, ": field '", key, "' expected an integer, got ", brief(*it));
  return it->get<int64_t>();
}

double json_number_or(const Json& obj, const char* key, double fallback, const std::string& origin) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  TAIA_CHECK(it->is_number(), origin, ": field '", key, "' expected a number, got ", brief(*it));
  return it->get<double>();
}

bool json_bool_or(const Json& obj, const char* key, bool fallback, const std::string& origin) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  TAIA_CHECK(it->is_boolean(), origin, ": field '", key, "' expected true or false, got ", brief(*it));
  return it->get<bool>();
}

std::string json_string_or(const Json& obj, const char* key, const std::string& fallback, const std::string& origin) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  TAIA_CHECK(it->is_string(), origin, ": field '", key, "' expected a string, got ", brief(*it));
  return it->get<std::string>();
}

std::vector<JsonRecord> read_json_records(const std::string& path) {
  std::ifstream in(path);
  TAIA_CHECK(in.good(), path, ": cannot open");
  std::vector<JsonRecord> out;
  const int first = (in >> std::ws).peek();
  if (first == '[') {  // one JSON array
    Json arr = parse_json_file(path);
    TAIA_CHECK(arr.is_array(), path, ": expected a JSON array of records");
    for (size_t i = 0; i < arr.size(); ++i)
      out.push_back({path + ": record " + std::to_string(i), std::move(arr[i]), ""});
    return out;
  }
  in.clear();
  in.seekg(0);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    JsonRecord r;
    r.where = path + ":" + std::to_string(n);
    try {
      r.value = parse_json_text(line, r.where);
    } catch (const Error& e) {
      r.error = e.what();
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace taia
