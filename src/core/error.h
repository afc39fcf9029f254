// The project's error type. Library code throws taia::Error; only the CLI catches it,
// prints the message and exits with code 1. Messages follow "[where] expected X, got Y".
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace taia {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates any streamable values into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(str_cat(args...));
}

}  // namespace taia

#define TAIA_CHECK(cond, ...)          \
  do {                                 \
    if (!(cond)) ::taia::fail(__VA_ARGS__); \
  } while (0)
