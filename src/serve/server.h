// `taia serve`: the OpenAI-compatible HTTP server (serve/http.h) around one loaded base, its
// adapters and the batching engine. Endpoints: GET /health, GET /metrics, GET /v1/models and
// /v1/models/{id}, POST /v1/chat/completions and /v1/completions (JSON or server-sent events),
// GET / POST /v1/adapters and DELETE /v1/adapters/{name} (serve/adapter_registry.h).
// Every request gets a random id (X-Request-Id) and a JSON access-log line; the browser policy
// (serve/policy.h) runs before every route; SIGTERM / SIGINT drain. docs/SERVING.md.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "model/lora.h"
#include "model/weights.h"
#include "serve/api.h"
#include "serve/http.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace taia::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> api_keys;  // any of them is accepted; empty: no key asked
  int64_t parallel = 4;       // jobs decoded together
  HttpLimits http;            // backlog, connections, header limits, --request-timeout (its body limit: limits')
  int64_t max_queue = 0;      // requests waiting for a slot; more are refused with 429 (0: 4 x parallel)
  DecoderSettings decoder;    // --compute, --exact-activations, --kv-dtype (its cache's type)
  Limits limits;
  std::vector<std::string> allow_hosts, cors_origins;  // serve/policy.h
  double drain_timeout_s = 30;  // after SIGTERM / SIGINT: how long running requests may finish
  std::string access_log = "-";  // one JSON line per request: "-" stderr, "off", or a file (appended)
  std::string adapter_dir;       // POST /v1/adapters loads from under it (empty: run-time loading off)
  int64_t max_adapters = 16;     // adapters held at once (start + run time); run-time ones evicted LRU
};

struct NamedAdapter {
  std::string name;
  std::unique_ptr<LoraAdapter> adapter;
};

// Serves until SIGTERM or SIGINT: then stops accepting, lets running requests finish for up to
// drain_timeout_s, cuts the rest (each stream ends with an error event and [DONE]) and returns;
// a second signal ends the process at once. `ready` is called with the bound port once listening
// (port 0 picks a free one). Blocks SIGTERM and SIGINT in the calling thread while it serves.
void serve(const Model& model, const Tokenizer& tok, const ChatTemplate& chat, std::vector<NamedAdapter> adapters,
           const ServeOptions& options, const std::function<void(int port)>& ready);

}  // namespace taia::serve
