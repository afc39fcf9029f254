// Evaluation task files. The first byte picks the extension (JSONL, JSON, CSV, text) and the
// second, when below the number of formats, a format override (else the layout is detected); the
// rest is the file.
#include "eval/tasks.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* kExt[] = {".jsonl", ".json", ".csv", ".txt"};
  const std::string path = taia::fuzz::write_input(std::string("task") + kExt[data[0] % 4], data + 2, size - 2);
  const auto& formats = taia::task_format_names();
  const std::string format = data[1] < formats.size() ? formats[data[1]] : "";
  taia::fuzz::expect_clean("task file", [&] { taia::load_task(path, format); });
  return 0;
}
