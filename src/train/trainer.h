// The training loop: data -> micro-batches -> forward/backward (gradient accumulation) ->
// clipping -> AdamW with a warmup schedule; validation, metrics.jsonl, atomic checkpoints with
// exact resume, NaN/Inf guard; a PEFT adapter (LoRA) or an HF folder (full) at the end.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/json_util.h"
#include "kernels/linear.h"
#include "model/modes.h"
#include "model/lora.h"
#include "train/method.h"
#include "train/optimizer.h"

namespace taia {

struct TrainOptions {
  std::string model_path, data_path, val_data_path, out_dir, resume_dir, tokenizer_path, chat_template;
  TrainMethod method = TrainMethod::Lora;
  ModuleMask targets = parse_targets("all");  // what trains (full: these weights; LoRA: these modules)
  LoraConfig lora;              // rank/alpha/dropout/rslora/patterns (targets from `targets`)
  // molora: experts (with LoRA's rank and alpha) on these projections, plain LoRA on the rest of `targets`.
  MoloraConfig molora{4, 1, 0.0, {false, false, false, false, true, true, true}};
  ModuleMask molora_targets = parse_targets("ffn");
  double lr = 2e-4;
  std::string schedule = "cosine";
  double warmup_ratio = 0.03;
  AdamWConfig adamw;            // weight decay 0 by default (the paper's setting)
  double max_grad_norm = 1.0;
  int64_t epochs = 1;
  int64_t max_steps = -1;       // > 0 overrides epochs
  int64_t batch_size = 4;       // sequences per micro-batch
  int64_t grad_accum = 16;      // micro-batches per optimizer step (effective batch 64)
  int64_t max_length = 3072;
  int64_t save_every = 0;       // optimizer steps; 0 = only at the end
  int64_t eval_every = 0;       // optimizer steps; 0 = at the end only (if there is validation data)
  double val_split = 0.0;       // held-out fraction of --data when no --val-data
  uint64_t seed = 42;
  bool skip_bad_records = false;
  bool recompute = false;
  int threads = 0;
  std::optional<DType> dtype;   // base weights in memory for LoRA (nullopt: as stored; full fine-tuning uses F32)
  Precision compute = Precision::F32;  // BF16: LoRA's frozen-base GEMMs in BF16 (mixed precision)
  bool progress = true;         // progress bar (only drawn on a terminal)
  int64_t max_memory = 0;       // bytes a run may need (estimate before the first step); 0: the machine's RAM
  // Several ranks (mpirun -np K): batch_size and grad_accum are per rank, the global batch is
  // batch_size x grad_accum x K sequences. shard_optimizer keeps each rank's part of AdamW's
  // moments only (ZeRO-1).
  bool shard_optimizer = false;
  double bucket_mb = 4;         // gradients summed over the ranks in collectives of this size (MiB of F32)
  bool overlap_comm = false;    // sum buckets on a communication thread during the last backward pass
  // Called after each optimizer step with its metrics.jsonl line (one rank only: refused under
  // mpirun). Returning false stops the run there: a checkpoint of that step is written (resume
  // with resume_dir = out_dir) and no final adapter. The Python module's on_step and Ctrl-C.
  std::function<bool(const Json& metrics)> on_step;
};

struct TrainSummary {
  int64_t steps = 0;
  double final_loss = 0, final_val_loss = -1;
  double tokens_per_s = 0;
  std::string output;  // the adapter or model folder written (stopped: the checkpoint)
  bool stopped = false;  // on_step returned false before the last step
  int ranks = 1;
  int64_t global_batch = 0;               // sequences per optimizer step over all ranks
  std::vector<int64_t> peak_rss_per_rank;  // bytes, rank order
};

// Log lines (warnings, counts) go to `log` (on rank 0 only when several ranks train).
TrainSummary run_training(const TrainOptions& options, const std::function<void(const std::string&)>& log);

}  // namespace taia
