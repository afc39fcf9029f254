// Who may talk to `taia serve` from a browser: without this, any web page the user opens could
// drive a server on 127.0.0.1 (CSRF: a text/plain POST needs no preflight; DNS rebinding: a
// hostile name resolving to 127.0.0.1). Checked before every route (docs/SERVING.md):
// - Host: bound to loopback, only loopback names (localhost, 127.0.0.1, [::1]) unless
//   --allow-host adds names; bound elsewhere, any Host unless --allow-host lists them.
// - Origin: absent (curl, SDKs), the server's own (the page at /), or one of --cors-origin
//   ("*": any); a preflight (OPTIONS) from such an origin gets the CORS headers.
// - POST bodies must be declared application/json.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "serve/api.h"

namespace taia::serve {

struct BrowserPolicy {
  std::vector<std::string> allowed_hosts;  // host names without port; empty: any
  std::vector<std::string> cors_origins;   // scheme://host[:port]; "*": any
};

// The default for a server bound to `bind_host`, plus the names and origins given.
BrowserPolicy make_policy(const std::string& bind_host, const std::vector<std::string>& allow_hosts,
                          const std::vector<std::string>& cors_origins);
bool is_loopback_address(const std::string& host);
// "localhost:8080" -> "localhost", "[::1]:80" -> "[::1]".
std::string host_name(const std::string& host_header);
// Whether a cross-origin caller from `origin` gets CORS headers.
bool cors_allowed(const BrowserPolicy& p, const std::string& origin);
// The refusal a request gets (403 / 415), or nothing when it may go on.
std::optional<ApiError> check_browser_policy(const BrowserPolicy& p, const std::string& method,
                                             const std::string& host_header, const std::string& origin,
                                             const std::string& content_type);

}  // namespace taia::serve
