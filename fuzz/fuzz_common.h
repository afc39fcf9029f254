// Shared pieces of the libFuzzer targets: the input goes to a file (every parser reads files),
// a taia::Error is the expected outcome of a bad input, anything else escaping is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"

namespace taia::fuzz {

// A folder of this process's own under /tmp.
inline const std::string& work_dir() {
  static const std::string dir = [] {
    const std::string d = "/tmp/taia-fuzz-" + std::to_string(::getpid());
    make_directories(d);
    return d;
  }();
  return dir;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = work_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

// Runs f; taia::Error is a clean rejection. Any other exception is reported and aborts, so the
// fuzzer keeps the input as a crash.
template <typename F>
void expect_clean(const char* what, F&& f) {
  try {
    f();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[fuzz] %s: escaped exception (not taia::Error): %s\n", what, e.what());
    std::abort();
  }
}

}  // namespace taia::fuzz
