// What a model file or folder is, without loading its weights: format, architecture,
// hyper-parameters, tensor and parameter counts, dtypes, and the problems found.
#pragma once
#include <string>

#include "core/json_util.h"

namespace taia {

// Throws taia::Error when the path cannot be parsed at all; otherwise the report lists
// problems (missing tensors, shape mismatches, unsupported types) under "problems".
Json inspect_path(const std::string& path);

// Human-readable rendering of an inspect report.
std::string inspect_to_text(const Json& report);

}  // namespace taia
