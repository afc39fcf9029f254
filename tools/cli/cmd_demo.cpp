// taia demo: the whole TAIA experiment on the embedded generated world (or a user's model).
#include <iostream>

#include "common.h"
#include "demo/experiment.h"
#include "demo/util.h"

namespace taia::cli {
namespace {

struct DemoArgs {
  demo::DemoOptions o;
  bool quick = false;
  OutputFormat format = OutputFormat::Text;
};

void run_demo_cmd(DemoArgs& a) {
  if (a.quick) a.o.preset = "quick";
  const bool json = a.format == OutputFormat::Json;
  a.o.progress = !json;
  const demo::DemoSummary summary =
      demo::run_demo(a.o, [&](const std::string& line) { std::cerr << line << std::endl; });
  if (json) {
    print_json(summary.to_json());
    return;
  }
  const Json& pre = summary.pretrained;
  if (pre.contains("plain_completion_acc"))
    std::cout << "pretrained model: " << 100 * pre["plain_completion_acc"].get<double>()
              << " % of its facts completed in plain text (chance " << demo::fmt(100 * pre["chance_city"].get<double>(), 2)
              << " % / " << demo::fmt(100 * pre["chance_job"].get<double>(), 2) << " %)\n\n";
  const Json& worlds = summary.settings["world_seeds"];
  std::cout << demo::demo_table_markdown(summary.rows) << "\nvalues: mean ± standard deviation over "
            << (worlds.size() > 1 ? "worlds " + worlds.dump() + " x " : std::string()) << "seeds "
            << summary.settings["seeds"].dump() << "; acc in %, retention in bits per token\n"
            << "paired differences (TAIA - vanilla / base / TAIF, 95 % intervals): " << a.o.out_dir << "/paired.md\n"
            << "results: " << a.o.out_dir << "/summary.json, report: " << a.o.out_dir << "/report.html ("
            << summary.seconds << " s)" << std::endl;
}

}  // namespace

void register_demo(CLI::App& app) {
  auto args = std::make_shared<DemoArgs>();
  demo::DemoOptions& o = args->o;
  CLI::App* cmd = app.add_subcommand(
      "demo", "The whole TAIA experiment on an embedded generated world: pretrain (cached), fine-tune OOD, evaluate "
              "base / vanilla / taia / taif");
  cmd->add_flag("--quick", args->quick, "The quick preset (about 30 s on 2 cores; the CI smoke test)");
  cmd->add_option("--preset", o.preset, "default, quick, full (3 worlds x 3 seeds, every kind and method) or large (the default with a 16M-parameter, 8-layer model)")->check(CLI::IsMember(demo::preset_names()))->capture_default_str();
  cmd->add_option("--scale", o.scale, "The matched scale axis: the default (or full) preset's recipe at model size 2m "
                  "(its own 4 x 192), 6m (6 x 288) or 16m (8 x 384), pretraining and full fine-tuning lr x 192 / "
                  "hidden; the same data, steps and LoRA settings")
      ->check(CLI::IsMember(demo::scale_names()));
  cmd->add_option("-o,--out", o.out_dir, "Output folder (table.md, summary.json, results.json, report.html, runs/)")
      ->capture_default_str();
  cmd->add_option("--cache", o.cache_dir, "Cache folder for the pretrained model (default: ~/.cache/taia)");
  cmd->add_option("-m,--model", o.model_path,
                  "Run the fine-tune / evaluate flow on this model (GGUF or HF folder) instead of the embedded one");
  cmd->add_option("--seeds", o.seeds, "Fine-tuning seeds (default: the preset's)")->delimiter(',');
  cmd->add_option("--experiments", o.experiments,
                  "Comma-separated KIND-METHOD, KIND facts (new facts about fresh people), skill (arithmetic) or "
                  "country (the country known people were born in: a skill composed of pretraining knowledge), "
                  "country_new (the same question about fresh people: new facts), country_mix (both), "
                  "country_shuffled (country's questions, the answers permuted across the people: its label control), "
                  "METHOD lora, molora (the paper's MoLoRA: 4 experts, top-1 on the FFN, LoRA on attention) or full "
                  "(default: the preset's)")
      ->delimiter(',');
  cmd->add_option("--sweep", o.sweep, "ranks: after the experiments, the first LoRA experiment again for every attention "
                  "rank x FFN rank of --sweep-ranks (alpha 2 x rank) and seed; the report draws a heat map per mode. "
                  "noise: the first LoRA experiment again for every share of wrong answers of --sweep-noise and seed: "
                  "TAIA - vanilla per level and the level where TAIA stops winning (results.json noise_sweep)")
      ->check(CLI::IsMember({"ranks", "noise"}));
  cmd->add_option("--sweep-noise", o.sweep_noise, "The shares of wrong fine-tuning answers of --sweep noise")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--sweep-ranks", o.sweep_ranks, "The ranks of --sweep ranks")
      ->delimiter(',')
      ->check(CLI::Range(int64_t(1), int64_t(4096)))
      ->capture_default_str();
  cmd->add_option("--world-seed", o.world_seed, "Seed of the generated world and pretraining")->capture_default_str();
  cmd->add_option("--world-seeds", o.world_seeds, "Several worlds, each pretrained and fine-tuned with every seed "
                  "(default: the preset's; --preset full: 0,1,2): the spread and the paired differences' 95 % "
                  "intervals then include the pretrained model's")
      ->delimiter(',');
  cmd->add_option("--noise", o.noise, "Share of fine-tuning answers replaced by wrong ones")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--mix", o.mix, "Share of fine-tuning records about pretrained (in-distribution) people")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--steps", o.finetune_steps, "Fine-tuning steps (default: the preset's)")->check(CLI::PositiveNumber);
  cmd->add_option("--pretrain-steps", o.pretrain_steps, "Pretraining steps (default: the preset's)")
      ->check(CLI::PositiveNumber);
  auto* context_dialogues = cmd->add_option("--context-dialogues", o.context_dialogues,
                  "Design C's base: this many pretraining dialogues about made-up people, each asked their job "
                  "again after a first answer, so that an answer can be read from the context (default 0: none)")
      ->check(CLI::Range(int64_t(1), int64_t(100000)));
  cmd->add_option("--context-people", o.context_people, "People per context dialogue")
      ->check(CLI::Range(int64_t(1), int64_t(16)))->needs(context_dialogues)->capture_default_str();
  cmd->add_option("--context-turns", o.context_turns, "Question-answer turns per context dialogue (at least 2 per person)")
      ->check(CLI::Range(int64_t(2), int64_t(64)))->needs(context_dialogues)->capture_default_str();
  cmd->add_option("--lora-lr", o.lora_lr, "LoRA learning rate (default: the preset's)")->check(CLI::PositiveNumber);
  cmd->add_option("--full-lr", o.full_lr, "Full fine-tuning learning rate (default: the preset's)")
      ->check(CLI::PositiveNumber);
  add_threads_option(cmd, &o.threads);
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_demo_cmd(*args); });
}

}  // namespace taia::cli
