// Continues a prompt greedily through taia's public API (include/taia/taia.h) and prints one JSON
// line; with --logits, also writes the prompt's logits [positions, vocab] as raw float32.
//   taia_example_generate MODEL (--prompt TEXT | --prompt-ids 1,2,3) [-n N] [--adapter PATH] [--mode M]
//                         [--logits FILE]
#include <taia/taia.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) ids.push_back(std::stoi(item));
  return ids;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0]
              << " MODEL (--prompt TEXT | --prompt-ids 1,2,3) [-n N] [--adapter PATH] [--mode M] [--logits FILE]\n";
    return 2;
  }
  std::string prompt, prompt_ids, adapter, logits_path;
  taia::api::GenerateOptions options;
  options.temperature = 0;  // greedy
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--prompt") prompt = value;
    else if (flag == "--prompt-ids") prompt_ids = value;
    else if (flag == "-n") options.max_tokens = std::stoll(value);
    else if (flag == "--adapter") adapter = value;
    else if (flag == "--mode") options.mode = value;
    else if (flag == "--logits") logits_path = value;
    else {
      std::cerr << "unknown option " << flag << "\n";
      return 2;
    }
  }
  try {
    auto model = taia::api::Model::load(argv[1]);
    if (!adapter.empty()) model.load_adapter(adapter);
    const taia::api::Generation g =
        prompt_ids.empty() ? model.generate(prompt, options) : model.generate(parse_ids(prompt_ids), options);
    if (!logits_path.empty()) {
      const std::vector<float> logits = model.forward(g.prompt_ids, options);
      std::ofstream(logits_path, std::ios::binary)
          .write(reinterpret_cast<const char*>(logits.data()), std::streamsize(logits.size() * sizeof(float)));
    }
    std::cout << "{\"version\": " << json_string(taia::api::version()) << ", \"output_ids\": [";
    for (size_t i = 0; i < g.output_ids.size(); ++i) std::cout << (i ? ", " : "") << g.output_ids[i];
    std::cout << "], \"text\": " << json_string(g.text) << "}" << std::endl;
  } catch (const taia::api::Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
