// taia: fine-tune decoder LLMs and serve them with TAIA (train all, infer with attention).
// Exit codes: 0 ok, 1 runtime error (bad file, failed run), 2 usage error.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common.h"
#include "in_process.h"
#include "core/error.h"
#include "parallel/comm.h"

namespace {

// Under mpirun with several ranks only `taia train` runs distributed; any other command would
// run K times side by side and write the same outputs.
bool refused_under_mpirun(int argc, char** argv) {
  if (taia::launched_ranks() <= 1) return false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.empty() || a[0] == '-') continue;
    if (a == "train") return false;
    std::cerr << "taia: error: '" << a << "' was launched as " << taia::launched_ranks() << " MPI ranks; only "
              << "'taia train' runs distributed (run other commands without mpirun)" << std::endl;
    return true;
  }
  return false;
}

// The message of an error, naming the rank when several train together; a failing rank ends the
// job (MPI_Abort), so that no other rank waits for it in a collective.
int runtime_error(const std::string& message) {
  taia::Comm* world = taia::Comm::started();
  const std::string where = world ? world->where() : std::string();
  std::cerr << "taia: error" << (where.empty() ? "" : " (" + where + ")") << ": " << message << std::endl;
  if (world && world->distributed()) world->abort(1);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"taia: fine-tune LLaMA/Qwen decoders and infer with only the attention updates (TAIA)", "taia"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("taia ") + TAIA_VERSION);  // project(VERSION) in CMakeLists.txt
  taia::cli::register_all(app);
  if (refused_under_mpirun(argc, argv)) return 2;
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
    return runtime_error(e.what());
  } catch (const std::bad_alloc&) {
    return runtime_error("out of memory");
  } catch (const std::exception& e) {
    return runtime_error(e.what());
  }
  if (taia::Comm* world = taia::Comm::started()) world->finalize();
  return 0;
}
