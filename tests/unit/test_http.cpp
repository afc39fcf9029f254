// serve/http: the HTTP layer's limits against raw-socket clients: pipelining, chunked bodies within
// and beyond the body limit, header count and size limits, refusal before the body, HTTP/1.0 and
// 1.1 streams, slow clients evicted at the connection limit, the request deadline, a departed
// client seen by a waiting handler, a client waiting for room at the limit, stop_accepting.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "serve/http.h"

using namespace taia::serve;
using Clock = std::chrono::steady_clock;

namespace {

// A raw client socket on 127.0.0.1:port.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { close(); }
  bool connected() const { return connected_; }
  bool send_text(const std::string& s) {
    size_t at = 0;
    while (at < s.size()) {
      const ssize_t n = ::send(fd_, s.data() + at, s.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return false;
      at += size_t(n);
    }
    return true;
  }
  // Everything until the server closes, or what came within `seconds`.
  std::string read_until_closed(double seconds, bool* closed = nullptr) {
    std::string out;
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    bool peer_closed = false;
    while (read_more(out, end, peer_closed)) {
    }
    if (closed) *closed = peer_closed;
    return out;
  }
  // Reads until `count` occurrences of `marker` have arrived (or `seconds` pass).
  std::string read_until(const std::string& marker, int count, double seconds) {
    std::string out;
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    auto occurrences = [&] {
      int n = 0;
      for (size_t at = out.find(marker); at != std::string::npos; at = out.find(marker, at + 1)) ++n;
      return n;
    };
    bool peer_closed = false;
    while (occurrences() < count && read_more(out, end, peer_closed)) {
    }
    return out;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  // Appends what arrives before `end`; false once the time is up or the server closed.
  bool read_more(std::string& out, Clock::time_point end, bool& peer_closed) {
    const int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return !(peer_closed = true);
    out.append(buf, size_t(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
};

// Polls `done` every 5 ms for up to `seconds`; its last answer.
template <class F>
bool wait_for(F done, double seconds) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (!done() && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return done();
}

int status_of(const std::string& reply) { return reply.size() > 12 ? std::stoi(reply.substr(9, 3)) : 0; }

// A server whose handler answers "METHOD PATH BODY"; /stream streams three pieces; /wait waits
// until its client leaves (or 10 s) and records that it saw it; /block waits for `release`.
struct TestServer {
  HttpLimits limits;
  std::atomic<int> handled{0};
  std::atomic<bool> saw_gone{false};
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::unique_ptr<HttpServer> http;
  int port = 0;

  explicit TestServer(HttpLimits l) : limits(l) {
    HttpHandlers h;
    h.before_body = [](const HttpRequest& req, HttpResponse& res) {
      if (req.header("Authorization") == "Bearer wrong") {
        res.status = 401;
        res.set_content("no", "text/plain");
        return true;
      }
      return false;
    };
    h.handle = [this](const HttpRequest& req, HttpResponse& res) { handle(req, res); };
    h.error = [](HttpResponse& res, int status, const std::string& message) {
      res.status = status;
      res.set_content(message, "text/plain");
    };
    http = std::make_unique<HttpServer>(limits, h);
    port = http->listen("127.0.0.1", 0);
  }

  void handle(const HttpRequest& req, HttpResponse& res) {
    ++handled;
    if (req.path == "/stream") {
      res.set_header("Content-Type", "text/plain");
      res.stream = [n = 0](BodyWriter& w) mutable { return w.write("piece" + std::to_string(n)) && ++n < 3; };
      return;
    }
    if (req.path == "/wait") {
      const auto end = Clock::now() + std::chrono::seconds(10);
      while (Clock::now() < end && !req.client_gone()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      saw_gone = req.client_gone();
    }
    if (req.path == "/block") {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, std::chrono::seconds(20), [&] { return release; });
    }
    res.set_content(req.method + " " + req.path + " " + req.body, "text/plain");
  }

  void unblock() {
    std::lock_guard<std::mutex> lk(mu);
    release = true;
    cv.notify_all();
  }
};

HttpLimits small_limits() {
  HttpLimits l;
  l.max_connections = 4;
  l.max_body_bytes = 1000;
  l.max_header_bytes = 2048;
  l.max_headers = 20;
  l.request_timeout_s = 5;
  return l;
}

}  // namespace

TEST(HttpLayer, PipelinedRequestsAnsweredInOrder) {
  TestServer s(small_limits());
  RawClient c(s.port);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_text("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                          "GET /b%3Ac?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  bool closed = false;
  const std::string reply = c.read_until_closed(10, &closed);
  EXPECT_TRUE(closed) << "the third asked to close";
  const size_t a = reply.find("POST /a abc"), b = reply.find("GET /b:c "), third = reply.find("GET /c ");
  ASSERT_NE(a, std::string::npos) << reply;
  ASSERT_NE(b, std::string::npos) << reply;
  ASSERT_NE(third, std::string::npos) << reply;
  EXPECT_TRUE(a < b && b < third) << reply;
  EXPECT_EQ(s.handled, 3);
}

TEST(HttpLayer, ChunkedBodyBoundedByTheBodyLimit) {
  TestServer s(small_limits());
  {
    RawClient c(s.port);
    ASSERT_TRUE(c.send_text("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
    const std::string reply = c.read_until("POST /echo abcde", 1, 10);
    EXPECT_EQ(status_of(reply), 200) << reply;
    EXPECT_NE(reply.find("POST /echo abcde"), std::string::npos) << reply;
  }
  {
    RawClient c(s.port);
    std::string body;
    for (int i = 0; i < 20; ++i) body += "64\r\n" + std::string(100, 'x') + "\r\n";  // 2000 bytes > 1000
    ASSERT_TRUE(c.send_text("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body));
    bool closed = false;
    const std::string reply = c.read_until_closed(10, &closed);
    EXPECT_EQ(status_of(reply), 413) << reply;
    EXPECT_TRUE(closed);
  }
  {
    RawClient c(s.port);  // a Content-Length over the limit is refused from the head
    ASSERT_TRUE(c.send_text("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"));
    EXPECT_EQ(status_of(c.read_until_closed(10)), 413);
  }
  EXPECT_EQ(s.handled, 1);
}

TEST(HttpLayer, HeaderCountAndBytesLimited) {
  TestServer s(small_limits());
  std::string many = "GET /h HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 21; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  RawClient c1(s.port);
  ASSERT_TRUE(c1.send_text(many + "\r\n"));
  EXPECT_EQ(status_of(c1.read_until_closed(10)), 431);
  RawClient c2(s.port);
  ASSERT_TRUE(c2.send_text("GET /h HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4096, 'y') + "\r\n\r\n"));
  EXPECT_EQ(status_of(c2.read_until_closed(10)), 431);
  RawClient c3(s.port);  // garbage
  ASSERT_TRUE(c3.send_text("NOT HTTP AT ALL\r\n\r\n"));
  EXPECT_EQ(status_of(c3.read_until_closed(10)), 400);
  EXPECT_EQ(s.handled, 0);
}

TEST(HttpLayer, RefusedBeforeTheBodyIsRead) {
  TestServer s(small_limits());
  RawClient c(s.port);
  // The head announces 900 bytes that never come: the refusal must not wait for them.
  ASSERT_TRUE(c.send_text("POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: 900\r\n\r\n"));
  const auto t0 = Clock::now();
  bool closed = false;
  const std::string reply = c.read_until_closed(10, &closed);
  EXPECT_EQ(status_of(reply), 401) << reply;
  EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 4.0);  // the linger ends within 2 s
  EXPECT_EQ(s.handled, 0);
}

TEST(HttpLayer, StreamsChunkedOverHttp11AndPlainOverHttp10) {
  TestServer s(small_limits());
  RawClient c11(s.port);
  ASSERT_TRUE(c11.send_text("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string r11 = c11.read_until("0\r\n\r\n", 1, 10);
  EXPECT_NE(r11.find("Transfer-Encoding: chunked"), std::string::npos) << r11;
  EXPECT_NE(r11.find("6\r\npiece0\r\n6\r\npiece1\r\n6\r\npiece2\r\n0\r\n\r\n"), std::string::npos) << r11;
  RawClient c10(s.port);
  ASSERT_TRUE(c10.send_text("GET /stream HTTP/1.0\r\nHost: x\r\n\r\n"));
  bool closed = false;
  const std::string r10 = c10.read_until_closed(10, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(r10.find("chunked"), std::string::npos) << r10;
  EXPECT_NE(r10.find("Connection: close"), std::string::npos) << r10;
  EXPECT_NE(r10.find("\r\n\r\npiece0piece1piece2"), std::string::npos) << r10;
}

TEST(HttpLayer, SlowClientsMakeRoomForANewOne) {
  HttpLimits l = small_limits();
  l.max_connections = 3;
  l.request_timeout_s = 30;  // the slow ones would hold their connections this long
  TestServer s(l);
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 3; ++i) {
    slow.push_back(std::make_unique<RawClient>(s.port));
    ASSERT_TRUE(slow.back()->send_text("GET /h HTTP/1.1\r\nHo"));  // a head that never ends
  }
  RawClient health(s.port);
  ASSERT_TRUE(health.send_text("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto t0 = Clock::now();
  const std::string reply = health.read_until("GET /health", 1, 10);
  EXPECT_EQ(status_of(reply), 200) << reply;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);  // ~1 s: evict_after
  bool closed = false;
  slow[0]->read_until_closed(5, &closed);  // the one waiting longest was closed
  EXPECT_TRUE(closed);
}

TEST(HttpLayer, RequestDeadlineClosesASlowHead) {
  HttpLimits l = small_limits();
  l.request_timeout_s = 0.5;
  TestServer s(l);
  RawClient c(s.port);
  ASSERT_TRUE(c.send_text("GET /h HTTP/1.1\r\n"));
  const auto t0 = Clock::now();
  bool closed = false;
  for (int i = 0; i < 20 && !closed; ++i) {  // a byte every 100 ms does not extend the deadline
    c.send_text("X");
    c.read_until_closed(0.1, &closed);
  }
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.9);
  EXPECT_EQ(s.handled, 0);
}

TEST(HttpLayer, WaitingHandlerSeesItsClientLeave) {
  TestServer s(small_limits());
  {
    RawClient c(s.port);
    ASSERT_TRUE(c.send_text("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(wait_for([&] { return s.handled > 0; }, 5));
  }  // closed here
  EXPECT_TRUE(wait_for([&] { return s.saw_gone.load(); }, 10));
}

TEST(HttpLayer, AtTheLimitANewClientWaitsForRoom) {
  HttpLimits l = small_limits();
  l.max_connections = 1;
  TestServer s(l);
  RawClient busy(s.port);
  ASSERT_TRUE(busy.send_text("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(wait_for([&] { return s.handled > 0; }, 5));
  RawClient next(s.port);  // in the kernel's backlog while the only connection runs a request
  ASSERT_TRUE(next.send_text("GET /next HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(next.read_until("GET /next", 1, 0.5), "");
  EXPECT_EQ(s.handled, 1);
  s.unblock();
  EXPECT_EQ(status_of(busy.read_until("GET /block", 1, 10)), 200);
  // The busy connection, idle now (keep-alive), is closed to make room after 1 s.
  EXPECT_EQ(status_of(next.read_until("GET /next", 1, 10)), 200);
  s.http->stop_accepting();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  RawClient refused(s.port);
  EXPECT_FALSE(refused.connected());
}
