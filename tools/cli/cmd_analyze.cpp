// taia analyze: where a fine-tuning update goes. On the given text, per layer, how far the
// attention and the FFN outputs move between the base and the fine-tuned model (relative norm of
// the change, cosine), and the update norm of every module; with --neurons K, per layer the K FFN
// neurons whose activations moved most (for an adapter: in each of vanilla, taia and taif, or in
// the one mode given).
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
  int64_t neurons = 0;  // 0: no neuron report
  OutputFormat format = OutputFormat::Text;
};

// The neuron report as text: per mode and layer, the top neurons "index (rms change)".
std::string neurons_to_text(const Json& by_mode) {
  std::string out;
  for (const auto& [mode, report] : by_mode.items()) {
    out += "FFN neurons whose activations moved most (" + mode + "; root mean square change per token):\n";
    for (const Json& l : report["layers"]) {
      char head[96];
      std::snprintf(head, sizeof(head), "  layer %3lld (all: %.4g, top share %.2f):", (long long)l["layer"].get<int64_t>(),
                    l["rms_change"].get<double>(), l["top_share"].get<double>());
      out += head;
      for (const Json& n : l["neurons"]) {
        char item[64];
        std::snprintf(item, sizeof(item), " %lld (%.4g)", (long long)n["neuron"].get<int64_t>(), n["rms_change"].get<double>());
        out += item;
      }
      out += "\n";
    }
  }
  return out;
}

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
    if (a.neurons > 0) {  // the plain modes side by side, unless one mode was asked for
      r["neurons"] = Json::object();
      const bool one = !a.modes.mode.empty() || !a.modes.modules.empty();
      if (one) {
        r["neurons"][r["mode"].get<std::string>()] =
            neurons_json(measure_neuron_drift(*base, nullptr, adapter.get(), mask, sequences), a.neurons);
      } else {
        auto plain = load_adapter(a.path, base->config);
        for (const std::string& m : finetuned_mode_names())
          r["neurons"][m] = neurons_json(measure_neuron_drift(*base, nullptr, plain.get(), parse_mode(m), sequences), a.neurons);
      }
    }
  } else {
    if (!a.modes.mode.empty() || !a.modes.modules.empty())
      throw CLI::ValidationError("--mode/--modules", "apply to an adapter; " + a.path + " is a fine-tuned model");
    auto finetuned = load_model(a.path);
    r["kind"] = "finetuned";
    r["drift"] = drift_json(measure_drift(*base, finetuned.get(), nullptr, ModuleMask{}, sequences));
    r["modules"] = weight_update_norms(*base, *finetuned);
    if (a.neurons > 0)
      r["neurons"] = Json{{"finetuned", neurons_json(measure_neuron_drift(*base, finetuned.get(), nullptr, ModuleMask{}, sequences),
                                                     a.neurons)}};
  }
  if (a.format == OutputFormat::Json) {
    print_json(r);
    return;
  }
  std::cout << a.path << " (" << r["kind"].get<std::string>() << (r.contains("mode") ? ", mode " + r["mode"].get<std::string>() : "")
            << ") against " << a.model << " on " << r["drift"]["tokens"].get<int64_t>() << " tokens of " << a.data.path
            << "\n" << layers_to_text(r) << (r.contains("neurons") ? neurons_to_text(r["neurons"]) : std::string());
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
  cmd->add_option("--neurons", args->neurons,
                  "Also name, per layer, the K FFN neurons whose activations (act(gate) * up, the input of down_proj) "
                  "moved most on the text: for an adapter in vanilla, taia and taif (or the --mode given), for a "
                  "fine-tuned model as it is")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_analyze(*args); });
}

}  // namespace taia::cli
