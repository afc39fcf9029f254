// `taia serve` request bodies: the first byte picks the endpoint (chat or completions), the rest
// is the body. An ApiError (an HTTP 4xx for the client) or a taia::Error is the expected outcome.
#include "fuzz_common.h"
#include "serve/api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  taia::serve::Limits limits;
  limits.max_body_bytes = 1 << 16;
  taia::fuzz::expect_clean("serve request", [&] {
    try {
      taia::serve::parse_completion_request(body, (data[0] & 1) != 0, limits, {"tiny", "other"});
    } catch (const taia::serve::ApiError& e) {
      if (e.status < 400 || e.status > 499) std::abort();  // a client error, never a server one
    }
  });
  return 0;
}
