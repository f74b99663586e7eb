// Given: the program around parse_pipeline and run_pipeline. Do not change it.
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "pipeline.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    (void)std::fprintf(stderr, "usage: pipeline 'CMD [ARGS] [| CMD [ARGS]]...'\n");
    return 2;
  }
  try {
    const std::vector<Command> commands = parse_pipeline(argv[1]);
    if (commands.empty()) return 0;
    return run_pipeline(commands);
  } catch (const std::invalid_argument& error) {
    (void)std::fprintf(stderr, "pipeline: %s\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    (void)std::fprintf(stderr, "pipeline: %s\n", error.what());
    return 1;
  }
}
