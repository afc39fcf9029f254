// What a model file or folder is, without loading its weights: format, architecture,
// hyper-parameters, tensor and parameter counts, dtypes, and the problems found.
#pragma once
#include <string>
#include <vector>

#include "model/lora.h"
#include "model/weights.h"

#include "core/json_util.h"

namespace taia {

// Throws taia::Error when the path cannot be parsed at all; otherwise the report lists
// problems (missing tensors, shape mismatches, unsupported types) under "problems".
Json inspect_path(const std::string& path);

// MoLoRA routing on data: runs each sequence through `model` with the adapter's modules in
// `mask` and reports the share of routing slots each expert receives, per module and over all
// routers. Added under report["molora"]["routing"] by the CLI.
Json inspect_expert_routing(const Model& model, const LoraAdapter& adapter, const ModuleMask& mask,
                            const std::vector<std::vector<int32_t>>& sequences);

// Human-readable rendering of an inspect report.
std::string inspect_to_text(const Json& report);

}  // namespace taia
