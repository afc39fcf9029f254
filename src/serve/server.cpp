#include "serve/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "core/error.h"
#include "serve/engine.h"
#include "serve/page.h"

namespace taia::serve {
namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// What the engine reports for one request, read by the HTTP thread that waits for it.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> deltas;
  bool done = false;
  std::string finish_reason;
  int64_t completion_tokens = 0;
};

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_body(e), "application/json");
}

struct Server {
  const Model& model;
  const Tokenizer& tok;
  const ChatTemplate& chat;
  std::vector<NamedAdapter> adapters;
  std::vector<std::string> adapter_names;
  ServeOptions options;
  Engine engine;
  std::atomic<uint64_t> counter{0};

  Server(const Model& m, const Tokenizer& t, const ChatTemplate& c, std::vector<NamedAdapter> a, const ServeOptions& o)
      : model(m), tok(t), chat(c), adapters(std::move(a)), options(o),
        engine(m, t, o.parallel, o.limits.ctx, o.max_queue > 0 ? o.max_queue : 4 * o.parallel, o.decoder) {
    for (const auto& n : adapters) adapter_names.push_back(n.name);
  }

  void check_key(const httplib::Request& req) const {
    if (options.api_key.empty()) return;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    const std::string given = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : std::string();
    if (!constant_time_equal(given, options.api_key))
      throw ApiError(401, "invalid_request_error", "Incorrect API key provided (Authorization: Bearer KEY)");
  }

  std::vector<int32_t> prompt_ids(const Completion& c) const {
    std::vector<int32_t> ids;
    if (c.chat) {
      ids = encode_chat(tok, chat, c.messages, /*add_generation_prompt=*/true).ids;
    } else {
      ids = tok.encode(c.prompt, /*add_bos=*/true).ids;
    }
    const int64_t most = options.limits.max_prompt_tokens > 0 ? std::min(options.limits.max_prompt_tokens, engine.ctx() - 1)
                                                              : engine.ctx() - 1;
    if (ids.empty() || int64_t(ids.size()) > most)
      throw ApiError(400, "invalid_request_error",
                     "the prompt has " + std::to_string(ids.size()) + " tokens; this server takes 1.." +
                         std::to_string(most) + " (--ctx)",
                     c.chat ? "messages" : "prompt");
    return ids;
  }

  std::shared_ptr<Job> make_job(const Completion& c, std::shared_ptr<Channel> ch, uint64_t request_number) {
    auto job = std::make_shared<Job>();
    job->prompt = prompt_ids(c);
    for (const auto& n : adapters)
      if (n.name == c.choice.adapter) job->adapter = n.adapter.get();
    job->mask = parse_mode(c.choice.mode);
    if (!job->adapter) job->mask = ModuleMask{};
    job->sampling.temperature = c.temperature;
    job->sampling.top_p = c.top_p;
    job->sampling.seed = c.seed ? *c.seed : 0x9e3779b97f4a7c15ull * request_number;
    job->max_tokens = std::min<int64_t>(c.max_tokens, engine.ctx() - int64_t(job->prompt.size()));
    job->stop = c.stop;
    job->on_text = [ch](const std::string& d) {
      std::lock_guard<std::mutex> lk(ch->mu);
      ch->deltas.push_back(d);
      ch->cv.notify_all();
    };
    job->on_done = [ch](const std::string& reason, int64_t n) {
      std::lock_guard<std::mutex> lk(ch->mu);
      ch->done = true;
      ch->finish_reason = reason;
      ch->completion_tokens = n;
      ch->cv.notify_all();
    };
    return job;
  }

  Json usage(int64_t prompt, int64_t completion) const {
    return Json{{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
  }

  // One chunk of a stream (delta text, or the end with its finish reason).
  Json chunk(const Completion& c, const std::string& id, int64_t created, const Json& delta_or_text,
             const Json& finish) const {
    Json choice = c.chat ? Json{{"index", 0}, {"delta", delta_or_text}, {"finish_reason", finish}}
                         : Json{{"index", 0}, {"text", delta_or_text}, {"logprobs", nullptr}, {"finish_reason", finish}};
    return Json{{"id", id}, {"object", c.chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                {"model", c.model}, {"choices", Json::array({choice})}};
  }

  void complete(const httplib::Request& req, httplib::Response& res, bool chat) {
    check_key(req);
    const Completion c = parse_completion_request(req.body, chat, options.limits, adapter_names);
    auto ch = std::make_shared<Channel>();
    const uint64_t number = ++counter;  // the request's id and, without a seed, its sampling seed
    auto job = make_job(c, ch, number);
    job->client = ClientProbe(req.remote_addr, req.remote_port, req.local_port);
    const int64_t prompt_tokens = int64_t(job->prompt.size());
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(number);
    const int64_t created = unix_now();
    if (!engine.submit(job))
      throw ApiError(429, "rate_limit_exceeded", "the server is busy (queue full); retry later");
    if (!c.stream) {
      std::unique_lock<std::mutex> lk(ch->mu);
      ch->cv.wait(lk, [&] { return ch->done; });
      if (ch->finish_reason == "cancelled") {  // the client left while it waited: nobody to answer
        res.status = 499;
        return;
      }
      if (ch->finish_reason == "error") throw ApiError(500, "server_error", "generation failed");
      std::string text;
      for (const auto& d : ch->deltas) text += d;
      Json choice = chat ? Json{{"index", 0},
                                {"message", {{"role", "assistant"}, {"content", text}}},
                                {"finish_reason", ch->finish_reason}}
                         : Json{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", ch->finish_reason}};
      Json body{{"id", id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", created},
                {"model", c.model}, {"choices", Json::array({choice})},
                {"usage", usage(prompt_tokens, ch->completion_tokens)}};
      res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, c, ch, job, id, created, prompt_tokens, first = true](size_t, httplib::DataSink& sink) mutable {
          auto send = [&](const Json& j) {
            const std::string line = "data: " + j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
            return sink.write(line.data(), line.size());
          };
          if (first) {
            first = false;
            if (c.chat && !send(chunk(c, id, created, Json{{"role", "assistant"}, {"content", ""}}, nullptr)))
              return job->cancelled = true, false;
          }
          std::unique_lock<std::mutex> lk(ch->mu);
          ch->cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return ch->done || !ch->deltas.empty(); });
          std::deque<std::string> deltas;
          deltas.swap(ch->deltas);
          const bool done = ch->done;
          lk.unlock();
          for (const auto& d : deltas)
            if (!send(chunk(c, id, created, c.chat ? Json{{"content", d}} : Json(d), nullptr)))
              return job->cancelled = true, false;
          if (!sink.is_writable()) return job->cancelled = true, false;
          if (!done) return true;
          if (ch->finish_reason == "error")  // an error event in place of a normal end
            send(Json::parse(error_body(ApiError(500, "server_error", "generation failed"))));
          else
            send(chunk(c, id, created, c.chat ? Json::object() : Json(""), ch->finish_reason));
          if (c.include_usage) {
            Json u = chunk(c, id, created, Json::object(), nullptr);
            u["choices"] = Json::array();
            u["usage"] = usage(prompt_tokens, ch->completion_tokens);
            send(u);
          }
          const std::string end = "data: [DONE]\n\n";
          sink.write(end.data(), end.size());
          sink.done();
          return true;
        },
        [job](bool) { job->cancelled = true; });
  }

  Json models_list() const {
    Json data = Json::array();
    for (const auto& name : served_model_names(adapter_names))
      data.push_back(Json{{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "taia"}});
    return Json{{"object", "list"}, {"data", data}};
  }
};

// Runs a handler, turning its errors into OpenAI-shaped responses.
template <class F>
void guarded(httplib::Response& res, F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    send_error(res, ApiError(400, "invalid_request_error", e.what()));
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, "server_error", e.what()));
  }
}

}  // namespace

void serve(const Model& model, const Tokenizer& tok, const ChatTemplate& chat, std::vector<NamedAdapter> adapters,
           const ServeOptions& options, const std::function<void(int port)>& ready) {
  Server s(model, tok, chat, std::move(adapters), options);
  httplib::Server http;
  http.new_task_queue = [n = options.max_connections] { return new httplib::ThreadPool(size_t(n)); };
  http.set_payload_max_length(size_t(options.limits.max_body_bytes));
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(compare_page_html(), "text/html; charset=utf-8");
  });
  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  http.Get("/v1/models", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      s.check_key(req);
      res.set_content(s.models_list().dump(), "application/json");
    });
  });
  http.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { s.complete(req, res, true); });
  });
  http.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { s.complete(req, res, false); });
  });
  // Statuses httplib sets itself (unknown path 404, body over the limit 413): an OpenAI error body.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string message = res.status == 404   ? "no such endpoint: " + req.method + " " + req.path
                                : res.status == 413 ? "request body exceeds the server's limit"
                                                    : "request failed";
    send_error(res, ApiError(res.status, "invalid_request_error", message));
  });
  const int port = options.port == 0 ? http.bind_to_any_port(options.host)
                                     : (http.bind_to_port(options.host, options.port) ? options.port : -1);
  TAIA_CHECK(port > 0, "[serve] cannot listen on ", options.host, ":", options.port);
  ready(port);
  http.listen_after_bind();
}

}  // namespace taia::serve
