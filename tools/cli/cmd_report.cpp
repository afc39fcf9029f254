// taia report: one self-contained HTML page from an eval run (and training runs).
#include <iostream>

#include "common.h"
#include "eval/report.h"

namespace taia::cli {

void register_report(CLI::App& app) {
  auto run_dir = std::make_shared<std::string>();
  auto train_dirs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>("report.html");
  auto format = std::make_shared<OutputFormat>(OutputFormat::Text);
  CLI::App* cmd = app.add_subcommand("report", "Write an HTML report (tables, charts, loss curves) of an eval run");
  cmd->add_option("run_dir", *run_dir, "Eval run folder (holds results.json)")->required();
  cmd->add_option("train_dirs", *train_dirs, "Training output folders (hold metrics.jsonl)");
  cmd->add_option("-o,--out", *out, "HTML file to write")->capture_default_str();
  add_format_option(cmd, format.get());
  cmd->callback([=] {
    const ReportSummary r = write_report(*run_dir, *train_dirs, *out);
    if (*format == OutputFormat::Json)
      print_json(Json{{"out", *out}, {"tasks", r.tasks}, {"modes", r.modes}, {"training_runs", r.training_runs},
                      {"bytes", r.bytes}});
    else
      std::cout << "wrote " << *out << " (" << r.tasks << " tasks, " << r.modes << " modes, " << r.training_runs
                << " training runs, " << r.bytes << " bytes)" << std::endl;
  });
}

}  // namespace taia::cli
