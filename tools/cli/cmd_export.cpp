// taia export: an adapter's TAIA (or other mode) result in a format other tools load:
//   hf   — a merged HF model folder (config.json, safetensors in the base's dtype, tokenizer files)
//   peft — a PEFT adapter folder holding only the selected modules
#include <iostream>
#include <map>
#include <optional>

#include "common.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "model/adapter.h"
#include "model/update_controls.h"
#include "model/init.h"
#include "model/gguf_lora.h"
#include "model/merge.h"
#include "model/peft_adapter.h"

namespace taia::cli {
namespace {

struct ExportArgs {
  std::string model, adapter, format_name, out, dtype;
  ModeArgs modes;
  bool json = false;
};

// --dtype of a GGUF export: the storage type of the tensors the merge changed.
DType gguf_dtype(const std::string& name) {
  static const std::map<std::string, DType> kTypes{{"f32", DType::F32},   {"f16", DType::F16},   {"bf16", DType::BF16},
                                                   {"q8_0", DType::Q8_0}, {"q4_0", DType::Q4_0}, {"q4_1", DType::Q4_1},
                                                   {"q5_0", DType::Q5_0}, {"q5_1", DType::Q5_1}, {"q2_k", DType::Q2_K},
                                                   {"q3_k", DType::Q3_K}, {"q4_k", DType::Q4_K}, {"q5_k", DType::Q5_K},
                                                   {"q6_k", DType::Q6_K}};
  const auto it = kTypes.find(name);
  TAIA_CHECK(it != kTypes.end(), "[export] --dtype expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, "
             "q3_k, q4_k, q5_k or q6_k, got '", name, "'");
  return it->second;
}

// ", 9 tensors copied, 4 rewritten (Q4_K -> Q8_0)" for the text summary of a GGUF export.
std::string gguf_summary(const Json& details) {
  if (!details.contains("tensors_copied")) return "";
  std::map<std::string, int> kinds;
  for (const auto& [name, change] : details["tensors_rewritten"].items()) ++kinds[change.get<std::string>()];
  std::string s = ", " + details["tensors_copied"].dump() + " tensors copied byte for byte, " +
                  std::to_string(details["tensors_rewritten"].size()) + " rewritten";
  for (const auto& [change, n] : kinds) s += " (" + std::to_string(n) + " " + change + ")";
  return s;
}

void run_export(const ExportArgs& a) {
  const ModeSpec mode = a.modes.spec();
  TAIA_CHECK(a.dtype.empty() || a.format_name == "gguf", "[export] --dtype applies to --format gguf");
  Json details = Json::object();
  // A quantized base is dequantized for the formats that merge: BF16 for an HF folder, F32 for a
  // GGUF (whose untouched tensors then keep their dequantized values exactly).
  LoadOptions lo;
  if (a.format_name == "hf") lo.block_dtype = DType::BF16;
  if (a.format_name == "gguf") lo.block_dtype = DType::F32;
  auto model = load_model(a.model, lo);
  auto adapter = load_adapter(a.adapter, model->config);
  const ModuleMask mask = apply_mode_in_place(*adapter, mode);  // a control: its weighted adapter, every module
  const int64_t modules = count_modules(*adapter, mask);
  const std::string mode_label = mode.control == UpdateControl::None ? mode_name(mask) : mode.name;
  if (a.format_name == "hf") {
    merge_adapter(*model, *adapter, mask);
    save_model_folder(*model, a.out, model_file_dtype(*model), a.model);
  } else if (a.format_name == "gguf") {
    TAIA_CHECK(model->source_format == "gguf", a.model, ": --format gguf exports a merged model of a GGUF base; "
               "this base is an HF folder (use --format hf)");
    merge_adapter(*model, *adapter, mask);
    const GgufModelExport written =
        save_gguf_model(*model, a.model, a.out, a.dtype.empty() ? std::nullopt : std::optional<DType>(gguf_dtype(a.dtype)));
    details["tensors_copied"] = written.copied;
    details["tensors_rewritten"] = written.rewritten;
  } else if (a.format_name == "gguf-lora") {
    save_gguf_lora(*adapter, mask, model->config, a.out);
  } else {
    keep_modules(*adapter, mask);
    save_peft_adapter(*adapter, a.out, model->source_path);
  }
  const std::string note = a.format_name == "hf" ? missing_tokenizer_note(a.out, a.model) : "";
  Json report{{"out", a.out}, {"format", a.format_name}, {"mode", mode_label}, {"modules", modules}};
  report.update(details);
  if (!note.empty()) report["note"] = note;
  if (a.json)
    print_json(report);
  else
    std::cout << "wrote " << a.out << " (" << a.format_name << ", " << mode_label << ", " << modules
              << " adapter modules" << gguf_summary(details) << ")" << (note.empty() ? "" : "; " + note) << std::endl;
}

}  // namespace

void register_export(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "Export an adapter's TAIA model: hf (merged folder) or peft (selected modules)");
  cmd->add_option("-m,--model", args->model, "Base model (GGUF or HF folder)")->required();
  cmd->add_option("--adapter", args->adapter, "PEFT LoRA adapter folder or llama.cpp GGUF LoRA file")->required();
  add_mode_options(cmd, &args->modes);
  // --format names the export format here (as in llama.cpp/HF tooling); --json asks for the
  // machine-readable summary that other subcommands give with --format json.
  cmd->add_option("--format", args->format_name, "Export format: hf (merged HF folder), peft (selected modules), gguf-lora (llama.cpp --lora file), gguf (merged model, GGUF base only)")
      ->check(CLI::IsMember({"hf", "peft", "gguf-lora", "gguf"}))->required();
  cmd->add_option("-o,--out", args->out, "Output folder")->required();
  cmd->add_option("--dtype", args->dtype,
                  "With --format gguf: the type of the tensors the merge changes (f32, f16, bf16, q8_0, q4_0, q4_1, "
                  "q5_0, q5_1, q2_k ... q6_k; default: each tensor's own type)");
  cmd->add_flag("--json", args->json, "Print the summary as one JSON object");
  cmd->callback([args] { run_export(*args); });
}

}  // namespace taia::cli
