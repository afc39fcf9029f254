#include "model/modes.h"

#include <algorithm>
#include <optional>

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

const std::vector<ModeInfo>& control_table() {
  static const std::vector<ModeInfo> table = {
      {"random-half", "random-half-N: a random set of the trained modules with as many parameters as the attention "
                      "set (draw N, default 1)", kAll},
      {"scaled", "all updates, each layer's scaled to the norm of its attention update", kAll},
  };
  return table;
}

std::string modes_help() {
  std::string s;
  for (const ModeInfo& m : mode_table()) s += std::string(s.empty() ? "" : "; ") + m.name + " = " + m.help;
  s += "; update-size controls: ";
  for (const ModeInfo& m : control_table()) s += std::string(m.name) + " = " + m.help + "; ";
  s.resize(s.size() - 2);
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

bool ModeSpec::any() const {
  return control != UpdateControl::None || std::any_of(mask.begin(), mask.end(), [](bool b) { return b; });
}

namespace {
// "random-half" -> 1, "random-half-7" -> 7; nullopt for anything else.
std::optional<uint64_t> random_half_draw(const std::string& m) {
  const std::string prefix = "random-half";
  if (m.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  if (m.size() == prefix.size()) return 1;
  if (m[prefix.size()] != '-' || m.size() == prefix.size() + 1 || m.size() > prefix.size() + 10) return std::nullopt;
  uint64_t n = 0;
  for (size_t i = prefix.size() + 1; i < m.size(); ++i) {
    if (m[i] < '0' || m[i] > '9') return std::nullopt;
    n = n * 10 + uint64_t(m[i] - '0');
  }
  if (n == 0) return std::nullopt;
  return n;
}
}  // namespace

ModeSpec parse_mode_spec(const std::string& m) {
  ModeSpec spec;
  spec.name = m;
  if (const auto draw = random_half_draw(m)) {
    spec.mask = kAll;
    spec.control = UpdateControl::RandomHalf;
    spec.draw = *draw;
    return spec;
  }
  if (m.compare(0, 11, "random-half") == 0)
    fail("[mode] expected random-half or random-half-N with N a draw number from 1, got '", m, "'");
  if (m == "scaled") {
    spec.mask = kAll;
    spec.control = UpdateControl::Scaled;
    return spec;
  }
  spec.mask = parse_mode(m);
  return spec;
}

bool is_mode(const std::string& m) {
  try {
    parse_mode_spec(m);
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool is_named_mode(const std::string& m) {
  const auto& names = mode_names();
  return std::find(names.begin(), names.end(), m) != names.end() ||
         (is_mode(m) && parse_mode_spec(m).control != UpdateControl::None);
}

ModuleMask parse_mode(const std::string& m) {
  for (const ModeInfo& info : mode_table())
    if (m == info.name) return info.mask;
  TAIA_CHECK(m != "scaled" && m.compare(0, 11, "random-half") != 0, "[mode] '", m,
             "' is an update-size control, computed from the update itself; here expected base, vanilla, taia, taif "
             "or a module list");
  try {
    return parse_targets(m);
  } catch (const Error& e) {  // say what a mode can be, not only what a module list can be
    std::string names;
    for (const ModeInfo& info : mode_table()) names += info.name + std::string(", ");
    fail("[mode] expected ", names, "random-half[-N], scaled or a module list; ", e.what());
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
