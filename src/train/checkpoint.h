// Checkpoints: out/checkpoint-STEP/ holding the trainable parameters (PEFT adapter files for
// LoRA, trainable.safetensors for full fine-tuning), optimizer.safetensors (AdamW moments) and
// trainer_state.json, written into a temporary folder that is renamed into place after a
// COMPLETE marker is written last. A folder without the marker is never taken for a checkpoint.
#pragma once
#include <optional>
#include <string>

#include "core/json_util.h"
#include "io/safetensors.h"
#include "train/optimizer.h"

namespace taia {

struct CheckpointWriter {
  std::string dir;  // the final folder (checkpoint-STEP)
  std::string tmp;  // where files go until commit()
  explicit CheckpointWriter(const std::string& out_dir, int64_t step);
  void commit(const Json& state);  // writes trainer_state.json and COMPLETE, renames into place
};

void save_optimizer_state(AdamW& opt, const std::string& path);
void load_optimizer_state(AdamW& opt, const std::string& path);
// optimizer.safetensors holds "m.NAME" and "v.NAME" (F32, [size]) per parameter and steps_taken in
// its metadata: one moment (`which` "m." or "v."), checked to be there with that size, and the
// step count. Shared by the one-process loader and the sharded one (train/data_parallel).
const float* optimizer_moment(const SafetensorsFile& f, const char* which, const std::string& param, size_t size);
int64_t optimizer_steps_taken(const SafetensorsFile& f);

// `path` is a checkpoint folder, or a folder holding checkpoint-* folders (the latest complete
// one is taken). nullopt if none is complete.
// Removes checkpoint-N.tmp-PID folders that killed runs left in out_dir (one run per folder).
void remove_stale_checkpoint_temps(const std::string& out_dir);

std::optional<std::string> find_checkpoint(const std::string& path);

}  // namespace taia
