// Given: `switchcost [--iterations N]` prints both figures. Do not change it.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "switch_cost.hpp"

int main(int argc, char** argv) {
  long iterations = 100'000;
  if (argc == 3 && std::strcmp(argv[1], "--iterations") == 0) {
    char* end = nullptr;
    iterations = std::strtol(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || iterations < 1 || iterations > 100'000'000) {
      (void)std::fprintf(stderr, "switchcost: --iterations must be a whole number from 1 to 100000000\n");
      return 2;
    }
  } else if (argc != 1) {
    (void)std::fprintf(stderr, "usage: switchcost [--iterations N]\n");
    return 2;
  }
  std::printf("syscall: %.1f ns\n", measure_syscall_ns(iterations * 10));
  std::printf("switch: %.1f ns\n", measure_switch_ns(iterations));
  return 0;
}
