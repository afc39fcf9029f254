// The TAIA modes, declared once for the library and the CLI: which adapter modules (or which
// fine-tuned projections) a model runs with. base = none, vanilla = all seven, taia = attention
// (q, k, v, o), taif = FFN (gate, up, down), or an explicit module list ("q,k,v").
#pragma once
#include <array>
#include <string>
#include <vector>

#include "model/tensor_names.h"

namespace taia {

using ModuleMask = std::array<bool, kNumProj>;

inline constexpr const char* kBaseMode = "base";     // the pretrained model, no update
inline constexpr const char* kDefaultMode = "taia";  // what runs when an adapter is given without a mode

struct ModeInfo {
  const char* name;  // "taia"
  const char* help;  // "attention updates only (q,k,v,o)"
  ModuleMask mask;
};
const std::vector<ModeInfo>& mode_table();      // base, vanilla, taia, taif in this order
const std::vector<std::string>& finetuned_mode_names();  // every mode but base
const std::vector<std::string>& mode_names();   // their names
// "base = no update, the pretrained model; vanilla = all updates; ...": the one help text.
std::string modes_help();

// "all", "attn", "ffn" or a comma list of q,k,v,o,gate,up,down (with or without _proj); qkv and
// gate_up stand for their groups (Phi-3's fused modules).
ModuleMask parse_targets(const std::string& spec);
// The module names a mask adapts ("q_proj", ...; a fused group once: "qkv_proj"), and joined
// with commas. A fused group counts when its first projection is set (masks keep groups whole).
std::vector<std::string> target_module_names(const ModuleMask& t, ProjLayout layout = ProjLayout::Split);
std::string targets_to_string(const ModuleMask& t, ProjLayout layout = ProjLayout::Split);
// The spec parse_targets reads back: "all", "attn", "ffn" for those sets, else the module list.
std::string targets_spec(const ModuleMask& t);

ModuleMask parse_mode(const std::string& mode_or_modules);  // a mode name or a module list
std::string mode_name(const ModuleMask& mask);              // "taia", "vanilla", ... or the module list
// What --mode / --modules select: the module list when given, else the mode, else default_mode.
ModuleMask select_modules(const std::string& mode, const std::string& modules, const std::string& default_mode);

}  // namespace taia
