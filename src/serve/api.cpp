#include "serve/api.h"

#include <algorithm>
#include <cmath>

#include "model/modes.h"

namespace taia::serve {
namespace {

ApiError bad(const std::string& param, const std::string& message) {
  return ApiError(400, "invalid_request_error", message, param);
}

// A value for a message: numbers and strings as written, anything else by its type (dump() of a
// deeply nested client value would recurse without bound).
std::string shown(const Json& v) {
  if (!v.is_primitive()) return v.type_name();
  const std::string text = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() > 64 ? text.substr(0, 64) + "..." : text;
}

double number_in(const Json& j, const char* key, double lo, double hi) {
  const Json& v = j[key];
  if (!v.is_number()) throw bad(key, std::string("'") + key + "' expected a number, got " + v.type_name());
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    throw bad(key, std::string("'") + key + "' expected a number in [" + Json(lo).dump() + ", " + Json(hi).dump() +
                       "], got " + shown(v));
  return x;
}

std::string text_content(const Json& content, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  if (content.is_string()) return content.get<std::string>();
  // The array form: text parts only.
  if (!content.is_array()) throw bad(where, "'" + where + "' expected a string or a list of text parts");
  std::string text;
  for (const Json& part : content) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string() || part["type"] != "text" ||
        !part.contains("text") || !part["text"].is_string())
      throw bad(where, "'" + where + "' parts expected {\"type\": \"text\", \"text\": ...} (other part types are "
                       "not supported)");
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> read_messages(const Json& j) {
  if (!j.contains("messages")) throw bad("messages", "missing field 'messages'");
  const Json& m = j["messages"];
  if (!m.is_array() || m.empty()) throw bad("messages", "'messages' expected a non-empty list");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < m.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m[i].is_object() || !m[i].contains("role") || !m[i]["role"].is_string() || !m[i].contains("content"))
      throw bad(where, "'" + where + "' expected {\"role\", \"content\"}");
    std::string role = m[i]["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      throw bad(where + ".role", "'" + where + ".role' expected system, user or assistant, got '" + role + "'");
    for (const auto& [k, v] : m[i].items())
      if (k != "role" && k != "content" && k != "name")
        throw bad(where + "." + k, "'" + where + "." + k + "' is not supported");
    out.push_back({role, text_content(m[i]["content"], i)});
  }
  return out;
}

std::vector<std::string> read_stop(const Json& v) {
  std::vector<std::string> stop;
  if (v.is_null()) return stop;
  if (v.is_string()) stop.push_back(v.get<std::string>());
  else if (v.is_array())
    for (const Json& s : v) {
      if (!s.is_string()) throw bad("stop", "'stop' expected a string or a list of strings");
      stop.push_back(s.get<std::string>());
    }
  else
    throw bad("stop", "'stop' expected a string or a list of strings, got " + std::string(v.type_name()));
  if (stop.size() > 4) throw bad("stop", "'stop' expected at most 4 sequences, got " + std::to_string(stop.size()));
  for (const auto& s : stop)
    if (s.empty()) throw bad("stop", "'stop' sequences expected non-empty");
  return stop;
}

void read_sampling(const Json& j, const Limits& limits, Completion* c) {
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (j.contains(key) && !j[key].is_null()) {
      const Json& v = j[key];
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > limits.max_tokens)
        throw bad(key, std::string("'") + key + "' expected an integer in 1.." + std::to_string(limits.max_tokens) +
                           ", got " + shown(v));
      c->max_tokens = v.get<int64_t>();
    }
  if (j.contains("temperature") && !j["temperature"].is_null())
    c->temperature = float(number_in(j, "temperature", 0.0, 2.0));
  if (j.contains("top_p") && !j["top_p"].is_null()) c->top_p = float(number_in(j, "top_p", 0.0, 1.0));
  if (c->top_p == 0.0f) throw bad("top_p", "'top_p' expected a number in (0, 1], got 0");
  if (j.contains("stop")) c->stop = read_stop(j["stop"]);
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) throw bad("seed", "'seed' expected an integer");
    c->seed = uint64_t(j["seed"].get<int64_t>());
  }
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) throw bad("stream", "'stream' expected true or false");
    c->stream = j["stream"].get<bool>();
  }
  if (j.contains("stream_options") && !j["stream_options"].is_null()) {
    const Json& o = j["stream_options"];
    if (!o.is_object() || (o.contains("include_usage") && !o["include_usage"].is_boolean()))
      throw bad("stream_options", "'stream_options' expected {\"include_usage\": true|false}");
    c->include_usage = o.value("include_usage", false);
  }
  if (j.contains("n") && !(j["n"].is_number_integer() && j["n"].get<int64_t>() == 1))
    throw bad("n", "'n' other than 1 is not supported (one choice per request)");
}

// Every field this server reads, per endpoint; the rest are refused by name. "user" changes
// nothing here; the penalties are accepted at OpenAI's default, 0, only.
void check_fields(const Json& j, bool chat) {
  static const std::vector<std::string> common = {"model", "max_tokens", "temperature", "top_p", "stop", "seed",
                                                  "stream", "stream_options", "n", "taia_mode", "user",
                                                  "frequency_penalty", "presence_penalty"};
  for (const auto& [k, v] : j.items()) {
    const bool known = std::find(common.begin(), common.end(), k) != common.end() ||
                       (chat && (k == "messages" || k == "max_completion_tokens")) || (!chat && k == "prompt");
    if (!known) throw bad(k, "'" + k + "' is not supported by taia serve (docs/SERVING.md lists the fields it reads)");
  }
  for (const char* k : {"frequency_penalty", "presence_penalty"})
    if (j.contains(k) && !j[k].is_null() && !(j[k].is_number() && j[k].get<double>() == 0))
      throw bad(k, std::string("'") + k + "' other than 0 is not supported");
}

}  // namespace

std::string error_body(const ApiError& e) {
  return Json{{"error", {{"message", e.what()},
                         {"type", e.type},
                         {"param", e.param.empty() ? Json(nullptr) : Json(e.param)},
                         {"code", nullptr}}}}
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::vector<std::string> served_model_names(const std::vector<std::string>& adapters) {
  std::vector<std::string> names{"base"};
  for (const auto& a : adapters)
    for (const auto& m : finetuned_mode_names()) names.push_back(a + ":" + m);
  return names;
}

ModelChoice resolve_model(const std::string& model, const std::optional<std::string>& taia_mode,
                          const std::vector<std::string>& adapters) {
  ModelChoice c;
  const size_t colon = model.rfind(':');
  std::string name = colon == std::string::npos ? model : model.substr(0, colon);
  c.mode = colon == std::string::npos ? (model == "base" ? "base" : "vanilla") : model.substr(colon + 1);
  if (name != "base") {
    if (std::find(adapters.begin(), adapters.end(), name) == adapters.end())
      throw ApiError(404, "model_not_found", "The model '" + model + "' does not exist; GET /v1/models lists them",
                     "model");
    c.adapter = name;
  }
  if (taia_mode) c.mode = *taia_mode;
  if (!is_named_mode(c.mode))
    throw bad(taia_mode ? "taia_mode" : "model", std::string("mode expected ") + kNamedModesWords + ", got '" + c.mode + "'");
  if (c.adapter.empty() && c.mode != "base")
    throw bad(taia_mode ? "taia_mode" : "model", "the base model has no '" + c.mode + "' mode; name an adapter");
  return c;
}

Completion parse_completion_request(const std::string& body, bool chat, const Limits& limits,
                                    const std::vector<std::string>& adapters) {
  if (int64_t(body.size()) > limits.max_body_bytes)
    throw ApiError(413, "invalid_request_error",
                   "request body of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                       std::to_string(limits.max_body_bytes));
  Json j;
  try {
    j = Json::parse(body);
  } catch (const std::exception& e) {
    throw bad("", std::string("request body expected JSON: ") + e.what());
  }
  if (!j.is_object()) throw bad("", "request body expected a JSON object");
  check_fields(j, chat);
  Completion c;
  c.chat = chat;
  if (!j.contains("model") || !j["model"].is_string()) throw bad("model", "missing field 'model' (a string)");
  c.model = j["model"].get<std::string>();
  std::optional<std::string> taia_mode;
  if (j.contains("taia_mode") && !j["taia_mode"].is_null()) {
    if (!j["taia_mode"].is_string()) throw bad("taia_mode", "'taia_mode' expected a string");
    taia_mode = j["taia_mode"].get<std::string>();
  }
  c.choice = resolve_model(c.model, taia_mode, adapters);
  if (chat) {
    c.messages = read_messages(j);
  } else {
    if (!j.contains("prompt")) throw bad("prompt", "missing field 'prompt'");
    const Json& p = j["prompt"];
    if (p.is_array() && p.size() == 1 && p[0].is_string()) c.prompt = p[0].get<std::string>();
    else if (p.is_string()) c.prompt = p.get<std::string>();
    else throw bad("prompt", "'prompt' expected a string (one prompt per request)");
  }
  c.max_tokens = std::min<int64_t>(c.max_tokens, limits.max_tokens);
  read_sampling(j, limits, &c);
  return c;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Compares the full length of the longer string whatever the contents.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = unsigned(a.size() != b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= unsigned(x ^ y);
  }
  return diff == 0;
}

}  // namespace taia::serve
