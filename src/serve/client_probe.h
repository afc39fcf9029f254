// Whether an HTTP client is still connected while its request waits for a slot. cpp-httplib 0.11
// (Debian 12) gives a handler neither its socket nor word that the peer closed (a closed peer shows
// only when a write fails, and a queued request writes nothing), so a departed client's job would
// hold a queue place until it ran. The probe finds the connection's socket by its two addresses
// (it stays open while the handler waits on the job) and peeks at it: end of stream or a reset
// means the client left.
//
// stop_listening works around the same library for the drain: its stop() also ends every
// streaming response at once (its chunked writer quits when the server is stopping), so the
// listening socket is found the same way and shut down instead: accept fails, httplib's accept
// loop ends and new connections are refused, while the open connections are served to their end.
#pragma once
#include <string>

namespace taia::serve {

// Shuts down this process's listening socket on `port`; false when none was found.
bool stop_listening(int port);
// Sets the accept queue of this process's listening socket on `port` (cpp-httplib 0.11 listens
// with a fixed backlog of 5: a burst of clients past it has its SYNs dropped); false when none.
bool set_listen_backlog(int port, int backlog);

class ClientProbe {
 public:
  ClientProbe() = default;  // a probe that knows no socket: never gone
  ClientProbe(const std::string& remote_addr, int remote_port, int local_port);
  // True once the client has closed or reset the connection (data it sent since counts as alive).
  bool gone() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace taia::serve
