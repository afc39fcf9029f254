// taia serve: an OpenAI-compatible HTTP server; each request picks its adapter and mode.
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "common.h"
#include "core/error.h"
#include "model/adapter.h"
#include "model/tokenizer_loader.h"
#include "core/mmap_file.h"
#include "serve/policy.h"
#include "serve/server.h"

namespace taia::cli {
namespace {

struct ServeArgs {
  std::string model, tokenizer, chat_template, api_key_file;
  std::optional<DType> dtype;  // --dtype (nullopt: as stored)
  std::vector<std::string> adapters;  // NAME=PATH
  serve::ServeOptions o;
  std::string max_body = "1M", max_header_bytes = "16K";
  int threads = 0;
  bool no_mmap = false;
};

// Keys from --api-key (repeatable; visible in `ps`), --api-key-file (one per line, '#' comments)
// and TAIA_API_KEY (comma-separated): any of them is accepted.
void collect_api_keys(ServeArgs& a) {
  if (!a.api_key_file.empty()) {
    std::stringstream in(read_text_file(a.api_key_file));
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty() && line[0] != '#') a.o.api_keys.push_back(line);
    }
    TAIA_CHECK(!a.o.api_keys.empty(), a.api_key_file, ": no API key (one per line)");
  }
  if (const char* env = std::getenv("TAIA_API_KEY")) {
    std::stringstream in(env);
    for (std::string key; std::getline(in, key, ',');)
      if (!key.empty()) a.o.api_keys.push_back(key);
  }
}

void run_serve(ServeArgs& a) {
  std::vector<std::pair<std::string, std::string>> named;
  for (const auto& spec : a.adapters) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size() || spec.find(':') < eq)
      throw CLI::ValidationError("--adapter", "expected NAME=PATH (NAME without ':'), got '" + spec + "'");
    const std::string name = spec.substr(0, eq);
    if (name == "base") throw CLI::ValidationError("--adapter", "'base' names the base model; choose another name");
    for (const auto& [n, p] : named)
      if (n == name) throw CLI::ValidationError("--adapter", "the name '" + name + "' is given twice");
    named.push_back({name, spec.substr(eq + 1)});
  }
  a.o.limits.max_body_bytes = parse_byte_size(a.max_body, "--max-body");
  a.o.http.max_header_bytes = parse_byte_size(a.max_header_bytes, "--max-header-bytes");
  if (a.o.http.max_header_bytes < 256 || a.o.http.max_header_bytes > (int64_t(1) << 30))
    throw CLI::ValidationError("--max-header-bytes", "expected 256 bytes .. 1G, got " + a.max_header_bytes);
  collect_api_keys(a);
  auto model = load_for_run(a.model, a.dtype, a.threads, a.no_mmap);
  auto tok = load_tokenizer(a.tokenizer.empty() ? a.model : a.tokenizer);
  TAIA_CHECK(tok->vocab_size() <= model->config.vocab_size, a.model, ": the tokenizer has ", tok->vocab_size(),
             " tokens but the model only ", model->config.vocab_size);
  if (a.o.limits.ctx <= 0) a.o.limits.ctx = std::min<int64_t>(4096, model->config.max_position_embeddings);
  const ChatTemplate chat = a.chat_template.empty() ? chat_template_for(*tok) : chat_template_by_name(a.chat_template);
  std::vector<serve::NamedAdapter> adapters;
  for (const auto& [name, path] : named) adapters.push_back({name, load_adapter(path, model->config)});
  serve::serve(*model, *tok, chat, std::move(adapters), a.o, [&](int port) {
    std::cerr << "taia serve: listening on http://" << a.o.host << ":" << port << " (models: base";
    for (const auto& [name, path] : named) std::cerr << ", " << name << ":{vanilla,taia,taif}";
    std::cerr << "; chat template " << chat.name << ")" << std::endl;
    if (!serve::is_loopback_address(a.o.host) && a.o.api_keys.empty())
      std::cerr << "taia serve: warning: listening on " << a.o.host << " without an API key: anyone who can reach "
                << "this address can use the server (--api-key-file or TAIA_API_KEY)" << std::endl;
  });
}

}  // namespace

void register_serve(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  serve::ServeOptions& o = args->o;
  CLI::App* cmd = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server: one loaded base, every request picks its adapter and mode "
               "(docs/SERVING.md)");
  cmd->add_option("-m,--model", args->model, "Base model: GGUF file or HF folder")->required();
  cmd->add_option("--adapter", args->adapters, "NAME=PATH of a PEFT LoRA folder or GGUF LoRA file (repeatable); "
                  "served as NAME:vanilla, NAME:taia, NAME:taif");
  cmd->add_option("--host", o.host, "Address to bind (127.0.0.1: this machine only)")->capture_default_str();
  cmd->add_option("--port", o.port, "Port (0: any free one, printed)")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--api-key", o.api_keys, "Require 'Authorization: Bearer KEY' on every /v1 request (repeatable; "
                  "visible in ps: prefer --api-key-file or TAIA_API_KEY)");
  cmd->add_option("--api-key-file", args->api_key_file, "API keys, one per line ('#' comments); any is accepted");
  cmd->add_option("--allow-host", o.allow_hosts, "A Host name this server answers to (repeatable; bound to loopback, "
                  "loopback names are always allowed: other names are refused against DNS rebinding)");
  cmd->add_option("--cors-origin", o.cors_origins, "An Origin whose pages may call the API (repeatable; '*': any); "
                  "other cross-origin requests are refused");
  cmd->add_option("--drain-timeout", o.drain_timeout_s, "Seconds running requests may finish after SIGTERM / "
                  "SIGINT before they are cut")->check(CLI::Range(0.0, 86400.0))->capture_default_str();
  cmd->add_option("--adapter-dir", o.adapter_dir, "Allow POST /v1/adapters to load adapters from under this folder "
                  "(paths relative to it; nothing outside)")->check(CLI::ExistingDirectory);
  cmd->add_option("--max-adapters", o.max_adapters, "Adapters held at once; loading one more evicts the least "
                  "recently used run-time one")->check(CLI::Range(int64_t(1), int64_t(4096)))->capture_default_str();
  cmd->add_option("--access-log", o.access_log, "One JSON line per request: - (stderr), off, or a file (appended)")
      ->capture_default_str();
  cmd->add_option("--parallel", o.parallel, "Requests decoded together (continuous batching)")
      ->check(CLI::Range(int64_t(1), int64_t(256)))->capture_default_str();
  cmd->add_option("--ctx", o.limits.ctx, "Positions per request, prompt + reply (default: min(4096, the model's))")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--max-tokens", o.limits.max_tokens, "The most a request may ask for (max_tokens)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))->capture_default_str();
  cmd->add_option("--max-prompt-tokens", o.limits.max_prompt_tokens, "Longest prompt (0: --ctx - 1)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--max-body", args->max_body, "Largest request body, Content-Length or chunked (413 beyond)")
      ->capture_default_str();
  cmd->add_option("--max-header-bytes", args->max_header_bytes, "Largest request head: request line and headers "
                  "(431 beyond)")->capture_default_str();
  cmd->add_option("--max-headers", o.http.max_headers, "Most header lines in a request (431 beyond)")
      ->check(CLI::Range(int64_t(1), int64_t(10000)))->capture_default_str();
  cmd->add_option("--request-timeout", o.http.request_timeout_s, "Seconds a request's head and body may take to "
                  "arrive (then the connection closes); also the limit of each write")
      ->check(CLI::Range(0.1, 3600.0))->capture_default_str();
  cmd->add_option("--max-connections", o.http.max_connections, "Open connections; at the limit the one waiting "
                  "longest for its request is closed, so a new client is served")
      ->check(CLI::Range(int64_t(1), int64_t(4096)))->capture_default_str();
  cmd->add_option("--backlog", o.http.backlog, "Connections the kernel queues before they are accepted (capped by "
                  "net.core.somaxconn)")->check(CLI::Range(1, 65535))->capture_default_str();
  cmd->add_option("--max-queue", o.max_queue, "Requests waiting for a slot; more get 429 (0: 4 x --parallel)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  add_tokenizer_option(cmd, &args->tokenizer);
  add_chat_template_option(cmd, &args->chat_template);
  add_dtype_option(cmd, &args->dtype, "Weights in memory: auto (as stored), f32, bf16, f16");
  add_no_mmap_option(cmd, &args->no_mmap);
  o.decoder.kv_dtype = DType::F16;  // llama-server's default cache type
  add_decoder_options(cmd, &o.decoder);
  add_threads_option(cmd, &args->threads);
  cmd->callback([args] { run_serve(*args); });
}

}  // namespace taia::cli
