// The demo's pretrained model: a LLaMA-architecture model trained from random initialisation on
// the generated world's corpus, with its own SentencePiece tokenizer, cached under
// CACHE/demo/PRESET-HASH (the hash of everything that determines it).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "core/json_util.h"
#include "demo/presets.h"
#include "demo/world.h"

namespace taia::demo {

// The default cache folder ($XDG_CACHE_HOME/taia, else $HOME/.cache/taia).
std::string default_cache_dir();

struct PretrainSettings {
  std::string cache_dir;
  uint64_t world_seed = 0;
  int threads = 0;
  bool progress = true;
};

// The HF folder of the preset's pretrained model: from the cache, or made now (corpus,
// tokenizer, random initialisation, full training with taia's trainer) and cached. The cache
// entry is built in a temporary folder and renamed into place, so an interrupted run leaves
// nothing half-written that a later run would trust. What happened goes into *info (cache
// folder, recipe, cached or pretraining time and loss).
std::string ensure_pretrained(const Preset& p, const World& w, const PretrainSettings& s,
                              const std::function<void(const std::string&)>& log, Json* info);

}  // namespace taia::demo
