// Throughput of both bounded buffers: 2 producers, 2 consumers, 8 slots. The grader runs it
// for the reference and for yours, alternately, and compares the medians.
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "bounded_buffer.hpp"

namespace {

template <typename Put, typename Get>
double items_per_s(Put put, Get get) {
  constexpr int kItems = 100'000, kSides = 2;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < kSides; ++s) {
    threads.emplace_back([&] {
      for (int i = 0; i < kItems / kSides; ++i) put(i);
    });
    threads.emplace_back([&] {
      for (int i = 0; i < kItems / kSides; ++i) get();
    });
  }
  for (auto& thread : threads) thread.join();
  return kItems / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
  CondBuffer cond;
  cond_buffer_init(&cond, 8);
  std::printf("cond_items_per_s %.0f\n",
              items_per_s([&](int64_t i) { cond_buffer_put(&cond, i); }, [&] { return cond_buffer_get(&cond); }));
  cond_buffer_destroy(&cond);
  SemBuffer sem;
  sem_buffer_init(&sem, 8);
  std::printf("sem_items_per_s %.0f\n",
              items_per_s([&](int64_t i) { sem_buffer_put(&sem, i); }, [&] { return sem_buffer_get(&sem); }));
  sem_buffer_destroy(&sem);
  return 0;
}
