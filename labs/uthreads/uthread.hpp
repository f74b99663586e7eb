// oslab's green threads: user-level threads scheduled by this library, not by the kernel.
//
//   oslab::uthread::Scheduler scheduler;                 // M:1: every green thread on this kernel thread
//   auto id = scheduler.spawn([] { ...; oslab::uthread::yield(); ... });
//   scheduler.spawn([id] { oslab::uthread::join(id); });
//   scheduler.run();                                     // returns when every green thread has finished
//
// What it is made of (each part small enough to read in one sitting):
//   context.hpp / switch_x86_64.S   the switch: a function call that returns in another thread
//   uthread.cpp                     threads, stacks, the run queue, join, sleep, M:N, preemption
//   io.cpp                          read/write/accept that park the green thread, not the kernel thread
//
// Scheduling is cooperative: a green thread runs until it yields, blocks in this library
// (join, sleep, read), or ends. Options::preempt_every adds a timer signal that forces a switch.
// Options::workers > 1 runs the green threads on several kernel threads (M:N) from one shared
// run queue. The order is deterministic on one worker: first in, first out.
//
// The rule that makes green threads hard: a green thread that makes a blocking system call
// (read on an empty pipe, nanosleep) blocks its kernel thread and so every green thread on it.
// Use this library's read/write/accept/sleep_for, which park only the calling green thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "context.hpp"

namespace oslab::uthread {

using ThreadId = uint64_t;

// How blocking IO is done by read/write/accept (io.cpp).
enum class Io {
  none,      // no IO parking: read/write/accept throw std::logic_error
  epoll,     // readiness: the fd is made O_NONBLOCK; on EAGAIN the thread parks until epoll says ready
  io_uring,  // completion: the operation is submitted to an io_uring; the thread parks until it completes
  automatic  // io_uring where it works here, else epoll
};
const char* to_string(Io io);

struct Options {
  Backend backend = default_backend();
  size_t stack_bytes = 64 * 1024;  // usable bytes per green thread
  // true: each stack is its own mapping with a PROT_NONE guard page below it (two mappings
  // per thread: vm.max_map_count caps how many can exist). false: stacks are carved from
  // one arena mapping, without guards (an overflow corrupts the neighbour; a canary word at
  // the bottom of each stack is checked when the thread ends).
  bool guard_pages = true;
  size_t arena_stacks = 0;  // guard_pages == false: how many stacks the arena holds
  int workers = 1;          // kernel threads that run green threads; > 1 is M:N
  Io io = Io::none;
  // > 0: a timer signal every this much CPU time of a worker forces the running green thread
  // to yield (only where it is safe: see uthread.cpp, "Preemption").
  std::chrono::microseconds preempt_every{0};
  // Install a SIGSEGV handler that names a stack overflow into a guard page before the
  // process dies of it (the default action then applies).
  bool explain_overflow = true;
};

struct Statistics {
  uint64_t spawned = 0;
  uint64_t switches = 0;          // context switches made by workers (green to green, or to/from a worker)
  uint64_t preemptions = 0;       // switches forced by the timer signal
  uint64_t preempt_deferred = 0;  // timer signals that found the thread where it is unsafe to switch
  uint64_t io_waits = 0;          // times a green thread parked for IO
  uint64_t idle_waits = 0;        // times a worker blocked because nothing was runnable
};

struct State;  // the implementation (internal.hpp)

class Scheduler {
 public:
  explicit Scheduler(Options options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Creates a green thread that will run `body`; callable before run() and from any green
  // thread of this scheduler. An exception escaping `body` ends the process (std::terminate),
  // as it would from a kernel thread.
  ThreadId spawn(std::function<void()> body);
  // Runs green threads until all have finished, on the calling kernel thread and workers - 1
  // more. Can be called again after more spawns.
  void run();

  const Options& options() const noexcept;
  Statistics statistics() const;
  // The IO method in use (Io::automatic resolved), and why, when it fell back.
  Io io() const noexcept;
  const std::string& io_note() const noexcept;

 private:
  std::unique_ptr<State> state_;
};

// The bytes of one green thread's record in this library (its stack not included).
size_t thread_record_bytes() noexcept;

// ---- Called from inside a green thread --------------------------------------------------

bool in_green_thread() noexcept;
ThreadId self();
Scheduler& current_scheduler();
// Lets the next runnable green thread run; returns when this one is scheduled again.
void yield();
// Ends the calling green thread now (returning from its body does the same).
[[noreturn]] void exit();
// Waits until green thread `id` has finished (returns at once if it already has).
void join(ThreadId id);
// Parks the calling green thread for at least `duration`; the others run meanwhile.
void sleep_for(std::chrono::nanoseconds duration);

// Like read(2)/write(2)/accept4(2), but only the calling green thread waits (Options::io).
// Return -1 with errno set on failure, as the system calls do.
ssize_t read(int fd, void* buffer, size_t bytes);
ssize_t write(int fd, const void* buffer, size_t bytes);
int accept(int listen_fd);  // the new socket is O_CLOEXEC (and O_NONBLOCK with epoll)
// Closes fd and forgets what the IO backend knew of it.
int close(int fd);

}  // namespace oslab::uthread
