#include "serve/policy.h"

#include <algorithm>

namespace taia::serve {

bool is_loopback_address(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

std::string host_name(const std::string& host_header) {
  if (!host_header.empty() && host_header[0] == '[') {
    const size_t close = host_header.find(']');
    return close == std::string::npos ? host_header : host_header.substr(0, close + 1);
  }
  return host_header.substr(0, host_header.find(':'));
}

BrowserPolicy make_policy(const std::string& bind_host, const std::vector<std::string>& allow_hosts,
                          const std::vector<std::string>& cors_origins) {
  BrowserPolicy p;
  p.cors_origins = cors_origins;
  if (is_loopback_address(bind_host) || !allow_hosts.empty()) {
    p.allowed_hosts = allow_hosts;
    if (is_loopback_address(bind_host))
      for (const char* h : {"localhost", "127.0.0.1", "[::1]"}) p.allowed_hosts.push_back(h);
  }
  return p;
}

bool cors_allowed(const BrowserPolicy& p, const std::string& origin) {
  return std::any_of(p.cors_origins.begin(), p.cors_origins.end(),
                     [&](const std::string& o) { return o == "*" || o == origin; });
}

std::optional<ApiError> check_browser_policy(const BrowserPolicy& p, const std::string& method,
                                             const std::string& host_header, const std::string& origin,
                                             const std::string& content_type) {
  const std::string name = host_name(host_header);
  if (!p.allowed_hosts.empty() &&
      std::find(p.allowed_hosts.begin(), p.allowed_hosts.end(), name) == p.allowed_hosts.end())
    return ApiError(403, "invalid_request_error",
                    "Host '" + host_header + "' is not served here (allowed: loopback names and --allow-host)");
  const bool same_origin = origin == "http://" + host_header;
  if (!origin.empty() && !same_origin && !cors_allowed(p, origin))
    return ApiError(403, "invalid_request_error",
                    "Origin '" + origin + "' may not call this server (--cors-origin allows a page elsewhere)");
  if (method == "POST") {
    const std::string type = content_type.substr(0, content_type.find(';'));
    if (type != "application/json")
      return ApiError(415, "invalid_request_error",
                      "Content-Type must be application/json, got '" + content_type + "'");
  }
  return std::nullopt;
}

}  // namespace taia::serve
