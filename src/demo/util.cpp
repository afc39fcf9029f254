#include "demo/util.h"

#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace taia::demo {

std::string fmt(double v, int digits) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void write_jsonl(const std::string& path, const std::vector<Json>& records) {
  std::string text;
  for (const Json& r : records) text += r.dump() + "\n";
  write_file_atomic(path, text);
}

void remove_folder(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  TAIA_CHECK(!ec, "[demo] ", dir, ": cannot remove the folder: ", ec.message());
}

}  // namespace taia::demo
