// taia merge: a TAIA / TAIF / vanilla model as an HF folder, either from a base + PEFT adapter
// (the selected LoRA modules merged) or from a base + fully fine-tuned model (selected
// projections fine-tuned, the others back to the base).
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "model/init.h"
#include "model/merge.h"
#include "model/adapter.h"
#include "model/update_controls.h"

namespace taia::cli {
namespace {

struct MergeArgs {
  std::string base, finetuned, adapter, revert, out;
  std::optional<DType> dtype;  // --dtype (nullopt: as stored)
  ModeArgs modes;
  OutputFormat format = OutputFormat::Text;
};

void run_merge(const MergeArgs& a) {
  TAIA_CHECK(a.finetuned.empty() != a.adapter.empty(), "[merge] expected exactly one of --finetuned and --adapter");
  const ModeSpec mode = a.modes.spec();
  LoadOptions lo;
  lo.linear_dtype = a.dtype;
  lo.block_dtype = DType::BF16;  // a quantized base merges in BF16 (what an HF folder of it holds)
  Json report;
  std::unique_ptr<Model> result;
  if (!a.adapter.empty()) {
    TAIA_CHECK(a.revert.empty(), "[merge] --revert applies to --finetuned merges only");
    result = load_model(a.base, lo);
    auto adapter = load_adapter(a.adapter, result->config);
    merge_adapter(*result, *adapter, apply_mode_in_place(*adapter, mode));
  } else {
    result = load_model(a.finetuned, lo);
    auto base = load_model(a.base, lo);
    Json prov = Json::object();
    for (const auto& [name, from] : merge_full(*result, *base, mode.mask, parse_revert(a.revert))) prov[name] = from;
    if (mode.control != UpdateControl::None) {  // a control: every projection's update weighted (0 = the base's bits)
      const UpdateSizes sizes = full_update_sizes(*result, *base);
      const ModuleWeights w = mode_weights(mode, sizes);
      report["update"] = describe_mode_weights(sizes, w, result->config.proj_layout());
      merge_full_weighted(*result, *base, w);
      for (auto& [name, from] : prov.items())
        if (const auto p = proj_of_tensor(name)) {
          const double wi = w[size_t(hf_tensor_layer(name))][size_t(module_slot(*p, result->config.proj_layout()))];
          from = wi == 0 ? "base" : wi == 1 ? "finetuned" : "scaled";
        }
    }
    report["provenance"] = prov;
  }
  // The tokenizer files and generation config come from the base (an adapter merge) or from the
  // fine-tuned folder (a full merge), so the folder runs as it is in taia and in HF.
  const std::string source = a.adapter.empty() ? a.finetuned : a.base;
  save_model_folder(*result, a.out, model_file_dtype(*result), source);
  const std::string note = missing_tokenizer_note(a.out, source);
  report["out"] = a.out;
  report["mode"] = mode.control == UpdateControl::None ? mode_name(mode.mask) : mode.name;
  if (!note.empty()) report["note"] = note;
  if (a.format == OutputFormat::Json)
    print_json(report);
  else
    std::cout << "wrote " << a.out << " (" << report["mode"].get<std::string>() << ")" << (note.empty() ? "" : "; " + note) << std::endl;
}

}  // namespace

void register_merge(CLI::App& app) {
  auto args = std::make_shared<MergeArgs>();
  CLI::App* cmd = app.add_subcommand("merge", "Write a TAIA (or TAIF / vanilla / custom) model as an HF folder");
  cmd->add_option("--base", args->base, "The pretrained model (GGUF or HF folder)")->required();
  cmd->add_option("--finetuned", args->finetuned, "A fully fine-tuned model of the same shape");
  cmd->add_option("--adapter", args->adapter, "A PEFT LoRA adapter folder or llama.cpp GGUF LoRA file");
  add_mode_options(cmd, &args->modes);
  cmd->add_option("--revert", args->revert, "With --finetuned: also take these from the base: embeddings,norms,lm_head");
  cmd->add_option("-o,--out", args->out, "Output HF folder")->required();
  add_dtype_option(cmd, &args->dtype, "Weights in memory and in the written folder: auto (as stored), f32, bf16, f16");
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_merge(*args); });
}

}  // namespace taia::cli
