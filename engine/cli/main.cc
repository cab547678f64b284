#include "cli/commands.h"
#include "cli/terminal.h"

int main(int argc, char** argv) {
  rb::cli::install_signal_handlers();
  return rb::cli::run_cli(argc, argv);
}
