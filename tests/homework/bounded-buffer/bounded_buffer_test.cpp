// Unit tests of both bounded buffers: order, blocking on empty and on full, many producers and
// consumers (every item exactly once), and that a waiting consumer sleeps instead of spinning.
#include <time.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bounded_buffer.hpp"

namespace {

using namespace std::chrono_literals;

struct Cond {
  CondBuffer buffer;
  explicit Cond(size_t capacity) { cond_buffer_init(&buffer, capacity); }
  ~Cond() { cond_buffer_destroy(&buffer); }
  void put(int64_t item) { cond_buffer_put(&buffer, item); }
  int64_t get() { return cond_buffer_get(&buffer); }
};

struct Sem {
  SemBuffer buffer;
  explicit Sem(size_t capacity) { sem_buffer_init(&buffer, capacity); }
  ~Sem() { sem_buffer_destroy(&buffer); }
  void put(int64_t item) { sem_buffer_put(&buffer, item); }
  int64_t get() { return sem_buffer_get(&buffer); }
};

template <typename T>
class Buffer : public ::testing::Test {};
using Kinds = ::testing::Types<Cond, Sem>;
struct KindNames {
  template <typename T>
  static std::string GetName(int) {  // NOLINT(readability-identifier-naming): gtest calls it
    return std::is_same_v<T, Cond> ? "Cond" : "Sem";
  }
};
TYPED_TEST_SUITE(Buffer, Kinds, KindNames);

double thread_cpu_ms() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) / 1e6;
}

TYPED_TEST(Buffer, KeepsTheOrderOfOneProducer) {
  TypeParam buffer(8);
  for (int64_t i = 1; i <= 8; ++i) buffer.put(i * 11);
  for (int64_t i = 1; i <= 8; ++i) EXPECT_EQ(buffer.get(), i * 11);
  for (int round = 0; round < 3; ++round)  // wrap around the end of the slots
    for (int64_t i = 0; i < 5; ++i) {
      buffer.put(100 + i);
      EXPECT_EQ(buffer.get(), 100 + i);
    }
}

TYPED_TEST(Buffer, GetWaitsWhileEmpty) {
  TypeParam buffer(4);
  std::atomic<bool> returned{false};
  auto consumer = std::async(std::launch::async, [&] {
    const int64_t item = buffer.get();
    returned = true;
    return item;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(returned.load()) << "get() returned from an empty buffer";
  buffer.put(42);
  ASSERT_EQ(consumer.wait_for(2s), std::future_status::ready) << "get() did not return after a put()";
  EXPECT_EQ(consumer.get(), 42);
}

TYPED_TEST(Buffer, PutWaitsWhileFull) {
  TypeParam buffer(2);
  buffer.put(1);
  buffer.put(2);
  std::atomic<bool> returned{false};
  auto producer = std::async(std::launch::async, [&] {
    buffer.put(3);
    returned = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(returned.load()) << "put() returned while the buffer was full";
  EXPECT_EQ(buffer.get(), 1);
  ASSERT_EQ(producer.wait_for(2s), std::future_status::ready) << "put() did not return after a get()";
  EXPECT_EQ(buffer.get(), 2);
  EXPECT_EQ(buffer.get(), 3);
}

TYPED_TEST(Buffer, ManyProducersManyConsumersEveryItemOnce) {
  constexpr int kProducers = 4, kConsumers = 4, kPerProducer = 25'000;
  constexpr int64_t kStop = -1;
  TypeParam buffer(4);
  std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
  std::atomic<int64_t> received{0}, bad{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c)
    threads.emplace_back([&] {
      for (;;) {
        const int64_t item = buffer.get();
        if (item == kStop) return;
        if (item < 0 || item >= static_cast<int64_t>(seen.size())) {
          ++bad;
          continue;
        }
        ++seen[static_cast<size_t>(item)];
        ++received;
      }
    });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) buffer.put(int64_t{p} * kPerProducer + i);
    });
  for (auto& producer : producers) producer.join();
  for (int c = 0; c < kConsumers; ++c) buffer.put(kStop);
  for (auto& thread : threads) thread.join();
  int missing = 0, duplicated = 0;
  for (const auto& count : seen) {
    missing += count == 0;
    duplicated += count > 1;
  }
  EXPECT_EQ(bad.load(), 0) << "items that were never put";
  EXPECT_EQ(missing, 0) << "items lost";
  EXPECT_EQ(duplicated, 0) << "items received twice";
  EXPECT_EQ(received.load(), kProducers * kPerProducer);
}

TYPED_TEST(Buffer, AWaitingConsumerSleepsInsteadOfSpinning) {
  TypeParam buffer(4);
  auto consumer = std::async(std::launch::async, [&] {
    const double before = thread_cpu_ms();
    const int64_t item = buffer.get();
    return std::make_pair(item, thread_cpu_ms() - before);
  });
  std::this_thread::sleep_for(400ms);
  buffer.put(7);
  ASSERT_EQ(consumer.wait_for(2s), std::future_status::ready);
  const auto [item, cpu_ms] = consumer.get();
  EXPECT_EQ(item, 7);
  EXPECT_LT(cpu_ms, 40.0) << "the consumer used " << cpu_ms << " ms of CPU while it waited 400 ms";
}

}  // namespace
