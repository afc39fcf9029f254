// Model shapes to benchmark without a checkpoint (random weights): `taia bench --preset NAME`
// and the programs in bench/. Each is written as the model's own config.json gives it and read
// by the parser a user's model goes through.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace taia {

struct BenchPreset {
  const char* name;         // e.g. "qwen2-0.5b"
  const char* description;  // what it stands for
  const char* config_json;  // HF config.json fields that set the shapes
};

const std::vector<BenchPreset>& bench_presets();

// The config of a preset; throws naming the known presets for any other name.
ModelConfig bench_preset_config(const std::string& name);

}  // namespace taia
