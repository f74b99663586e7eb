// Google Benchmark versions of oslab-fork's methods: one iteration = create a task that
// ends at once, and reap it. Arg: MiB of memory the parent has touched (4 KiB pages).
//   build/bench/oslab-bench-process --benchmark_repetitions=5 --benchmark_format=json

#include <pthread.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"

extern char** environ;

namespace {

oslab::Mapping touched_memory(int64_t mib) {
  if (mib == 0) return {};
  auto memory = oslab::Mapping::anonymous(static_cast<size_t>(mib) << 20);
  oslab::check_errno("madvise", ::madvise(memory.data(), memory.size(), MADV_NOHUGEPAGE));
  oslab::touch_pages(memory.bytes());
  return memory;
}

void reap(benchmark::State& state, pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    state.SkipWithError("child did not exit cleanly");
}

void BM_ForkExitWait(benchmark::State& state) {
  oslab::Mapping memory = touched_memory(state.range(0));
  for (auto _ : state) {
    pid_t pid = ::fork();
    if (pid == 0) _exit(0);
    if (pid < 0) {
      state.SkipWithError("fork failed");
      break;
    }
    reap(state, pid);
  }
}

void BM_VforkExitWait(benchmark::State& state) {
  oslab::Mapping memory = touched_memory(state.range(0));
  for (auto _ : state) {
    pid_t pid = ::vfork();
    if (pid == 0) _exit(0);
    if (pid < 0) {
      state.SkipWithError("vfork failed");
      break;
    }
    reap(state, pid);
  }
}

void* returns(void*) {
  return nullptr;
}

void BM_PthreadCreateJoin(benchmark::State& state) {
  for (auto _ : state) {
    pthread_t thread;
    if (::pthread_create(&thread, nullptr, returns, nullptr) != 0) {
      state.SkipWithError("pthread_create failed");
      break;
    }
    ::pthread_join(thread, nullptr);
  }
}

// posix_spawn of /bin/true (glibc builds posix_spawn on clone(CLONE_VM|CLONE_VFORK)).
void BM_PosixSpawnWait(benchmark::State& state) {
  char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
  for (auto _ : state) {
    pid_t pid = 0;
    if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv, environ) != 0) {
      state.SkipWithError("posix_spawn failed");
      break;
    }
    reap(state, pid);
  }
}

}  // namespace

BENCHMARK(BM_ForkExitWait)->Arg(0)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_VforkExitWait)->Arg(0)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_PthreadCreateJoin)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_PosixSpawnWait)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_MAIN();
