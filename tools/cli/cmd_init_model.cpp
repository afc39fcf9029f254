// taia init-model: a randomly initialised model saved as an HF folder.
#include <iostream>

#include "common.h"
#include "model/init.h"

namespace taia::cli {
namespace {

struct InitArgs {
  std::string config, out, dtype = "f32", init = "hf";
  uint64_t seed = 0;
  float std = 0.02f;
  OutputFormat format = OutputFormat::Text;
};

void run_init(const InitArgs& a) {
  ModelConfig c = config_from_hf_json(parse_json_file(a.config), a.config);
  const DType dtype = parse_dtype(a.dtype);
  auto model = init_model(c, a.seed, dtype, a.init == "full" ? InitScheme::Full : InitScheme::Hf, a.std);
  save_hf_folder(*model, a.out, dtype);
  if (a.format == OutputFormat::Json) {
    print_json({{"out", a.out}, {"parameters", c.parameter_count()}, {"dtype", dtype_name(dtype)}, {"seed", a.seed}});
  } else {
    std::cout << "wrote " << a.out << " (" << arch_name(c.arch) << ", " << c.parameter_count() << " parameters, "
              << dtype_name(dtype) << ", seed " << a.seed << ")" << std::endl;
  }
}

}  // namespace

void register_init_model(CLI::App& app) {
  auto args = std::make_shared<InitArgs>();
  CLI::App* cmd = app.add_subcommand("init-model", "Write a randomly initialised model as an HF folder");
  cmd->add_option("-c,--config", args->config, "HF config.json (LlamaForCausalLM or Qwen2ForCausalLM)")->required();
  cmd->add_option("-o,--out", args->out, "Output folder (config.json + model.safetensors)")->required();
  cmd->add_option("--seed", args->seed, "Initialisation seed")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "Storage dtype")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
  cmd->add_option("--init", args->init,
                  "hf: HF's init (norms 1, biases 0); full: also random norms and biases (parity tests)")
      ->check(CLI::IsMember({"hf", "full"}))->capture_default_str();
  cmd->add_option("--std", args->std, "Standard deviation of the normal init")->check(CLI::PositiveNumber)->capture_default_str();
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_init(*args); });
}

}  // namespace taia::cli
