// taia train: LoRA or full fine-tuning; writes metrics.jsonl, checkpoints and the final PEFT
// adapter (LoRA) or HF model folder (full) into --out. Defaults are the TAIA paper's settings.
#include <iostream>

#include "common.h"
#include "in_process.h"
#include "core/error.h"
#include "parallel/comm.h"
#include "train/trainer.h"

namespace taia::cli {
namespace {

struct TrainArgs {
  TrainOptions o;
  std::string rank_pattern, alpha_pattern, layers, max_memory;
  OutputFormat format = OutputFormat::Text;
  std::vector<CLI::Option*> molora_options;  // refused without --method molora
};

// "q_proj=8,down_proj=4" -> {q_proj: 8, down_proj: 4}
template <typename T>
std::map<std::string, T> parse_pattern(const std::string& s, const char* option) {
  std::map<std::string, T> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    const std::string item = s.substr(start, comma - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw CLI::ValidationError(option, "expected key=value pairs, got '" + item + "'");
    try {
      out[item.substr(0, eq)] = T(std::stod(item.substr(eq + 1)));
    } catch (const std::exception&) {
      throw CLI::ValidationError(option, "expected a number after '=' in '" + item + "'");
    }
    start = comma + 1;
  }
  return out;
}

void run_train(TrainArgs& a) {
  TrainOptions& o = a.o;
  for (CLI::Option* opt : a.molora_options)
    if (opt->count() > 0 && o.method != TrainMethod::Molora)
      throw CLI::ValidationError(opt->get_name(), "is a MoLoRA option: it needs --method molora");
  o.lora.rank_pattern = parse_pattern<int64_t>(a.rank_pattern, "--rank-pattern");
  o.lora.alpha_pattern = parse_pattern<double>(a.alpha_pattern, "--alpha-pattern");
  if (!a.layers.empty())
    for (int32_t l : parse_id_list(a.layers, "--layers")) o.lora.layers_to_transform.push_back(l);
  o.progress = a.format == OutputFormat::Text;
  if (!a.max_memory.empty()) o.max_memory = parse_byte_size(a.max_memory, "--max-memory");
  o.on_step = in_process_hooks().on_step;
  const TrainSummary s = run_training(o, [](const std::string& line) { std::cerr << line << std::endl; });
  if (Comm::world().rank() != 0) return;  // rank 0 reports for the job
  if (a.format == OutputFormat::Json) {
    print_json({{"steps", s.steps},
                {"stopped", s.stopped},
                {"final_loss", s.final_loss},
                {"final_val_loss", s.final_val_loss < 0 ? Json(nullptr) : Json(s.final_val_loss)},
                {"tokens_per_s", s.tokens_per_s},
                {"ranks", s.ranks},
                {"global_batch", s.global_batch},
                {"peak_rss_per_rank", s.peak_rss_per_rank},
                {"output", s.output},
                {"metrics", o.out_dir + "/metrics.jsonl"}});
  } else {
    std::cout << "trained " << s.steps << " steps, final loss " << s.final_loss;
    if (s.final_val_loss >= 0) std::cout << ", validation loss " << s.final_val_loss;
    std::cout << ", " << s.tokens_per_s << " tokens/s";
    if (s.ranks > 1) {
      std::cout << " on " << s.ranks << " ranks (peak RSS per rank:";
      for (int64_t b : s.peak_rss_per_rank) std::cout << " " << (b >> 20) << " MiB";
      std::cout << ")";
    }
    std::cout << "; wrote " << s.output << std::endl;
  }
}

}  // namespace

void register_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  TrainOptions& o = args->o;
  CLI::App* cmd = app.add_subcommand("train", "Fine-tune with LoRA (all seven projections by default) or fully");
  cmd->add_option("-m,--model", o.model_path, "Base model: GGUF file or HF folder")->required();
  cmd->add_option("--data", o.data_path, "Training data: Alpaca / ShareGPT / OpenAI chat JSON or JSONL, or .txt")
      ->required();
  cmd->add_option("--val-data", o.val_data_path, "Validation data (same formats)");
  cmd->add_option("--val-split", o.val_split, "Hold out this fraction of --data for validation")
      ->check(CLI::Range(0.0, 0.9));
  cmd->add_option("-o,--out", o.out_dir, "Output folder (adapter or model, metrics.jsonl, checkpoints)")->required();
  add_method_option(cmd, &o.method);
  add_targets_option(cmd, "--targets", &o.targets, "all, attn, ffn or a list of q,k,v,o,gate,up,down");
  args->molora_options.push_back(cmd->add_option("--experts", o.molora.experts, "MoLoRA: experts per projection (each of LoRA's rank and alpha)")
      ->check(CLI::Range(int64_t(2), int64_t(256)))->capture_default_str());
  args->molora_options.push_back(cmd->add_option("--top-k", o.molora.top_k, "MoLoRA: experts per token, weighted by a softmax over their router "
                  "logits. With 1 (the official setting) the weight is always 1 and the router never learns: its "
                  "weights stay at their initial values; use 2 or more, and --molora-balance-coef, for a router that "
                  "trains")->check(CLI::Range(int64_t(1), int64_t(256)))->capture_default_str());
  args->molora_options.push_back(cmd->add_option("--molora-balance-coef", o.molora.balance_coef, "MoLoRA: weight of a Switch-Transformer load-balancing "
                  "loss per router (E * sum_e f_e P_e; our extension, 0 = off as in the official code)")
      ->check(CLI::NonNegativeNumber)->capture_default_str());
  args->molora_options.push_back(add_targets_option(cmd, "--molora-targets", &o.molora_targets,
                                                    "MoLoRA: the projections that get experts (ffn = gate,up,down); "
                                                    "the rest of --targets get plain LoRA"));
  cmd->add_option("--lora-rank", o.lora.rank, "LoRA rank r")->check(CLI::Range(int64_t(1), int64_t(65536)))->capture_default_str();
  cmd->add_option("--lora-alpha", o.lora.alpha, "LoRA alpha")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--lora-dropout", o.lora.dropout, "LoRA dropout")->check(CLI::Range(0.0, 0.99))->capture_default_str();
  cmd->add_flag("--use-rslora", o.lora.use_rslora, "Scale by alpha / sqrt(r) (rsLoRA)");
  cmd->add_option("--rank-pattern", args->rank_pattern, "Per-module ranks, PEFT rank_pattern: q_proj=8,down_proj=4");
  cmd->add_option("--alpha-pattern", args->alpha_pattern, "Per-module alphas, PEFT alpha_pattern");
  cmd->add_option("--layers", args->layers, "Layers to adapt (PEFT layers_to_transform), e.g. 0,1,2");
  cmd->add_option("--lr", o.lr, "Peak learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--schedule", o.schedule, "constant, linear or cosine")
      ->check(CLI::IsMember({"constant", "linear", "cosine"}))->capture_default_str();
  cmd->add_option("--warmup-ratio", o.warmup_ratio, "Warmup steps as a fraction of all steps")
      ->check(CLI::Range(0.0, 0.99))->capture_default_str();
  cmd->add_option("--weight-decay", o.adamw.weight_decay, "AdamW weight decay (not on norms and biases)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--max-grad-norm", o.max_grad_norm, "Clip gradients to this global norm (0: off)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "Passes over the data")->check(CLI::Range(int64_t(1), int64_t(100000)))->capture_default_str();
  cmd->add_option("--max-steps", o.max_steps, "Optimizer steps (overrides --epochs)")->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", o.batch_size, "Sequences per micro-batch (per rank under mpirun: the global batch "
                  "is batch size x grad-accum x ranks)")->check(CLI::Range(int64_t(1), int64_t(4096)))->capture_default_str();
  cmd->add_option("--grad-accum", o.grad_accum, "Micro-batches per optimizer step")->check(CLI::Range(int64_t(1), int64_t(65536)))->capture_default_str();
  cmd->add_option("--max-length", o.max_length, "Truncate sequences to this many tokens")->check(CLI::Range(int64_t(2), int64_t(1) << 20))->capture_default_str();
  cmd->add_option("--save-every", o.save_every, "Checkpoint every N optimizer steps (and at the end)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-every", o.eval_every, "Validation loss every N steps (and at the end)")->check(CLI::NonNegativeNumber);
  add_chat_template_option(cmd, &o.chat_template);
  add_tokenizer_option(cmd, &o.tokenizer_path);
  cmd->add_option("--max-memory", args->max_memory,
                  "Refuse to start when the estimated memory exceeds this (e.g. 8G, 512M; default: the RAM)");
  cmd->add_option("--seed", o.seed, "Seed for LoRA init, data order and dropout")->capture_default_str();
  cmd->add_option("--resume", o.resume_dir, "Continue from a checkpoint (or the latest in a folder)");
  cmd->add_flag("--skip-bad-records", o.skip_bad_records, "Skip and count malformed records instead of stopping");
  cmd->add_flag("--shard-optimizer", o.shard_optimizer, "Under mpirun: each rank keeps AdamW's moments for its "
                "part of the parameters only and the updated parameters are all-gathered (ZeRO-1; less memory per "
                "rank for full fine-tuning)");
  cmd->add_option("--bucket-mb", o.bucket_mb, "Under mpirun: gradients are summed over the ranks in collectives "
                  "of this many MiB")->check(CLI::Range(1e-6, 2048.0))->capture_default_str();
  cmd->add_flag("--overlap-comm", o.overlap_comm, "Under mpirun: sum each bucket of gradients on a communication "
                "thread as soon as the last backward pass of the step has finished its layers, while the earlier "
                "layers run (pays when the link is slow beside the compute; give that thread a core)");
  add_recompute_option(cmd, &o.recompute);
  add_dtype_option(cmd, &o.dtype, "LoRA: base weights in memory: auto (as stored), f32, bf16, f16");
  add_compute_option(cmd, &o.compute, "f32 (exact), or bf16: LoRA's frozen-base matrix products in BF16 (mixed "
                     "precision, ~1.6x faster: docs/BENCHMARKS.md)");
  add_threads_option(cmd, &o.threads);
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_train(*args); });
}

}  // namespace taia::cli
