// Unit tests of the shared-memory ring: a named object in /dev/shm (a random name, so that
// nothing can be faked), FIFO order, two processes, waiting while full, sleeping while empty,
// and nothing left behind. The producer is a forked child.
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "shm_ring.hpp"

namespace {

using namespace std::chrono_literals;

std::string random_name() {
  std::random_device device;
  return "/oslab-hw-ring-" + std::to_string(getpid()) + "-" + std::to_string(device() % 1'000'000);
}

bool exists(const std::string& name) {
  struct stat st {};
  return stat(("/dev/shm" + name).c_str(), &st) == 0;
}

// ring_get in a thread of its own, for at most `timeout`: a broken ring fails the test instead
// of hanging it. Returns the item and the CPU time the getting thread used.
struct Got {
  bool done = false;
  uint64_t item = 0;
  double cpu_ms = 0;
};
double thread_cpu_ms();
Got get_within(Ring* ring, std::chrono::milliseconds timeout) {
  auto state = std::make_shared<std::pair<std::atomic<bool>, Got>>();
  std::thread([ring, state] {
    const double before = thread_cpu_ms();
    state->second.item = ring_get(ring);
    state->second.cpu_ms = thread_cpu_ms() - before;
    state->first = true;
  }).detach();
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!state->first && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  if (!state->first) return {};
  Got got = state->second;
  got.done = true;
  return got;
}

double thread_cpu_ms() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) / 1e6;
}

// A child process running `body` (after fork: it opens the ring itself), killed if still there.
class Child {
 public:
  template <typename F>
  explicit Child(F body) {
    (void)std::fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) _exit(body());
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // The child's exit code, or -1 if it did not end within `timeout`.
  int wait(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) return -1;
      std::this_thread::sleep_for(1ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

TEST(ShmRing, CreateMakesANamedObjectOnlyOnceAndUnlinkRemovesIt) {
  const std::string name = random_name();
  Ring* ring = ring_create(name.c_str(), 16);
  ASSERT_NE(ring, nullptr) << "ring_create failed";
  struct stat st {};
  ASSERT_EQ(stat(("/dev/shm" + name).c_str(), &st), 0) << "no /dev/shm" << name << ": not POSIX shared memory?";
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the object must be private to its owner";
  EXPECT_GE(st.st_size, 16 * 8) << "too small for 16 slots";
  EXPECT_EQ(ring_create(name.c_str(), 16), nullptr) << "a second ring_create of the same name must fail";
  EXPECT_EQ(ring_unlink(name.c_str()), 0);
  EXPECT_FALSE(exists(name)) << "ring_unlink left the object in /dev/shm";
  ring_close(ring);
}

TEST(ShmRing, OneProcessKeepsTheOrder) {
  const std::string name = random_name();
  Ring* ring = ring_create(name.c_str(), 8);
  ASSERT_NE(ring, nullptr);
  for (uint64_t round = 0; round < 3; ++round) {  // wrap around
    for (uint64_t i = 0; i < 6; ++i) ring_put(ring, round * 100 + i);
    for (uint64_t i = 0; i < 6; ++i) EXPECT_EQ(ring_get(ring), round * 100 + i);
  }
  ring_close(ring);
  ring_unlink(name.c_str());
}

TEST(ShmRing, TwoProcessesEveryItemInOrder) {
  const std::string name = random_name();
  Ring* ring = ring_create(name.c_str(), 64);
  ASSERT_NE(ring, nullptr);
  constexpr uint64_t kItems = 100'000;
  Child producer([&] {
    Ring* mine = ring_open(name.c_str());
    if (mine == nullptr) return 3;
    for (uint64_t i = 0; i < kItems; ++i) ring_put(mine, i * 7 + 1);
    ring_close(mine);
    return 0;
  });
  uint64_t wrong = 0;
  std::atomic<bool> finished{false};
  std::thread consumer([&] {
    for (uint64_t i = 0; i < kItems; ++i)
      if (ring_get(ring) != i * 7 + 1) ++wrong;
    finished = true;
  });
  const auto until = std::chrono::steady_clock::now() + 4s;
  while (!finished && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  if (!finished) {
    consumer.detach();
    FAIL() << "the consumer did not get 100,000 items within 4 s: is the producer's put seen here?";
  }
  consumer.join();
  EXPECT_EQ(wrong, 0u) << "items out of order or wrong";
  EXPECT_EQ(producer.wait(2s), 0) << "the producer did not end well (3: ring_open failed)";
  ring_close(ring);
  ring_unlink(name.c_str());
}

TEST(ShmRing, AProducerWaitsWhileTheRingIsFull) {
  const std::string name = random_name();
  Ring* ring = ring_create(name.c_str(), 4);
  ASSERT_NE(ring, nullptr);
  int progress[2];
  ASSERT_EQ(pipe(progress), 0);
  Child producer([&] {
    Ring* mine = ring_open(name.c_str());
    if (mine == nullptr) return 3;
    for (uint64_t i = 0; i < 5; ++i) {
      ring_put(mine, i);
      (void)!write(progress[1], "p", 1);  // one byte per finished put
    }
    return 0;
  });
  close(progress[1]);
  auto puts_within = [&](std::chrono::milliseconds timeout) {
    int count = 0;
    pollfd p{progress[0], POLLIN, 0};
    while (poll(&p, 1, static_cast<int>(timeout.count())) > 0) {
      char byte;
      if (read(progress[0], &byte, 1) != 1) break;
      ++count;
    }
    return count;
  };
  ASSERT_EQ(puts_within(300ms), 4) << "4 slots: the fifth put must wait";
  const Got first = get_within(ring, 1s);
  ASSERT_TRUE(first.done) << "the producer's items never arrived";
  EXPECT_EQ(first.item, 0u);
  EXPECT_EQ(puts_within(1000ms), 1) << "a get freed a slot, but the fifth put did not finish";
  for (uint64_t i = 1; i < 5; ++i) {
    const Got got = get_within(ring, 1s);
    ASSERT_TRUE(got.done);
    EXPECT_EQ(got.item, i);
  }
  EXPECT_EQ(producer.wait(2s), 0);
  close(progress[0]);
  ring_close(ring);
  ring_unlink(name.c_str());
}

TEST(ShmRing, AWaitingConsumerSleepsInsteadOfSpinning) {
  const std::string name = random_name();
  Ring* ring = ring_create(name.c_str(), 4);
  ASSERT_NE(ring, nullptr);
  Child producer([&] {
    Ring* mine = ring_open(name.c_str());
    if (mine == nullptr) return 3;
    std::this_thread::sleep_for(400ms);
    ring_put(mine, 99);
    return 0;
  });
  const Got got = get_within(ring, 2s);
  ASSERT_TRUE(got.done) << "the item put by the other process never arrived";
  EXPECT_EQ(got.item, 99u);
  EXPECT_LT(got.cpu_ms, 40.0) << "the consumer spun while it waited 400 ms";
  EXPECT_EQ(producer.wait(2s), 0);
  ring_close(ring);
  ring_unlink(name.c_str());
}

TEST(ShmRing, NothingIsLeftInDevShm) {
  const std::string name = random_name();
  Ring* ring = ring_create(name.c_str(), 4);
  ASSERT_NE(ring, nullptr);
  Child user([&] {
    Ring* mine = ring_open(name.c_str());
    if (mine == nullptr) return 3;
    ring_put(mine, 1);
    ring_close(mine);
    return 0;
  });
  const Got got = get_within(ring, 2s);
  ASSERT_TRUE(got.done) << "the item put by the other process never arrived";
  EXPECT_EQ(got.item, 1u);
  EXPECT_EQ(user.wait(2s), 0);
  EXPECT_EQ(ring_unlink(name.c_str()), 0);
  ring_close(ring);
  EXPECT_FALSE(exists(name)) << "the object outlived ring_unlink and ring_close";
  EXPECT_EQ(ring_open(name.c_str()), nullptr) << "a removed ring must not open";
}

}  // namespace
