// The TAIA modes, declared once for the library and the CLI: which adapter modules (or which
// fine-tuned projections) a model runs with. base = none, vanilla = all seven, taia = attention
// (q, k, v, o), taif = FFN (gate, up, down), or an explicit module list ("q,k,v").
// Beside them the update-size controls (is it the FFN that harms, or any smaller update?):
// random-half[-N] and scaled, whose kept update is computed from the update itself, so they run
// only where the adapter or the fine-tuned model is at hand (model/update_controls.h).
#pragma once
#include <array>
#include <cstdint>
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

// A plain mode's mask: a mode name or a module list. A control (random-half, scaled) is refused
// by name: its modules depend on the update, so callers with an update use parse_mode_spec.
ModuleMask parse_mode(const std::string& mode_or_modules);

// The update-size controls.
//   random-half[-N]: a random set of the trained modules (layer, projection) holding as many
//     trained parameters as the attention set (the largest draw-N subset not above it); N >= 1
//     numbers the draw (random-half = random-half-1).
//   scaled: every update of layer l times f_l = ||attention update of l|| / ||update of l||
//     (Frobenius norms), so each layer moves as far as TAIA moves it, in vanilla's direction.
enum class UpdateControl { None, RandomHalf, Scaled };
struct ModeSpec {
  std::string name;   // as given: "taia", "q,k,v", "random-half-2", "scaled"
  ModuleMask mask{};  // a plain mode's modules; a control's: every module (its weights come from the update)
  UpdateControl control = UpdateControl::None;
  uint64_t draw = 0;  // random-half's draw number
  bool any() const;   // whether any update runs (false for base)
};
ModeSpec parse_mode_spec(const std::string& mode);  // a plain mode or a control
const std::vector<ModeInfo>& control_table();      // random-half, scaled (their help; mask unused)
bool is_mode(const std::string& mode);              // parse_mode_spec accepts it
bool is_named_mode(const std::string& mode);        // a mode name or a control (not a module list)
inline constexpr const char* kNamedModesWords = "base, vanilla, taia, taif, random-half[-N] or scaled";
std::string mode_name(const ModuleMask& mask);              // "taia", "vanilla", ... or the module list
// What --mode / --modules select: the module list when given, else the mode, else default_mode.
ModuleMask select_modules(const std::string& mode, const std::string& modules, const std::string& default_mode);

}  // namespace taia
