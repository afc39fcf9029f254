// `taia eval --predictions` files: the input is the predictions JSONL, graded against a fixed
// 3-example task of each kind that grades completions (generative with ids, multiple choice).
#include "eval/predictions.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string gen = [] {
    const std::string text = "{\"id\": \"a\", \"question\": \"q\", \"answer\": \"1\"}\n"
                             "{\"id\": \"b\", \"question\": \"q\", \"answer\": \"x\"}\n"
                             "{\"id\": \"c\", \"question\": \"q\", \"answer\": \"2.5\"}\n";
    return taia::fuzz::write_input("gen.jsonl", reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }();
  static const std::string mc = [] {
    const std::string text = "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 1}\n"
                             "{\"query\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"gold\": 2}\n"
                             "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n";
    return taia::fuzz::write_input("mc.jsonl", reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }();
  const std::string path = taia::fuzz::write_input("predictions.jsonl", data, size);
  for (const std::string& task_path : {gen, mc})
    taia::fuzz::expect_clean("predictions", [&] {
      const taia::Task task = taia::load_task(task_path);
      taia::score_predictions(task, path, 0, {}, taia::fuzz::work_dir() + "/run", taia::Json::object());
    });
  return 0;
}
