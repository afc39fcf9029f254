// taia analyze: where a fine-tuning update goes. On the given text, per layer, how far the
// attention and the FFN outputs move between the base and the fine-tuned model (relative norm of
// the change, cosine), and the update norm of every module.
#include <cstdio>
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "eval/drift.h"
#include "io/gguf.h"
#include "model/adapter.h"
#include "model/update_controls.h"
#include "model/inspect.h"
#include "model/loader.h"
#include "io/gguf_keys.h"

namespace taia::cli {
namespace {

struct AnalyzeArgs {
  std::string path, model;
  DataFileArgs data;
  ModeArgs modes;
  OutputFormat format = OutputFormat::Text;
};

// A PEFT folder or a GGUF file whose general.type is "adapter": an adapter; anything else a
// fine-tuned model (HF folder or GGUF).
bool is_adapter(const std::string& path) {
  if (is_directory(path)) return file_exists(path + "/adapter_config.json");
  GgufFile g(path);
  const GgufValue* type = g.find(gguf_key(GgufKey::GeneralType));
  return type && g.get_string(gguf_key(GgufKey::GeneralType)) == "adapter";
}

std::string layers_to_text(const Json& r) {
  std::string out = "  layer   attention: relative change   cosine     FFN: relative change   cosine\n";
  for (const Json& l : r["drift"]["layers"]) {
    char line[128];
    std::snprintf(line, sizeof(line), "  %5lld   %26.4g   %7.4f   %20.4g   %7.4f\n", (long long)l["layer"].get<int64_t>(),
                  l["attention"]["relative_change"].get<double>(), l["attention"]["mean_cosine"].get<double>(),
                  l["ffn"]["relative_change"].get<double>(), l["ffn"]["mean_cosine"].get<double>());
    out += line;
  }
  return out;
}

void run_analyze(const AnalyzeArgs& a) {
  auto base = load_model(a.model);
  const auto sequences = data_file_sequences(a.data, a.model);
  Json r{{"path", a.path}, {"model", a.model}, {"data", a.data.path}, {"sequences", int64_t(sequences.size())}};
  if (is_adapter(a.path)) {
    const ModeSpec mode = a.modes.spec("vanilla");
    auto adapter = load_adapter(a.path, base->config);
    const ModuleMask mask = apply_mode_in_place(*adapter, mode);  // a control: its weighted adapter
    r["kind"] = "adapter";
    r["mode"] = mode.control == UpdateControl::None ? mode_name(mask) : mode.name;
    r["drift"] = drift_json(measure_drift(*base, nullptr, adapter.get(), mask, sequences));
    r["modules"] = is_directory(a.path) ? inspect_path(a.path)["modules"] : Json::array();
  } else {
    if (!a.modes.mode.empty() || !a.modes.modules.empty())
      throw CLI::ValidationError("--mode/--modules", "apply to an adapter; " + a.path + " is a fine-tuned model");
    auto finetuned = load_model(a.path);
    r["kind"] = "finetuned";
    r["drift"] = drift_json(measure_drift(*base, finetuned.get(), nullptr, ModuleMask{}, sequences));
    r["modules"] = weight_update_norms(*base, *finetuned);
  }
  if (a.format == OutputFormat::Json) {
    print_json(r);
    return;
  }
  std::cout << a.path << " (" << r["kind"].get<std::string>() << (r.contains("mode") ? ", mode " + r["mode"].get<std::string>() : "")
            << ") against " << a.model << " on " << r["drift"]["tokens"].get<int64_t>() << " tokens of " << a.data.path
            << "\n" << layers_to_text(r);
}

}  // namespace

void register_analyze(CLI::App& app) {
  auto args = std::make_shared<AnalyzeArgs>();
  CLI::App* cmd = app.add_subcommand("analyze", "Where an update goes: per layer, how far the attention and FFN outputs "
                                                "move from the base on given text, and the update norm per module");
  cmd->add_option("path", args->path, "Adapter (PEFT folder or GGUF LoRA file) or fine-tuned model (HF folder or GGUF)")
      ->required();
  cmd->add_option("-m,--model", args->model, "The base model (GGUF file or HF folder)")->required();
  add_data_file_options(cmd, &args->data);
  add_mode_options(cmd, &args->modes, "vanilla");
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_analyze(*args); });
}

}  // namespace taia::cli
