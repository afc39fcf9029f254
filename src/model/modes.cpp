#include "model/modes.h"

#include "core/error.h"

namespace taia {

namespace {
constexpr ModuleMask kNone{};
constexpr ModuleMask kAll{true, true, true, true, true, true, true};
constexpr ModuleMask kAttention{true, true, true, true, false, false, false};
constexpr ModuleMask kFfn{false, false, false, false, true, true, true};
}  // namespace

const std::vector<ModeInfo>& mode_table() {
  static const std::vector<ModeInfo> table = {
      {kBaseMode, "no update, the pretrained model", kNone},
      {"vanilla", "all updates", kAll},
      {"taia", "attention updates only (q,k,v,o)", kAttention},
      {"taif", "FFN updates only (gate,up,down)", kFfn},
  };
  return table;
}

const std::vector<std::string>& mode_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const ModeInfo& m : mode_table()) n.push_back(m.name);
    return n;
  }();
  return names;
}

const std::vector<std::string>& finetuned_mode_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const ModeInfo& m : mode_table())
      if (m.mask != kNone) n.push_back(m.name);
    return n;
  }();
  return names;
}

std::string modes_help() {
  std::string s;
  for (const ModeInfo& m : mode_table()) s += std::string(s.empty() ? "" : "; ") + m.name + " = " + m.help;
  return s;
}

std::string targets_spec(const ModuleMask& t) {
  if (t == kAll) return "all";
  if (t == kAttention) return "attn";
  if (t == kFfn) return "ffn";
  return targets_to_string(t);
}

ModuleMask parse_targets(const std::string& spec) {
  if (spec == "all" || spec == "all-linear") return kAll;
  if (spec == "attn" || spec == "attention") return kAttention;
  if (spec == "ffn" || spec == "mlp") return kFfn;
  ModuleMask t{};
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(start, comma - start);
    const auto projs = projs_from_name(item);
    TAIA_CHECK(!projs.empty(), "[targets] expected all, attn, ffn or a list of q,k,v,o,gate,up,down (or Phi-3's "
               "fused qkv, gate_up), got '", item, "'");
    for (Proj p : projs) t[size_t(p)] = true;
    start = comma + 1;
  }
  return t;
}

std::vector<std::string> target_module_names(const ModuleMask& t, ProjLayout layout) {
  std::vector<std::string> names;
  for (int i = 0; i < kNumProj; ++i) {
    const Proj p = Proj(i);
    if (!t[size_t(i)] || module_slot(p, layout) != p) continue;
    const FusedGroup* g = layout == ProjLayout::Fused ? fused_group(p) : nullptr;
    names.push_back(g ? g->module : proj_name(p));
  }
  return names;
}

std::string targets_to_string(const ModuleMask& t, ProjLayout layout) {
  std::string s;
  for (const std::string& name : target_module_names(t, layout)) s += (s.empty() ? "" : ",") + name;
  return s;
}

ModuleMask parse_mode(const std::string& m) {
  for (const ModeInfo& info : mode_table())
    if (m == info.name) return info.mask;
  try {
    return parse_targets(m);
  } catch (const Error& e) {  // say what a mode can be, not only what a module list can be
    std::string names;
    for (const ModeInfo& info : mode_table()) names += info.name + std::string(", ");
    fail("[mode] expected ", names, "or a module list; ", e.what());
  }
}

std::string mode_name(const ModuleMask& mask) {
  for (const ModeInfo& info : mode_table())
    if (mask == info.mask) return info.name;
  return targets_to_string(mask);
}

ModuleMask select_modules(const std::string& mode, const std::string& modules, const std::string& default_mode) {
  if (!modules.empty()) return parse_mode(modules);
  return parse_mode(mode.empty() ? default_mode : mode);
}

}  // namespace taia
