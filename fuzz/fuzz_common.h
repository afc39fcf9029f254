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
#include "model/config.h"

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

// The 2-layer base that adapter inputs are checked against (hidden 8, FFN 16, 2 heads, 1 KV head).
inline ModelConfig tiny_base_config() {
  ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  return c;
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
