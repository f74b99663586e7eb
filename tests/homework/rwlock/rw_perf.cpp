// Throughput of the lock: 4 threads, 100,000 operations each, 1 in 20 a write.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "rwlock.hpp"

int main() {
  RwLock lock;
  rw_init(&lock);
  volatile long value = 0;
  constexpr int kThreads = 4, kOps = 100'000;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      long seen = 0;
      for (int i = 0; i < kOps; ++i) {
        if (i % 20 == 0) {
          rw_write_lock(&lock);
          value = value + 1;
          rw_write_unlock(&lock);
        } else {
          rw_read_lock(&lock);
          seen += value;
          rw_read_unlock(&lock);
        }
      }
      (void)seen;
    });
  for (auto& thread : threads) thread.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rw_destroy(&lock);
  std::printf("ops_per_s %.0f\n", kThreads * kOps / seconds);
  return value == kThreads * (kOps / 20) ? 0 : 1;
}
