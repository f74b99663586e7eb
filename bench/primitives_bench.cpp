// Google Benchmark micro-benchmarks of the primitives the labs measure, for engineers who want
// Google Benchmark's own statistics, JSON and compare.py:
//   build/bench/oslab-bench-primitives --benchmark_repetitions=5 --benchmark_format=json
// One iteration = one operation, in one thread (no second party: the labs measure hand-offs).
// Each benchmark checks what it does; a failed call stops it with an error, never a fast figure.

#include <linux/futex.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <mutex>

#include <benchmark/benchmark.h>

namespace {

void BM_NullSyscall(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(::syscall(SYS_getppid));
}

void BM_VdsoClockGettime(benchmark::State& state) {
  timespec ts{};
  for (auto _ : state) {
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    benchmark::DoNotOptimize(ts);
  }
}

void BM_ClockGettimeSyscall(benchmark::State& state) {
  timespec ts{};
  for (auto _ : state) {
    ::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    benchmark::DoNotOptimize(ts);
  }
}

// write(1 byte) + read(1 byte) on one pipe, in one thread: the copy and the syscalls, no switch.
void BM_PipeWriteReadOneThread(benchmark::State& state) {
  int fds[2];
  if (::pipe(fds) != 0) {
    state.SkipWithError("pipe failed");
    return;
  }
  char byte = 'x';
  for (auto _ : state) {
    if (::write(fds[1], &byte, 1) != 1 || ::read(fds[0], &byte, 1) != 1) {
      state.SkipWithError("pipe write/read failed");
      break;
    }
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

void BM_EventfdWriteRead(benchmark::State& state) {
  const int fd = ::eventfd(0, EFD_CLOEXEC);
  if (fd < 0) {
    state.SkipWithError("eventfd failed");
    return;
  }
  uint64_t value = 1;
  for (auto _ : state) {
    if (::write(fd, &value, sizeof value) != sizeof value || ::read(fd, &value, sizeof value) != sizeof value ||
        value != 1) {
      state.SkipWithError("eventfd write/read failed");
      break;
    }
  }
  ::close(fd);
}

// FUTEX_WAKE with nobody waiting: the cost of the system call a mutex unlock makes when it
// cannot tell that nobody waits.
void BM_FutexWakeNoWaiter(benchmark::State& state) {
  uint32_t word = 0;
  for (auto _ : state) {
    if (::syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0) != 0) {
      state.SkipWithError("futex woke someone, or failed");
      break;
    }
  }
}

void BM_PthreadMutexUncontended(benchmark::State& state) {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  for (auto _ : state) {
    ::pthread_mutex_lock(&mutex);
    ::pthread_mutex_unlock(&mutex);
  }
}

void BM_StdMutexUncontended(benchmark::State& state) {
  std::mutex mutex;
  for (auto _ : state) {
    mutex.lock();
    mutex.unlock();
  }
}

void BM_SpinlockUncontended(benchmark::State& state) {
  std::atomic_flag flag = ATOMIC_FLAG_INIT;
  for (auto _ : state) {
    while (flag.test_and_set(std::memory_order_acquire)) {
    }
    flag.clear(std::memory_order_release);
  }
}

void BM_AtomicIncrement(benchmark::State& state) {
  std::atomic<uint64_t> counter{0};
  for (auto _ : state) counter.fetch_add(1, std::memory_order_relaxed);
  if (counter.load() != static_cast<uint64_t>(state.iterations())) state.SkipWithError("lost increments");
}

// glibc's swapcontext also saves and restores the signal mask: an rt_sigprocmask system call
// on every switch. One iteration = two switches (there and back).
ucontext_t g_main_context, g_other_context;
void other_side() {
  for (;;) ::swapcontext(&g_other_context, &g_main_context);
}

void BM_SwapcontextRoundTrip(benchmark::State& state) {
  static std::array<char, 64 * 1024> stack;
  ::getcontext(&g_other_context);
  g_other_context.uc_stack.ss_sp = stack.data();
  g_other_context.uc_stack.ss_size = stack.size();
  g_other_context.uc_link = nullptr;
  ::makecontext(&g_other_context, other_side, 0);
  for (auto _ : state) ::swapcontext(&g_main_context, &g_other_context);
}

}  // namespace

BENCHMARK(BM_NullSyscall);
BENCHMARK(BM_VdsoClockGettime);
BENCHMARK(BM_ClockGettimeSyscall);
BENCHMARK(BM_PipeWriteReadOneThread);
BENCHMARK(BM_EventfdWriteRead);
BENCHMARK(BM_FutexWakeNoWaiter);
BENCHMARK(BM_PthreadMutexUncontended);
BENCHMARK(BM_StdMutexUncontended);
BENCHMARK(BM_SpinlockUncontended);
BENCHMARK(BM_AtomicIncrement);
BENCHMARK(BM_SwapcontextRoundTrip);
BENCHMARK_MAIN();
