// taia forward: logits of every prompt position, for parity checks against other engines.
#include <iostream>

#include "common.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "model/decoder.h"

namespace taia::cli {
namespace {

struct ForwardArgs {
  std::string model, prompt_ids, out;
  std::optional<DType> dtype;  // --dtype (nullopt: as stored)
  DecoderSettings run{Precision::F32, false, DType::F32};  // --compute, --exact-activations, --kv-dtype
  bool no_mmap = false;
  int threads = 0;
  OutputFormat format = OutputFormat::Text;
  AdapterArgs adapter;
};

void run_forward(const ForwardArgs& a) {
  std::vector<int32_t> ids = parse_id_list(a.prompt_ids, "--prompt-ids");
  auto model = load_for_run(a.model, a.dtype, a.threads, a.no_mmap);
  const ModelConfig& c = model->config;
  check_ids_in_vocab(ids, c, a.model);
  TAIA_CHECK(int64_t(ids.size()) <= c.max_position_embeddings, "[forward] ", ids.size(),
             " ids exceed max_position_embeddings = ", c.max_position_embeddings);
  ModuleMask mask;
  auto adapter = apply_adapter_args(a.adapter, *model, &mask);
  Decoder decoder(*model);
  decoder.set_adapter(adapter.get(), mask);
  decoder.configure(a.run);
  KVCache cache(c, int64_t(ids.size()), 0, decoder.kv_dtype());
  std::vector<float> logits(ids.size() * size_t(c.vocab_size));  // [T, V]
  decoder.forward(cache, ids.data(), int64_t(ids.size()), logits.data(), /*all_logits=*/true);
  if (!a.out.empty()) {
    AtomicFile f(a.out);
    f.write(logits.data(), logits.size() * sizeof(float));
    f.commit();
  }
  std::vector<int32_t> argmax_ids;
  for (size_t t = 0; t < ids.size(); ++t) {
    const float* row = logits.data() + t * size_t(c.vocab_size);
    argmax_ids.push_back(int32_t(std::max_element(row, row + c.vocab_size) - row));
  }
  if (a.format == OutputFormat::Json) {
    Json j;
    j["prompt_ids"] = ids;
    j["vocab_size"] = c.vocab_size;
    j["argmax_ids"] = argmax_ids;
    j["logits_file"] = a.out.empty() ? Json(nullptr) : Json(a.out);
    print_json(j);
  } else {
    std::cout << "positions " << ids.size() << ", vocab " << c.vocab_size << ", argmax";
    for (int32_t id : argmax_ids) std::cout << ' ' << id;
    std::cout << (a.out.empty() ? "" : ", logits written to " + a.out) << std::endl;
  }
}

}  // namespace

void register_forward(CLI::App& app) {
  auto args = std::make_shared<ForwardArgs>();
  CLI::App* cmd = app.add_subcommand("forward", "Logits of every position of a prompt (for parity checks)");
  cmd->add_option("-m,--model", args->model, "GGUF file or HF model folder")->required();
  cmd->add_option("--prompt-ids", args->prompt_ids, "Comma-separated token ids")->required();
  cmd->add_option("-o,--out", args->out, "Write logits [positions, vocab] as raw little-endian float32");
  add_dtype_option(cmd, &args->dtype, "Weights in memory: auto (as stored), f32, bf16, f16");
  add_decoder_options(cmd, &args->run);
  add_no_mmap_option(cmd, &args->no_mmap);
  add_adapter_options(cmd, &args->adapter);
  add_threads_option(cmd, &args->threads);
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_forward(*args); });
}

}  // namespace taia::cli
