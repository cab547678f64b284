#include "cli/commands.h"
#include "cli/terminal.h"
#include "cli/version.h"

int main(int argc, char** argv) {
  rb::cli::set_build_commit(rb::cli::kBuildCommit);
  rb::cli::install_signal_handlers();
  return rb::cli::run_cli(argc, argv);
}
