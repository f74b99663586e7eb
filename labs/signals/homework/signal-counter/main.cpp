// Given: the server around serve_until_sigterm. Do not change it.
#include <cinttypes>
#include <cstdio>
#include <exception>

#include "sigcount.hpp"

int main() {
  try {
    const std::array<SignalCount, kKinds> counts = serve_until_sigterm();
    int64_t count = 0, sum = 0;
    for (int k = 0; k < kKinds; ++k) {
      if (counts[k].count == 0) continue;
      std::printf("SIGRTMIN+%d: %" PRId64 " signals, payload sum %" PRId64 "\n", k, counts[k].count, counts[k].sum);
      count += counts[k].count;
      sum += counts[k].sum;
    }
    std::printf("total: %" PRId64 " signals, payload sum %" PRId64 "\n", count, sum);
    return 0;
  } catch (const std::exception& error) {
    (void)std::fprintf(stderr, "sigcount: %s\n", error.what());
    return 1;
  }
}
