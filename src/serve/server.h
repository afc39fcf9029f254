// `taia serve`: the OpenAI-compatible HTTP server (cpp-httplib) around one loaded base, its
// adapters and the batching engine. Endpoints: GET /health, GET /v1/models, POST
// /v1/chat/completions and /v1/completions (JSON or server-sent events). docs/SERVING.md.
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
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace taia::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;        // empty: no key asked
  int64_t parallel = 4;       // jobs decoded together
  int64_t max_connections = 32;
  int64_t max_queue = 0;      // requests waiting for a slot; more are refused with 429 (0: 4 x parallel)
  DecoderSettings decoder;    // --compute, --exact-activations, --kv-dtype (its cache's type)
  Limits limits;
};

struct NamedAdapter {
  std::string name;
  std::unique_ptr<LoraAdapter> adapter;
};

// Serves until stop() is called from another thread (or the process ends). `ready` is called
// with the bound port once listening (port 0 picks a free one).
void serve(const Model& model, const Tokenizer& tok, const ChatTemplate& chat, std::vector<NamedAdapter> adapters,
           const ServeOptions& options, const std::function<void(int port)>& ready);

}  // namespace taia::serve
