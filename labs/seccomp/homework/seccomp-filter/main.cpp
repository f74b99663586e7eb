// Given: `allowlist PROGRAM [ARGS...]` loads your filter, then runs PROGRAM under it.
// Do not change it.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "allowlist.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    (void)std::fprintf(stderr, "usage: allowlist PROGRAM [ARGS...]\n");
    return 2;
  }
  (void)std::fflush(nullptr);
  if (const int rc = install_filter(); rc != 0) {
    (void)std::fprintf(stderr, "allowlist: install_filter: %s\n", std::strerror(-rc));
    return 1;
  }
  execv(argv[1], &argv[1]);
  const int errnum = errno;
  (void)std::fprintf(stderr, "allowlist: execv %s: %s\n", argv[1], std::strerror(errnum));
  return 126;
}
