#include "serve/http.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <iostream>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "core/error.h"

namespace taia::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The target's path without its query, %XX decoded (a malformed escape stays as sent).
std::string decoded_path(std::string_view target) {
  target = target.substr(0, target.find('?'));
  std::string out;
  out.reserve(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == '%' && i + 2 < target.size() && hex_digit(target[i + 1]) >= 0 && hex_digit(target[i + 2]) >= 0) {
      out += char(hex_digit(target[i + 1]) * 16 + hex_digit(target[i + 2]));
      i += 2;
    } else {
      out += target[i];
    }
  }
  return out;
}

// A header line; a line break in a value (none of ours should hold one) becomes a space, so a
// response cannot be split.
void add_header(std::string& head, const std::string& name, const std::string& value) {
  std::string v = value;
  for (char& c : v)
    if (c == '\r' || c == '\n') c = ' ';
  head += name + ": " + v + "\r\n";
}

// Status line and headers: the handler's, then the framing ones (Content-Length, Transfer-Encoding,
// Connection) that only this layer sets.
std::string response_head(const HttpResponse& res, const Headers& framing) {
  const auto reason = http::obsolete_reason(http::int_to_status(unsigned(res.status)));
  std::string head = "HTTP/1.1 " + std::to_string(res.status) + " " + std::string(reason.data(), reason.size()) + "\r\n";
  for (const auto& [name, value] : res.headers) add_header(head, name, value);
  for (const auto& [name, value] : framing) add_header(head, name, value);
  return head + "\r\n";
}

// Handler threads, started as needed up to one per connection (each runs at most one task), so a
// connection never waits behind another's handler; idle ones are kept for the next request.
class WorkerPool {
 public:
  explicit WorkerPool(int64_t most) : most_(most) {}
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::function<void()> task) {
    std::lock_guard<std::mutex> lk(mu_);
    tasks_.push_back(std::move(task));
    if (idle_ < int64_t(tasks_.size()) && int64_t(threads_.size()) < most_)
      threads_.emplace_back([this] { loop(); });
    else
      cv_.notify_one();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lk, [&] { return done_ || !tasks_.empty(); });
      --idle_;
      if (tasks_.empty()) return;
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lk.unlock();
      task();
      lk.lock();
    }
  }
  const int64_t most_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  int64_t idle_ = 0;
  bool done_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (same_name(n, name)) return v;
  return "";
}

bool HttpRequest::has_header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (same_name(n, name)) return true;
  return false;
}

void HttpResponse::set_header(const std::string& name, const std::string& value) {
  for (auto& [n, v] : headers)
    if (same_name(n, name)) {
      v = value;
      return;
    }
  headers.emplace_back(name, value);
}

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (same_name(n, name)) return v;
  return "";
}

void HttpResponse::set_content(std::string content, const std::string& content_type) {
  body = std::move(content);
  set_header("Content-Type", content_type);
}

class Connection;

struct HttpServer::Impl {
  HttpLimits limits;
  HttpHandlers handlers;
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{ioc.get_executor()};
  tcp::acceptor acceptor{ioc};
  std::list<std::shared_ptr<Connection>> connections;  // I/O thread only
  std::unique_ptr<WorkerPool> workers;
  std::thread io_thread;
  std::atomic<bool> stopping{false};
  bool accepting = false, waiting_for_room = false;  // I/O thread only

  std::chrono::steady_clock::duration timeout() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(limits.request_timeout_s));
  }
  // A connection that has waited this long for its request may be closed to make room: 1 s, or
  // 250 ms when it has sent nothing since it connected (a client sends its request at once).
  std::chrono::steady_clock::duration evict_after(bool sent_nothing) const {
    const auto most = std::chrono::milliseconds(sent_nothing ? 250 : 1000);
    return std::min(timeout(), std::chrono::steady_clock::duration(most));
  }
  void accept_next();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void wait_for_room();
  bool make_room();
  void connection_closed() {
    asio::post(ioc, [this] { accept_next(); });
  }
};

// One client connection: its requests one after another (pipelined ones from the buffer).
// Reading happens on the I/O thread; a worker thread runs the handler and writes its response.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpServer::Impl& server, tcp::socket socket)
      : s_(server), stream_(std::move(socket)), buffer_(size_t(server.limits.max_header_bytes) + 65536) {
    // A second descriptor for the same socket, closed only with this object: the worker thread
    // writes through it and client_gone peeks at it from other threads without racing the I/O
    // thread's close (the number is never reused while it is held). close() shuts the socket down
    // through it, so the peer still sees the end and a worker's write fails at once.
    probe_fd_ = ::dup(stream_.socket().native_handle());
    beast::error_code ec;
    const auto peer = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = peer.address().to_string();
  }
  ~Connection() {
    if (probe_fd_ >= 0) ::close(probe_fd_);
  }

  void start() { read_request(); }

  bool waiting_for_request() const { return !closed_ && state_ == State::Reading; }
  // Since when it has waited (for a closable one); a silent new connection counts 750 ms older.
  Clock::time_point waiting_since() const {
    const bool silent = requests_ == 0 && parser_ && !parser_->got_some();
    return since_ - (s_.evict_after(false) - s_.evict_after(silent));
  }
  bool closed() const { return closed_; }

  void close() {  // I/O thread
    if (closed_) return;
    closed_ = true;
    if (probe_fd_ >= 0) ::shutdown(probe_fd_, SHUT_RDWR);
    beast::error_code ec;
    stream_.socket().close(ec);
    s_.connection_closed();  // room for a connection waiting in the backlog
  }

 private:
  enum class State { Reading, Handling, Answering };

  void read_request() {
    if (s_.stopping || closed_) return close();
    state_ = State::Reading;
    since_ = Clock::now();
    head_seen_ = false;
    parser_.emplace();
    parser_->header_limit(uint32_t(std::min<int64_t>(s_.limits.max_header_bytes, UINT32_MAX)));
    // No body limit while the head is parsed (the parser would refuse a large Content-Length before
    // before_body could refuse the request for its key); set once the head has passed. (Not
    // boost::none: Boost 1.74's parser compares the length with the empty optional and refuses all.)
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    stream_.expires_after(s_.timeout());  // head and body together
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_head(ec); });
  }

  void on_head(beast::error_code ec) {
    if (closed_) return;
    if (ec) return read_failed(ec);
    const auto& msg = parser_->get();
    int64_t count = 0;
    for (auto it = msg.begin(); it != msg.end(); ++it) ++count;
    if (count > s_.limits.max_headers)
      return answer_error(431, "the request has " + std::to_string(count) + " header lines, more than this server's " +
                                   std::to_string(s_.limits.max_headers));
    take_head();
    if (s_.handlers.before_body && s_.handlers.before_body(req_, res_)) return answer_now();
    if (parser_->is_done()) return dispatch();
    const auto length = parser_->content_length();
    if (length && *length > uint64_t(s_.limits.max_body_bytes)) return read_failed(http::error::body_limit);
    parser_->body_limit(uint64_t(s_.limits.max_body_bytes));  // a chunked body: counted as it comes
    if (same_name(req_.header("Expect"), "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue), [self = shared_from_this()](beast::error_code e, size_t) {
        if (e) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void take_head() {
    const auto& msg = parser_->get();
    req_ = HttpRequest{};
    res_ = HttpResponse{};
    req_.method = std::string(msg.method_string());
    req_.target = std::string(msg.target());
    req_.path = decoded_path(req_.target);
    req_.version = int(msg.version());
    for (const auto& field : msg) req_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    req_.remote_addr = remote_;
    req_.client_gone = [weak = weak_from_this()] {
      auto self = weak.lock();
      return !self || self->peer_closed();
    };
    keep_alive_ = msg.keep_alive() && req_.version >= 11;
    head_seen_ = true;
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->closed_) return;
      if (ec) return self->read_failed(ec);
      self->dispatch();
    });
  }

  void read_failed(beast::error_code ec) {
    if (ec == http::error::header_limit || (ec == http::error::buffer_overflow && !head_seen_))
      return answer_error(431, "the request's head is larger than this server's " +
                                   std::to_string(s_.limits.max_header_bytes) + " bytes");
    if (ec == http::error::body_limit)
      return answer_error(413, "the request body exceeds this server's limit of " +
                                   std::to_string(s_.limits.max_body_bytes) + " bytes (--max-body)");
    const bool malformed = ec.category() == http::make_error_code(http::error::bad_method).category() &&
                           ec != http::error::end_of_stream && ec != http::error::partial_message;
    if (malformed) return answer_error(400, "malformed HTTP request: " + ec.message());
    // The client closed, reset or ran past --request-timeout: nothing to answer.
    if (head_seen_) {
      res_.status = ec == beast::error::timeout ? 408 : 499;  // for the log: it never got a response
      if (s_.handlers.after) s_.handlers.after(req_, res_);
    }
    close();
  }

  // An error this layer answers itself; the connection closes after it (its input is not trusted).
  void answer_error(int status, const std::string& message) {
    res_.status = status;
    res_.body.clear();
    res_.stream = nullptr;
    if (s_.handlers.error) s_.handlers.error(res_, status, message);
    keep_alive_ = false;
    answer_now();
  }

  // A response made on the I/O thread (a refusal or an error): sent, then the next request is read
  // (only when this one was read whole and may be kept alive) or the connection closes.
  void answer_now() {
    state_ = State::Answering;
    const bool keep = keep_alive_ && parser_ && parser_->is_done() && !s_.stopping;
    Headers framing{{"Content-Length", std::to_string(res_.body.size())}};
    if (!keep) framing.emplace_back("Connection", "close");
    auto bytes = std::make_shared<std::string>(response_head(res_, framing) + res_.body);
    stream_.expires_after(s_.timeout());
    asio::async_write(stream_, asio::buffer(*bytes),
                      [self = shared_from_this(), bytes, keep](beast::error_code ec, size_t) {
                        if (self->s_.handlers.after) self->s_.handlers.after(self->req_, self->res_);
                        if (ec) return self->close();
                        if (keep) return self->read_request();
                        self->linger_close();
                      });
  }

  // Stops sending, then reads and drops what the client still sends for up to 2 s before closing:
  // closing with unread input would reset the connection and could destroy the response in flight.
  void linger_close() {
    if (closed_) return;
    state_ = State::Answering;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    discard();
  }

  void discard() {
    if (!discard_buffer_) discard_buffer_ = std::make_unique<std::array<char, 16384>>();  // one, reused
    stream_.async_read_some(asio::buffer(*discard_buffer_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec || self->closed_) return self->close();
      self->discard();
    });
  }

  void dispatch() {
    ++requests_;
    req_.body = std::move(parser_->get().body());
    stream_.expires_never();
    state_ = State::Handling;
    s_.workers->post([self = shared_from_this()] { self->handle(); });
  }

  // On a worker thread: the handler, then its response.
  void handle() {
    try {
      s_.handlers.handle(req_, res_);
    } catch (const std::exception& e) {
      res_.status = 500;
      res_.stream = nullptr;
      if (s_.handlers.error) s_.handlers.error(res_, 500, e.what());
    }
    bool keep = keep_alive_ && !s_.stopping;
    const bool ok = res_.stream ? send_streamed(keep) : send_whole(keep);
    res_.stream = nullptr;  // what the stream held (its request's state) goes now, not at the next request
    req_.body.clear();
    req_.body.shrink_to_fit();
    if (s_.handlers.after) s_.handlers.after(req_, res_);
    asio::post(stream_.get_executor(), [self = shared_from_this(), keep, ok] {
      if (!ok || self->closed_) return self->close();
      if (keep) return self->read_request();
      self->linger_close();
    });
  }

  bool send_whole(bool keep) {
    Headers framing{{"Content-Length", std::to_string(res_.body.size())}};
    if (!keep) framing.emplace_back("Connection", "close");
    return write_from_worker(response_head(res_, framing) + res_.body);
  }

  class StreamWriter : public BodyWriter {
   public:
    StreamWriter(Connection& c, bool chunked) : c_(c), chunked_(chunked) {}
    bool write(std::string_view bytes) override {
      if (!ok_) return false;
      if (bytes.empty()) return true;
      if (!chunked_) return ok_ = c_.write_from_worker(bytes);
      char size[20];
      std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
      return ok_ = c_.write_from_worker(size + std::string(bytes) + "\r\n");
    }
    bool ok() const { return ok_; }

   private:
    Connection& c_;
    bool chunked_;
    bool ok_ = true;
  };

  // HTTP/1.1: chunked; HTTP/1.0 has no chunks: the body ends when the connection closes.
  bool send_streamed(bool& keep) {
    const bool chunked = req_.version >= 11;
    if (!chunked) keep = false;
    Headers framing;
    if (chunked) framing.emplace_back("Transfer-Encoding", "chunked");
    if (!keep) framing.emplace_back("Connection", "close");
    if (!write_from_worker(response_head(res_, framing))) return false;
    StreamWriter writer(*this, chunked);
    while (res_.stream(writer) && writer.ok()) {
    }
    if (!writer.ok()) return false;
    return !chunked || write_from_worker("0\r\n\r\n");
  }

  // Writes from the worker thread straight to the socket, through the second descriptor: the I/O
  // thread does nothing with this connection while its request runs (a hand-over to it would
  // cost two thread switches per write). Each write within --request-timeout.
  bool write_from_worker(std::string_view bytes) {
    const auto deadline = Clock::now() + s_.timeout();
    size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::send(probe_fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        at += size_t(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;  // reset, or shut down by close()
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;  // the client does not read
      pollfd ready{probe_fd_, POLLOUT, 0};
      if (::poll(&ready, 1, int(std::min<int64_t>(left, 1 << 30))) < 0 && errno != EINTR) return false;
    }
    return true;
  }

  bool peer_closed() const {
    char byte;
    const ssize_t n = ::recv(probe_fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return false;  // the client sent more (a pipelined request): still there
    if (n == 0) return true;  // end of stream
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // a reset
  }

  HttpServer::Impl& s_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;  // bounded: a head larger than the header limit cannot grow it
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest req_;
  HttpResponse res_;
  std::string remote_;
  int probe_fd_ = -1;
  State state_ = State::Reading;
  Clock::time_point since_ = Clock::now();
  bool closed_ = false, head_seen_ = false, keep_alive_ = false;
  int64_t requests_ = 0;  // handled on this connection so far
  std::unique_ptr<std::array<char, 16384>> discard_buffer_;  // what linger_close reads and drops
};

// Accepts while fewer than max_connections are open; at the limit, new clients wait in the
// kernel's backlog until a connection closes or one can be closed to make room.
void HttpServer::Impl::accept_next() {
  if (stopping || accepting || !acceptor.is_open()) return;
  connections.remove_if([](const std::shared_ptr<Connection>& c) { return c->closed(); });
  if (int64_t(connections.size()) >= limits.max_connections) return wait_for_room();
  accepting = true;
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

// At the limit with a client waiting to be accepted: the connection that has waited longest for
// its request (slow, silent or idle keep-alive), once it has waited evict_after, is closed; when
// every connection is running a request or has only just arrived, look again in 100 ms.
void HttpServer::Impl::wait_for_room() {
  if (waiting_for_room) return;
  waiting_for_room = true;
  acceptor.async_wait(tcp::acceptor::wait_read, [this](beast::error_code ec) {
    waiting_for_room = false;
    if (ec || stopping || !acceptor.is_open()) return;
    connections.remove_if([](const std::shared_ptr<Connection>& c) { return c->closed(); });
    if (int64_t(connections.size()) < limits.max_connections) return accept_next();  // room came meanwhile
    if (make_room()) return;  // its close calls accept_next
    auto timer = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(100));
    timer->async_wait([this, timer](beast::error_code) { accept_next(); });
  });
}

bool HttpServer::Impl::make_room() {
  std::shared_ptr<Connection> oldest;
  for (const auto& c : connections)
    if (c->waiting_for_request() && (!oldest || c->waiting_since() < oldest->waiting_since())) oldest = c;
  if (!oldest || Clock::now() - oldest->waiting_since() < evict_after(false)) return false;
  oldest->close();
  return true;
}

void HttpServer::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  accepting = false;
  if (!acceptor.is_open() || stopping) return;
  if (ec) {  // e.g. out of descriptors: try again shortly instead of spinning
    auto timer = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(50));
    timer->async_wait([this, timer](beast::error_code) { accept_next(); });
    return;
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto connection = std::make_shared<Connection>(*this, std::move(socket));
  connections.push_back(connection);
  connection->start();
  accept_next();
}

HttpServer::HttpServer(const HttpLimits& limits, HttpHandlers handlers) : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
  impl_->handlers = std::move(handlers);
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::listen(const std::string& host, int port) {
  Impl& s = *impl_;
  beast::error_code ec;
  tcp::resolver resolver(s.ioc);
  const auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  TAIA_CHECK(!ec && !found.empty(), "[serve] cannot listen on ", host, ":", port, ": ", ec.message());
  const tcp::endpoint at = found.begin()->endpoint();
  s.acceptor.open(at.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(at, ec);
  if (!ec) s.acceptor.listen(s.limits.backlog, ec);
  TAIA_CHECK(!ec, "[serve] cannot listen on ", host, ":", port, ": ", ec.message());
  s.workers = std::make_unique<WorkerPool>(s.limits.max_connections);
  s.accept_next();
  s.io_thread = std::thread([&s] {
    for (;;) {
      try {
        s.ioc.run();
        return;
      } catch (const std::exception& e) {  // a handler's bug must not end the server
        std::cerr << "taia serve: error in the HTTP layer: " << e.what() << std::endl;
      }
    }
  });
  return s.acceptor.local_endpoint().port();
}

void HttpServer::stop_accepting() {
  asio::post(impl_->ioc, [&s = *impl_] {
    beast::error_code ec;
    s.acceptor.close(ec);
  });
}

void HttpServer::stop() {
  Impl& s = *impl_;
  if (!s.io_thread.joinable()) return;
  s.stopping = true;
  std::promise<void> closed;
  asio::post(s.ioc, [&s, &closed] {
    beast::error_code ec;
    s.acceptor.close(ec);
    for (const auto& c : s.connections) c->close();
    closed.set_value();
  });
  closed.get_future().wait();
  s.workers.reset();  // each worker's writes fail at once on the closed sockets
  s.work.reset();
  s.ioc.stop();  // pending timers and reads are dropped: nothing waits on them any more
  s.io_thread.join();
  s.connections.clear();
}

}  // namespace taia::serve
