#include "serve/client_probe.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>

namespace taia::serve {
namespace {

// The numeric address and port of a socket address (IPv4 or IPv6).
bool address_of(const sockaddr_storage& a, std::string& host, int& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    if (!inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf))) return false;
    port = ntohs(v4->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    if (!inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf))) return false;
    port = ntohs(v6->sin6_port);
  } else {
    return false;
  }
  host = buf;
  return true;
}

// Calls f(fd) for every open socket descriptor of this process until f returns true.
template <typename F>
void for_each_fd(F&& f) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    if (f(int(fd))) break;
  }
  closedir(dir);
}

// This process's listening socket on `port`, or -1.
int listening_socket(int port) {
  int found = -1;
  for_each_fd([&](int fd) {
    int listening = 0;
    socklen_t n = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &n) != 0 || !listening) return false;
    sockaddr_storage local{};
    socklen_t ln = sizeof(local);
    std::string host;
    int own_port = -1;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ln) != 0 || !address_of(local, host, own_port) ||
        own_port != port)
      return false;
    found = fd;
    return true;
  });
  return found;
}

}  // namespace

bool stop_listening(int port) {
  const int fd = listening_socket(port);
  return fd >= 0 && shutdown(fd, SHUT_RD) == 0;
}

bool set_listen_backlog(int port, int backlog) {
  const int fd = listening_socket(port);
  return fd >= 0 && listen(fd, backlog) == 0;  // listen() again on a listening socket sets its backlog
}

ClientProbe::ClientProbe(const std::string& remote_addr, int remote_port, int local_port) {
  for_each_fd([&](int fd) {
    sockaddr_storage peer{}, local{};
    socklen_t pn = sizeof(peer), ln = sizeof(local);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pn) != 0) return false;  // not a connected socket
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ln) != 0) return false;
    std::string peer_host, local_host;
    int peer_port = -1, own_port = -1;
    if (!address_of(peer, peer_host, peer_port) || !address_of(local, local_host, own_port)) return false;
    if (peer_port != remote_port || own_port != local_port || peer_host != remote_addr) return false;
    fd_ = fd;
    return true;
  });
}

bool ClientProbe::gone() const {
  if (fd_ < 0) return false;
  char byte;
  const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // the client sent more (a pipelined request): still there
  if (n == 0) return true;  // end of stream: it closed
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // a reset
}

}  // namespace taia::serve
