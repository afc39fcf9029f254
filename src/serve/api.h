// `taia serve`'s OpenAI API surface: a request body (POST /v1/chat/completions or
// /v1/completions) parsed and validated into one Completion request, and the OpenAI-shaped error
// every malformed request gets (docs/SERVING.md). Pure functions: no model, no sockets (the fuzz
// target drives parse_completion_request directly).
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "tokenizer/chat_template.h"

namespace taia::serve {

// An error the client caused or must see: HTTP status, OpenAI's error type and the field at fault.
struct ApiError : std::runtime_error {
  int status;
  std::string type, param;
  ApiError(int status, std::string type, const std::string& message, std::string param = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)) {}
};
// {"error": {"message", "type", "param", "code"}}.
std::string error_body(const ApiError& e);

// The models a server offers: "base", and "ADAPTER:MODE" per adapter and mode (vanilla, taia,
// taif; "ADAPTER" alone is ADAPTER:vanilla).
struct ModelChoice {
  std::string adapter;  // empty: the base model
  std::string mode;     // base, vanilla, taia, taif
};
std::vector<std::string> served_model_names(const std::vector<std::string>& adapters);
// The model a request names; `taia_mode`, when given, overrides the mode. Unknown: 404.
ModelChoice resolve_model(const std::string& model, const std::optional<std::string>& taia_mode,
                          const std::vector<std::string>& adapters);

struct Limits {
  int64_t max_body_bytes = 1 << 20;   // 413 beyond
  int64_t max_prompt_tokens = 0;      // 0: the context length minus one
  int64_t max_tokens = 4096;          // the most a request may ask for
  int64_t ctx = 0;                    // positions per request (prompt + reply); 0: min(4096, the model's)
};

struct Completion {
  bool chat = true;
  std::string model;                 // as the client named it (echoed in responses)
  ModelChoice choice;
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // completions
  int64_t max_tokens = 256;
  float temperature = 1.0f, top_p = 1.0f;  // OpenAI's defaults
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;
  bool stream = false, include_usage = false;
};

// Parses a request body. chat: /v1/chat/completions, else /v1/completions. Every problem is an
// ApiError 400 naming the field (invalid JSON or UTF-8 — nlohmann's parser rejects ill-formed
// bytes —, wrong types, unsupported fields such as n > 1 or tools, out-of-range values), 404 for
// an unknown model.
Completion parse_completion_request(const std::string& body, bool chat, const Limits& limits,
                                    const std::vector<std::string>& adapters);

// Equality in time independent of where the strings differ (the API key check).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace taia::serve
