#include "serve/server.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "core/error.h"
#include "model/update_controls.h"
#include "serve/adapter_registry.h"
#include "serve/engine.h"
#include "serve/http.h"
#include "serve/metrics.h"
#include "serve/page.h"
#include "serve/policy.h"

namespace taia::serve {
namespace {

using Clock = std::chrono::steady_clock;

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Random bits for request ids and unseeded sampling: not guessable, not repeated across restarts.
uint64_t random_u64() {
  static std::mutex mu;
  static std::mt19937_64 gen{(uint64_t(std::random_device{}()) << 32) ^ std::random_device{}()};
  std::lock_guard<std::mutex> lk(mu);
  return gen();
}

std::string random_id() {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(random_u64()),
                static_cast<unsigned long long>(random_u64()));
  return buf;
}

// What the engine reports for one request, read by the HTTP thread that waits for it.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> deltas;
  bool done = false;
  std::string finish_reason;
  int64_t completion_tokens = 0;
  Clock::time_point submitted, first_text;
  bool any_text = false;
};

void send_error(HttpResponse& res, const ApiError& e) {
  res.status = e.status;
  if (e.status == 429) res.set_header("Retry-After", "1");
  res.set_content(error_body(e), "application/json");
}

// What the access log and /metrics learn about one request while it runs (by its id).
struct RequestRecord {
  Clock::time_point start;
  std::string model, mode, finish_reason;
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

struct Server {
  const Model& model;
  const Tokenizer& tok;
  const ChatTemplate& chat;
  ServeOptions options;
  AdapterRegistry adapters;
  BrowserPolicy policy;
  Metrics metrics;  // before the engine: the engine's last callbacks (at its destruction) count in it
  Engine engine;
  std::atomic<bool> draining{false};
  std::mutex records_mu;
  std::map<std::string, RequestRecord> records;  // requests in flight, by id
  std::set<std::string> active;                  // completions not yet answered in full
  std::condition_variable active_cv;
  std::mutex log_mu;
  std::ofstream log_file;
  // The update-size controls' derived adapters (model/update_controls.h), made on first use of an
  // (adapter, mode) and kept for the next requests: at most kMaxDerived, the oldest dropped (a job
  // holds its own reference). An entry is found again only while its source adapter lives.
  struct Derived {
    std::weak_ptr<const LoraAdapter> source;
    std::string mode;
    std::shared_ptr<const LoraAdapter> adapter;
  };
  static constexpr size_t kMaxDerived = 16;
  std::mutex derived_mu;
  std::deque<Derived> derived;
  size_t max_token_bytes = 1;  // the longest text one token decodes to

  Server(const Model& m, const Tokenizer& t, const ChatTemplate& c, std::vector<NamedAdapter> a, const ServeOptions& o)
      : model(m), tok(t), chat(c), options(o), adapters(pinned(std::move(a)), m.config, o.adapter_dir, o.max_adapters),
        policy(make_policy(o.host, o.allow_hosts, o.cors_origins)),
        engine(m, t, o.parallel, o.limits.ctx, o.max_queue > 0 ? o.max_queue : 4 * o.parallel, o.decoder) {
    for (int32_t id = 0; id < int32_t(tok.vocab_size()); ++id)
      max_token_bytes = std::max(max_token_bytes, tok.decode({id}, /*skip_special=*/false).size());
    if (options.access_log != "-" && options.access_log != "off") {
      log_file.open(options.access_log, std::ios::app);
      TAIA_CHECK(log_file.good(), "[serve] --access-log ", options.access_log, ": cannot open for appending");
    }
  }

  static std::vector<AdapterRegistry::Named> pinned(std::vector<NamedAdapter> given) {
    std::vector<AdapterRegistry::Named> out;
    for (auto& n : given) out.push_back({n.name, std::move(n.adapter)});
    return out;
  }

  std::shared_ptr<const LoraAdapter> derived_adapter(const std::shared_ptr<const LoraAdapter>& source, const ModeSpec& mode) {
    std::lock_guard<std::mutex> lk(derived_mu);
    for (const Derived& d : derived)  // same owner, still alive: the same adapter object
      if (d.mode == mode.name && !d.source.expired() && !d.source.owner_before(source) && !source.owner_before(d.source))
        return d.adapter;
    auto made = adapter_for_mode(source.get(), mode, "[serve]").derived;
    if (derived.size() == kMaxDerived) derived.pop_front();
    derived.push_back({source, mode.name, made});
    return made;
  }

  void log_line(const std::string& line) {  // after_response skips it with --access-log off
    std::lock_guard<std::mutex> lk(log_mu);
    std::ostream& out = log_file.is_open() ? static_cast<std::ostream&>(log_file) : std::cerr;
    out << line << std::endl;
  }

  void check_key(const HttpRequest& req) const {
    if (options.api_keys.empty()) return;
    const std::string auth = req.header("Authorization");
    const std::string prefix = "Bearer ";
    const std::string given = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : std::string();
    bool ok = false;
    for (const auto& key : options.api_keys) ok = constant_time_equal(given, key) || ok;  // no early exit
    if (!ok) throw ApiError(401, "invalid_request_error", "Incorrect API key provided (Authorization: Bearer KEY)");
  }

  int64_t prompt_token_limit() const {
    return options.limits.max_prompt_tokens > 0 ? std::min(options.limits.max_prompt_tokens, engine.ctx() - 1)
                                                : engine.ctx() - 1;
  }

  // A prompt longer than the token limit could hold is refused on its bytes, before tokenizing:
  // a token stands for at most max_token_bytes bytes of text (x4: normalizers such as NFKC may
  // shrink text, e.g. a 3-byte fullwidth letter to 1 byte).
  void check_prompt_bytes(const Completion& c) const {
    size_t bytes = c.prompt.size();
    for (const auto& m : c.messages) bytes += m.content.size();
    const size_t most = size_t(prompt_token_limit()) * max_token_bytes * 4;
    if (bytes > most)
      throw ApiError(400, "invalid_request_error",
                     "the prompt has " + std::to_string(bytes) + " bytes, more than " +
                         std::to_string(prompt_token_limit()) + " tokens (--ctx) can hold; refused before tokenizing",
                     c.chat ? "messages" : "prompt");
  }

  std::vector<int32_t> prompt_ids(const Completion& c) const {
    std::vector<int32_t> ids;
    if (c.chat) {
      ids = encode_chat(tok, chat, c.messages, /*add_generation_prompt=*/true).ids;
    } else {
      ids = tok.encode(c.prompt, /*add_bos=*/true).ids;
    }
    const int64_t most = prompt_token_limit();
    if (ids.empty() || int64_t(ids.size()) > most)
      throw ApiError(400, "invalid_request_error",
                     "the prompt has " + std::to_string(ids.size()) + " tokens; this server takes 1.." +
                         std::to_string(most) + " (--ctx)",
                     c.chat ? "messages" : "prompt");
    return ids;
  }

  std::shared_ptr<Job> make_job(const Completion& c, std::shared_ptr<Channel> ch) {
    auto job = std::make_shared<Job>();
    job->prompt = prompt_ids(c);
    if (!c.choice.adapter.empty()) {
      job->adapter_ref = adapters.use(c.choice.adapter);
      if (!job->adapter_ref)  // deleted or evicted since the request was parsed
        throw ApiError(404, "invalid_request_error", "The model '" + c.model + "' does not exist", "model");
      job->adapter = job->adapter_ref.get();
    }
    const ModeSpec mode = parse_mode_spec(c.choice.mode);
    job->mask = job->adapter ? mode.mask : ModuleMask{};
    if (job->adapter && mode.control != UpdateControl::None) {  // its derived adapter, every module
      job->adapter_ref = derived_adapter(job->adapter_ref, mode);
      job->adapter = job->adapter_ref.get();
    }
    job->sampling.temperature = c.temperature;
    job->sampling.top_p = c.top_p;
    job->sampling.seed = c.seed ? *c.seed : random_u64();
    job->max_tokens = std::min<int64_t>(c.max_tokens, engine.ctx() - int64_t(job->prompt.size()));
    job->stop = c.stop;
    job->on_text = [this, ch](const std::string& d) {
      std::lock_guard<std::mutex> lk(ch->mu);
      if (!ch->any_text) {
        ch->any_text = true;
        ch->first_text = Clock::now();
        metrics.time_to_first_token(std::chrono::duration<double>(ch->first_text - ch->submitted).count());
      }
      ch->deltas.push_back(d);
      ch->cv.notify_all();
    };
    job->on_done = [this, ch](const std::string& reason, int64_t n) {
      std::lock_guard<std::mutex> lk(ch->mu);
      if (ch->any_text && n > 1)
        metrics.time_per_output_token(seconds_since(ch->first_text) / double(n - 1));
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

  // The error a reply that did not end normally gets (non-streaming: as the response).
  static ApiError ending_error(const std::string& finish_reason) {
    if (finish_reason == "cut")
      return ApiError(503, "server_error", "the server is shutting down: this reply was cut (--drain-timeout)");
    return ApiError(500, "server_error", "generation failed");
  }

  // A completion in flight: counted for the drain and named in its log until its last byte.
  struct Active {
    Server* s;
    std::string id;
    Active(Server* server, std::string request_id) : s(server), id(std::move(request_id)) {
      std::lock_guard<std::mutex> lk(s->records_mu);
      s->active.insert(id);
    }
    ~Active() {
      {
        std::lock_guard<std::mutex> lk(s->records_mu);
        s->active.erase(id);
      }
      s->active_cv.notify_all();
    }
  };

  void record(const std::string& request_id, const std::function<void(RequestRecord&)>& f) {
    std::lock_guard<std::mutex> lk(records_mu);
    auto it = records.find(request_id);
    if (it != records.end()) f(it->second);
  }

  // One completion request between its admission and its last byte.
  struct Reply {
    Completion c;
    std::string request_id, id;  // id: "chatcmpl-" / "cmpl-" + request_id
    int64_t created = 0, prompt_tokens = 0;
    std::shared_ptr<Channel> ch;
    std::shared_ptr<Job> job;
    std::shared_ptr<Active> active;
  };

  // Parses, checks and queues a completion request; throws its ApiError.
  std::shared_ptr<Reply> admit(const HttpRequest& req, const HttpResponse& res, bool chat) {
    if (draining) throw ApiError(503, "server_error", "the server is shutting down");
    auto r = std::make_shared<Reply>();
    r->c = parse_completion_request(req.body, chat, options.limits, adapters.names());
    const Completion& c = r->c;
    r->request_id = res.header("X-Request-Id");
    record(r->request_id, [&](RequestRecord& rec) {
      rec.model = c.model;
      rec.mode = c.choice.mode;
    });
    // Admission and the prompt's size before it is tokenized: neither costs tokenizer work.
    if (!engine.has_room()) throw ApiError(429, "rate_limit_exceeded", "the server is busy (queue full); retry later");
    check_prompt_bytes(c);
    r->ch = std::make_shared<Channel>();
    r->job = make_job(c, r->ch);
    r->job->client_gone = req.client_gone;
    r->prompt_tokens = int64_t(r->job->prompt.size());
    record(r->request_id, [&](RequestRecord& rec) { rec.prompt_tokens = r->prompt_tokens; });
    r->id = (chat ? "chatcmpl-" : "cmpl-") + r->request_id;
    r->created = unix_now();
    r->active = std::make_shared<Active>(this, r->request_id);
    r->ch->submitted = Clock::now();
    if (!engine.submit(r->job))
      throw ApiError(429, "rate_limit_exceeded", "the server is busy (queue full); retry later");
    return r;
  }

  // The reply has ended: its tokens counted, its end noted for the access log.
  void finished(const Reply& r) {
    metrics.tokens(r.prompt_tokens, r.ch->completion_tokens);
    record(r.request_id, [&](RequestRecord& rec) {
      rec.completion_tokens = r.ch->completion_tokens;
      rec.finish_reason = r.ch->finish_reason;
    });
  }

  // A non-streaming reply: waits for the end, then one JSON object.
  void respond_whole(const Reply& r, HttpResponse& res) {
    {
      std::unique_lock<std::mutex> lk(r.ch->mu);
      r.ch->cv.wait(lk, [&] { return r.ch->done; });
    }
    finished(r);
    const Channel& ch = *r.ch;
    if (ch.finish_reason == "cancelled") {  // the client left: nobody to answer
      res.status = 499;
      return;
    }
    if (ch.finish_reason == "error" || ch.finish_reason == "cut") throw ending_error(ch.finish_reason);
    std::string text;
    for (const auto& d : ch.deltas) text += d;
    const bool chat = r.c.chat;
    Json choice = chat ? Json{{"index", 0},
                              {"message", {{"role", "assistant"}, {"content", text}}},
                              {"finish_reason", ch.finish_reason}}
                       : Json{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", ch.finish_reason}};
    Json body{{"id", r.id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", r.created},
              {"model", r.c.model}, {"choices", Json::array({choice})},
              {"usage", usage(r.prompt_tokens, ch.completion_tokens)}};
    res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
  }

  // One call of a streaming reply's content provider: the deltas that came since, and at the end
  // the last chunk (or an error event), the usage chunk when asked, and [DONE]. False: the client
  // is gone (its job is cancelled) or the stream is complete.
  bool stream_some(Reply& r, bool& first, BodyWriter& sink) {
    const Completion& c = r.c;
    std::string events;  // what this call sends, in one write (one chunk)
    auto add = [&](const Json& j) {
      events += "data: " + j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
    };
    if (!sink.write({})) return r.job->cancelled = true, false;  // the head did not reach the client
    if (first) {
      first = false;
      if (c.chat) add(chunk(c, r.id, r.created, Json{{"role", "assistant"}, {"content", ""}}, nullptr));
    }
    std::unique_lock<std::mutex> lk(r.ch->mu);
    r.ch->cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return r.ch->done || !r.ch->deltas.empty(); });
    std::deque<std::string> deltas;
    deltas.swap(r.ch->deltas);
    const bool done = r.ch->done;
    lk.unlock();
    for (const auto& d : deltas) add(chunk(c, r.id, r.created, c.chat ? Json{{"content", d}} : Json(d), nullptr));
    if (done) {
      finished(r);
      const std::string& reason = r.ch->finish_reason;
      if (reason == "error" || reason == "cut")  // an error event in place of a normal end
        add(Json::parse(error_body(ending_error(reason))));
      else
        add(chunk(c, r.id, r.created, c.chat ? Json::object() : Json(""), reason));
      if (c.include_usage) {
        Json u = chunk(c, r.id, r.created, Json::object(), nullptr);
        u["choices"] = Json::array();
        u["usage"] = usage(r.prompt_tokens, r.ch->completion_tokens);
        add(u);
      }
      events += "data: [DONE]\n\n";
    }
    if (!sink.write(events)) return r.job->cancelled = true, false;
    return !done;
  }

  void complete(const HttpRequest& req, HttpResponse& res, bool chat) {
    std::shared_ptr<Reply> r = admit(req, res, chat);
    if (!r->c.stream) return respond_whole(*r, res);
    res.set_header("Content-Type", "text/event-stream");
    res.set_header("Cache-Control", "no-cache");
    res.stream = [this, r, first = true](BodyWriter& sink) mutable { return stream_some(*r, first, sink); };
  }

  Json model_object(const std::string& name) const {
    return Json{{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "taia"}};
  }

  Json models_list() const {
    Json data = Json::array();
    for (const auto& name : served_model_names(adapters.names())) data.push_back(model_object(name));
    return Json{{"object", "list"}, {"data", data}};
  }

  Json model_by_id(const std::string& name) const {
    for (const auto& served : served_model_names(adapters.names()))
      if (served == name) return model_object(name);
    throw ApiError(404, "invalid_request_error", "The model '" + name + "' does not exist", "model");
  }

  // POST /v1/adapters {"name", "path"}: path relative to --adapter-dir.
  Json load_adapter(const HttpRequest& req) {
    Json body;
    try {
      body = Json::parse(req.body);
    } catch (const std::exception&) {
      throw ApiError(400, "invalid_request_error", "expected a JSON object {\"name\", \"path\"}");
    }
    if (!body.is_object() || !body.value("name", Json()).is_string() || !body.value("path", Json()).is_string())
      throw ApiError(400, "invalid_request_error", "expected a JSON object {\"name\": string, \"path\": string}");
    for (const auto& [key, value] : body.items())
      if (key != "name" && key != "path") throw ApiError(400, "invalid_request_error", "unknown field '" + key + "'", key);
    const std::string name = body["name"];
    const std::vector<std::string> evicted = adapters.load(name, body["path"]);
    Json models = Json::array();
    for (const char* mode : {"vanilla", "taia", "taif"}) models.push_back(name + ":" + mode);
    return Json{{"id", name}, {"object", "adapter"}, {"path", body["path"]}, {"models", models}, {"evicted", evicted}};
  }

  Json delete_adapter(const std::string& name) {
    if (!adapters.remove(name))
      throw ApiError(404, "invalid_request_error", "no adapter named '" + name + "' is loaded", "name");
    return Json{{"id", name}, {"object", "adapter"}, {"deleted", true}};
  }

  // Before every route, once the head is in and before the body is read: the request's id, the
  // browser policy, the key of /v1 requests, CORS preflights. True when it has answered.
  bool before_body(const HttpRequest& req, HttpResponse& res) {
    const std::string request_id = random_id();
    res.set_header("X-Request-Id", request_id);
    {
      std::lock_guard<std::mutex> lk(records_mu);
      records[request_id].start = Clock::now();
    }
    const std::string origin = req.header("Origin");
    if (auto refused = check_browser_policy(policy, req.method, req.header("Host"), origin, req.header("Content-Type"))) {
      send_error(res, *refused);
      return true;
    }
    if (!origin.empty() && cors_allowed(policy, origin)) {  // first: a permitted page can read its 401
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Vary", "Origin");
    }
    // The one key check of every /v1 request (the handlers do not repeat it).
    if (req.path.rfind("/v1/", 0) == 0 && req.method != "OPTIONS") {
      try {
        check_key(req);
      } catch (const ApiError& e) {
        send_error(res, e);
        return true;
      }
    }
    if (req.method == "OPTIONS") {  // a preflight: what a permitted page may send
      res.status = 204;
      res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.set_header("Access-Control-Max-Age", "600");
      return true;
    }
    return false;
  }

  // After every response: one JSON access-log line and the request counters.
  void after_response(const HttpRequest& req, const HttpResponse& res) {
    const std::string request_id = res.header("X-Request-Id");
    RequestRecord r;
    {
      std::lock_guard<std::mutex> lk(records_mu);
      auto it = records.find(request_id);
      if (it != records.end()) {
        r = it->second;
        records.erase(it);
      }
    }
    metrics.request_done(res.status, r.mode);
    if (options.access_log == "off") return;
    char when[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    Json line{{"time", when}, {"id", request_id.empty() ? Json(nullptr) : Json(request_id)}, {"method", req.method},
              {"path", req.path}, {"status", res.status}, {"remote", req.remote_addr}};
    if (r.start != Clock::time_point{}) line["ms"] = seconds_since(r.start) * 1000.0;
    if (!r.model.empty()) {
      line["model"] = r.model;
      line["mode"] = r.mode;
      line["prompt_tokens"] = r.prompt_tokens;
      line["completion_tokens"] = r.completion_tokens;
      line["finish_reason"] = r.finish_reason;
    }
    log_line(line.dump(-1, ' ', false, Json::error_handler_t::replace));
  }

  // SIGTERM / SIGINT: no new connections, running completions finish for up to --drain-timeout,
  // then the rest are cut. Returns once every completion has been answered (the cut ones within
  // 5 s more: a client that does not read its end is not waited for).
  void drain(HttpServer& http, int signal_number) {
    draining = true;
    std::unique_lock<std::mutex> lk(records_mu);
    std::cerr << "taia serve: " << (signal_number == SIGINT ? "SIGINT" : "SIGTERM") << ": draining "
              << active.size() << " running request(s) for up to " << options.drain_timeout_s
              << " s (a second signal exits at once)" << std::endl;
    http.stop_accepting();  // new connections refused; the open ones served to their end
    const auto deadline = Clock::now() + std::chrono::duration<double>(options.drain_timeout_s);
    active_cv.wait_until(lk, deadline, [&] { return active.empty(); });
    if (active.empty()) {
      std::cerr << "taia serve: drained; exiting" << std::endl;
      return;
    }
    std::string ids;
    for (const auto& id : active) ids += (ids.empty() ? "" : ", ") + id;
    std::cerr << "taia serve: drain timeout: cutting " << active.size() << " request(s): " << ids << std::endl;
    lk.unlock();
    engine.cut_all();
    // The cut replies end with an error event and [DONE] before the connections close.
    lk.lock();
    active_cv.wait_for(lk, std::chrono::seconds(5), [&] { return active.empty(); });
  }
};

// Runs a handler, turning its errors into OpenAI-shaped responses.
template <class F>
void guarded(HttpResponse& res, F&& f) {
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

// The name after `prefix` in `path` ("" when the path is not prefix + a name).
std::string name_after(const std::string& path, const std::string& prefix) {
  return path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 ? path.substr(prefix.size()) : "";
}

// Every endpoint, by method and path (the path percent-decoded by the HTTP layer).
void route(Server& s, const HttpRequest& req, HttpResponse& res) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  auto json = [&](const Json& j) { res.set_content(j.dump(), "application/json"); };
  if (m == "GET" && p == "/") return res.set_content(compare_page_html(), "text/html; charset=utf-8");
  if (m == "GET" && p == "/health")
    return res.set_content(s.draining ? "{\"status\":\"draining\"}" : "{\"status\":\"ok\"}", "application/json");
  if (m == "GET" && p == "/metrics")
    return res.set_content(s.metrics.render(s.engine.waiting(), s.engine.running()), "text/plain; version=0.0.4");
  if (m == "GET" && p == "/v1/models") return json(s.models_list());
  if (m == "GET" && !name_after(p, "/v1/models/").empty()) return json(s.model_by_id(name_after(p, "/v1/models/")));
  if (m == "GET" && p == "/v1/adapters") return json(s.adapters.list());
  if (m == "POST" && p == "/v1/adapters") return json(s.load_adapter(req));
  if (m == "DELETE" && !name_after(p, "/v1/adapters/").empty())
    return json(s.delete_adapter(name_after(p, "/v1/adapters/")));
  if (m == "POST" && p == "/v1/chat/completions") return s.complete(req, res, true);
  if (m == "POST" && p == "/v1/completions") return s.complete(req, res, false);
  throw ApiError(404, "invalid_request_error", "no such endpoint: " + m + " " + p);
}

HttpHandlers handlers_of(Server& s) {
  HttpHandlers h;
  h.before_body = [&s](const HttpRequest& req, HttpResponse& res) { return s.before_body(req, res); };
  h.handle = [&s](const HttpRequest& req, HttpResponse& res) { guarded(res, [&] { route(s, req, res); }); };
  h.error = [](HttpResponse& res, int status, const std::string& message) {
    send_error(res, ApiError(status, status >= 500 ? "server_error" : "invalid_request_error", message));
  };
  h.after = [&s](const HttpRequest& req, const HttpResponse& res) { s.after_response(req, res); };
  return h;
}

// SIGTERM and SIGINT, blocked in every thread serve() starts, are taken by one thread: the first
// drains, a second ends the process at once.
class SignalWatch {
 public:
  SignalWatch() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SignalWatch() {
    finished_ = true;
    if (thread_.joinable()) thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  void start(const std::function<void(int)>& on_first) {
    thread_ = std::thread([this, on_first] {
      bool drained = false;
      while (!finished_) {
        const timespec wait{0, 100 * 1000 * 1000};
        const int sig = sigtimedwait(&set_, nullptr, &wait);
        if (sig <= 0) continue;
        if (drained) {
          std::cerr << "taia serve: second signal: exiting now" << std::endl;
          _exit(1);
        }
        drained = true;
        std::thread(on_first, sig).detach();  // keeps watching for the second signal meanwhile
      }
    });
  }

 private:
  sigset_t set_, old_;
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace

void serve(const Model& model, const Tokenizer& tok, const ChatTemplate& chat, std::vector<NamedAdapter> adapters,
           const ServeOptions& options, const std::function<void(int port)>& ready) {
  SignalWatch signals;  // before any thread starts: they inherit the blocked mask
  Server s(model, tok, chat, std::move(adapters), options);
  HttpLimits limits = options.http;
  limits.max_body_bytes = options.limits.max_body_bytes;
  HttpServer http(limits, handlers_of(s));
  const int port = http.listen(options.host, options.port);
  std::mutex drain_mu;
  std::condition_variable drain_cv;
  bool drain_done = false;
  signals.start([&](int sig) {
    s.drain(http, sig);
    std::lock_guard<std::mutex> lk(drain_mu);
    drain_done = true;
    drain_cv.notify_all();
  });
  ready(port);
  {
    std::unique_lock<std::mutex> lk(drain_mu);
    drain_cv.wait(lk, [&] { return drain_done; });
  }
  http.stop();  // the drained connections closed, the layer's threads ended
}

}  // namespace taia::serve
