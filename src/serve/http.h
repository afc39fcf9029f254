// The HTTP/1.1 layer of `taia serve` (Boost.Beast's parser over Boost.Asio): limits that hold
// whatever a client sends. One I/O thread reads every connection's request with a deadline
// (--request-timeout, head and body together), a header byte and count limit and a body limit for
// every transfer encoding (Content-Length or chunked); a complete request runs on a worker thread
// (at most one per connection, so a slow client costs no thread while it sends). At
// --max-connections new clients wait in the kernel's backlog; while one waits, the connection
// that has waited longest for its request (a slow or idle client after 1 s, one that has sent
// nothing after 250 ms) is closed to make room, so /health is answered while slow clients hold
// every connection.
// Responses: Content-Length, or streamed (HTTP/1.1 chunked, HTTP/1.0 until the connection closes);
// pipelined requests are answered in order. A request refused before its body is read (key,
// browser policy) is answered, then the connection closes without reading the body into memory.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taia::serve {

struct HttpLimits {
  int backlog = 512;                 // connections the kernel queues before they are accepted
  int64_t max_connections = 256;     // open at once (see above); handler threads, started as needed
  int64_t max_body_bytes = 1 << 20;  // 413 beyond, any transfer encoding
  int64_t max_header_bytes = 16384;  // request line + headers: 431 beyond
  int64_t max_headers = 100;         // header lines: 431 beyond
  double request_timeout_s = 10;     // a request's head and body must arrive within it; each write too
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method, target;  // target as sent, e.g. "/v1/models/a%3Ab?x=1"
  std::string path;            // the target's path, percent-decoded, without the query
  int version = 11;            // 10: HTTP/1.0, 11: HTTP/1.1
  Headers headers;
  std::string body;
  std::string remote_addr;
  // For a handler that waits: true once the client closed or reset its connection.
  std::function<bool()> client_gone;

  std::string header(std::string_view name) const;  // "" when absent (names case-insensitive)
  bool has_header(std::string_view name) const;
};

// Where a streamed body goes: write returns false once the client is gone (or too slow to read).
class BodyWriter {
 public:
  virtual ~BodyWriter() = default;
  virtual bool write(std::string_view bytes) = 0;
};

struct HttpResponse {
  int status = 200;
  Headers headers;
  std::string body;
  // Set: the body is streamed instead, by calls to it until it returns false (the body is complete,
  // or a write failed).
  std::function<bool(BodyWriter&)> stream;

  void set_header(const std::string& name, const std::string& value);  // replaces one of that name
  std::string header(std::string_view name) const;
  void set_content(std::string content, const std::string& content_type);
};

struct HttpHandlers {
  // On the I/O thread once the head is in, before the body is read (quick checks only): true when
  // it has answered (the body is then never read).
  std::function<bool(const HttpRequest& head, HttpResponse& res)> before_body;
  // On a worker thread with the whole request.
  std::function<void(const HttpRequest& req, HttpResponse& res)> handle;
  // The body of an error the layer answers itself (413, 431, 400 malformed).
  std::function<void(HttpResponse& res, int status, const std::string& message)> error;
  // Once a response has been sent (or its client has gone): for the log and the counters.
  std::function<void(const HttpRequest& req, const HttpResponse& res)> after;
};

class HttpServer {
 public:
  HttpServer(const HttpLimits& limits, HttpHandlers handlers);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (port 0: any free one) and starts serving; returns the bound port.
  int listen(const std::string& host, int port);
  // New connections are refused from now on; open ones are served (keep-alive until idle).
  void stop_accepting();
  // Closes every connection and returns once the layer's threads have ended (not from a handler).
  void stop();

 private:
  struct Impl;
  friend class Connection;  // http.cpp: one client connection, served by Impl
  std::unique_ptr<Impl> impl_;
};

}  // namespace taia::serve
