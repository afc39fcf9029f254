// The demo's presets: everything a run fixes before any result is seen (world and corpus sizes,
// the model, pretraining, fine-tuning and evaluation settings); docs/REPRODUCTION.md records them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "demo/world.h"

namespace taia::demo {

// Everything a preset fixes before any result is seen (docs/REPRODUCTION.md records them).
struct Preset {
  std::string name;
  // world and pretraining corpus
  WorldSizes world;
  int64_t corpus_rounds = 0, sentences_per_doc = 8;
  // Question-answer turns per pretraining chat dialogue. Few-shot prompts are such dialogues:
  // pretraining on long ones (with pretrain_max_length to hold them) keeps a 4-shot prompt inside
  // the length the model was trained on.
  int64_t chat_turns_per_doc = 3;
  // Design C's base (issue 36): pretraining dialogues about made-up people answered within the
  // dialogue (world.h's context_dialogues), so that reading an answer from the context pays; 0 in
  // every preset (their bases do not learn in context: docs/REPRODUCTION.md), set by
  // --context-dialogues.
  int64_t context_dialogues = 0, context_people = 2, context_turns = 8;
  int64_t retention_docs = 0;  // held-out pretraining documents scored for retention
  double filler = 0.15;
  // model (LLaMA architecture) and its tokenizer
  int64_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, max_positions = 256;
  // pretraining (full training from random initialisation)
  int64_t pretrain_steps = 0, pretrain_batch = 16, pretrain_max_length = 128;
  double pretrain_lr = 0;
  // fine-tuning
  std::vector<std::string> experiments;  // "facts-lora", "facts-molora", "facts-full", "skill-lora", ...
  int64_t finetune_records = 0, finetune_steps = 0, finetune_batch = 16;
  double lora_lr = 0, full_lr = 0;
  int64_t lora_rank = 16;
  double lora_alpha = 32;
  std::vector<uint64_t> seeds;
  // Worlds (world seeds), each pretrained and fine-tuned with every seed; empty: the one world of
  // --world-seed. Several worlds put the pretrained model's own spread into the error bars.
  std::vector<uint64_t> worlds;
  // evaluation
  std::vector<int64_t> shots;  // few-shot counts on the chat knowledge questions (log-likelihood; 0 always runs)
  // The in-context-learning test (world.h's icl_task): its shot counts (empty: not run) and examples.
  std::vector<int64_t> icl_shots;
  int64_t icl_examples = 100;
  int64_t skill_examples = 0, max_new_tokens = 16;
};

const std::vector<std::string>& preset_names();  // "default", "quick", "full", "large"
Preset preset_by_name(const std::string& name);

// The matched scale axis (third edition, item 5; docs/REPRODUCTION.md): one recipe at three
// model sizes. Everything but the shape and two learning rates stays the preset's (the same world,
// corpus, pretraining steps and batch, fine-tuning records, steps and LoRA settings); the learning
// rates follow one rule, lr = the 2m size's lr x 192 / hidden (Adam on hidden-width matrices:
// the update per weight shrinks as the width grows), pretraining and full fine-tuning alike; the
// LoRA learning rate stays (its rank does not change with the model).
//   2m:  4 layers x 192, FFN 512, 4 heads  (2.16M parameters; the default preset's shape)
//   6m:  6 layers x 288, FFN 768, 6 heads  (6.57M)
//   16m: 8 layers x 384, FFN 1152, 6 heads (16.1M; --preset large's shape, whose lr 1e-3 was not
//        set by this rule)
const std::vector<std::string>& scale_names();  // "2m", "6m", "16m"
// p with the size's shape and learning rates; p must be the default or full preset.
void apply_scale(Preset& p, const std::string& scale);

}  // namespace taia::demo
