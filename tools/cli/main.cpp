// taia: fine-tune decoder LLMs and serve them with TAIA (train all, infer with attention).
// Exit codes: 0 ok, 1 runtime error (bad file, failed run), 2 usage error.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"taia: fine-tune LLaMA/Qwen decoders and infer with only the attention updates (TAIA)", "taia"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "taia 0.1.0");
  taia::cli::register_generate(app);
  taia::cli::register_forward(app);
  taia::cli::register_inspect(app);
  taia::cli::register_init_model(app);
  taia::cli::register_tokenize(app);
  taia::cli::register_train(app);
  taia::cli::register_merge(app);
  taia::cli::register_export(app);
  taia::cli::register_eval(app);
  taia::cli::register_report(app);
  taia::cli::register_demo(app);
  taia::cli::register_bench(app);
  taia::cli::register_analyze(app);
  taia::cli::register_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const taia::Error& e) {
    std::cerr << "taia: error: " << e.what() << std::endl;
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "taia: error: out of memory" << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "taia: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
