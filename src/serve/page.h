// The page `taia serve` answers at GET / (the asset serve/page.html, embedded at build time by
// cmake/embed_text.cmake): a prompt box and the four modes' answers side by side,
// streaming from the server's own API. Self-contained (no external scripts, styles or fonts);
// model text is only ever set as textContent. URL parameters prefill and start it:
// /?prompt=TEXT&adapter=NAME&max_tokens=N&endpoint=completions|chat&run=1 (&stream=0: one JSON
// answer per mode instead of a stream, for headless browsers whose virtual time does not wait
// for a streamed body).
#pragma once
#include <string>

namespace taia::serve {

const std::string& compare_page_html();

}  // namespace taia::serve
