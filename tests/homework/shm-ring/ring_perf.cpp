// Throughput between two processes: a child puts 200,000 items, this process gets them.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "shm_ring.hpp"

int main() {
  const std::string name = "/oslab-hw-ring-perf-" + std::to_string(getpid());
  Ring* ring = ring_create(name.c_str(), 256);
  if (ring == nullptr) return std::printf("ring_create failed\n"), 1;
  constexpr uint64_t kItems = 200'000;
  const auto start = std::chrono::steady_clock::now();
  (void)std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    Ring* mine = ring_open(name.c_str());
    if (mine == nullptr) _exit(3);
    for (uint64_t i = 0; i < kItems; ++i) ring_put(mine, i);
    ring_close(mine);
    _exit(0);
  }
  uint64_t wrong = 0;
  for (uint64_t i = 0; i < kItems; ++i) wrong += ring_get(ring) != i;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int status = 0;
  waitpid(child, &status, 0);
  ring_close(ring);
  ring_unlink(name.c_str());
  if (wrong != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::printf("items wrong\n"), 1;
  std::printf("items_per_s %.0f\n", static_cast<double>(kItems) / seconds);
  return 0;
}
