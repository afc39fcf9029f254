// Whether an HTTP client is still connected while its request waits for a slot. cpp-httplib 0.11
// (Debian 12) gives a handler neither its socket nor word that the peer closed (a closed peer shows
// only when a write fails, and a queued request writes nothing), so a departed client's job would
// hold a queue place until it ran. The probe finds the connection's socket by its two addresses
// (it stays open while the handler waits on the job) and peeks at it: end of stream or a reset
// means the client left.
#pragma once
#include <string>

namespace taia::serve {

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
