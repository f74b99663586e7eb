// The inside of the green-thread library, shared by uthread.cpp and io.cpp. Not for labs.
#pragma once

#include <signal.h>
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <vector>

#include "oslab/handles.hpp"
#include "uthread.hpp"

namespace oslab::uthread {

struct State;

// One green thread: its context, its stack, and the links that put it in one list at a time
// (the run queue, a join wait list).
struct Thread {
  ThreadId id = 0;
  std::function<void()> body;
  Context context;
  Stack guarded_stack;                   // guard_pages: its own mapping (kept for reuse when it ends)
  std::byte* arena_stack = nullptr;      // !guard_pages: its slice of the arena
  const std::byte* guard_low = nullptr;  // the PROT_NONE page below the stack (nullptr: none)
  enum class Status { ready, running, parked, finished } status = Status::ready;
  Thread* next = nullptr;     // the run queue, or a wait list
  Thread* joiners = nullptr;  // threads waiting in join() for this one
};

// One kernel thread that runs green threads: its own context (the idle loop on the kernel
// thread's stack), the green thread it runs, and what must be done right after a switch.
struct Worker {
  State* state = nullptr;
  Context native;
  Thread* current = nullptr;
  // After a switch, the thread switched away from is handled by whoever runs next (as the
  // kernel's finish_task_switch does): only then are its registers saved, so only then may
  // another kernel thread resume it (M:N), or its stack be freed.
  enum class After { nothing, requeue, park, release };
  Thread* previous = nullptr;
  After after = After::nothing;
  // Preemption: set while library code runs on this worker (a timer signal must not switch
  // then), and when a signal came at such a moment.
  volatile sig_atomic_t in_library = 0;
  volatile sig_atomic_t preempt_pending = 0;
  bool has_timer = false;
  timer_t timer{};
};

// What a green thread parked for IO waits on: the poller fills it and makes the thread runnable.
struct IoWait {
  Thread* thread = nullptr;
  int fd = -1;
  int64_t result = 0;
  bool done = false;
};

// How read/write/accept wait (io.cpp). Runs on one worker only (Options::io needs workers == 1).
class Poller {
 public:
  virtual ~Poller() = default;
  virtual Io kind() const = 0;
  virtual ssize_t read(int fd, void* buffer, size_t bytes) = 0;
  virtual ssize_t write(int fd, const void* buffer, size_t bytes) = 0;
  virtual int accept(int listen_fd) = 0;
  virtual void forget(int fd) = 0;
  // From the scheduler: makes every green thread whose IO is done runnable. Waits at most
  // timeout_ns for one (0: do not wait; -1: no limit).
  virtual void poll(int64_t timeout_ns) = 0;
  size_t waiting = 0;  // green threads parked here
};
std::unique_ptr<Poller> make_epoll_poller(State& state);
std::unique_ptr<Poller> make_io_uring_poller(State& state);  // throws SysError/SkipError when unavailable

struct Sleeper {
  int64_t wake_ns;
  uint64_t order;  // ties wake in the order they slept
  Thread* thread;
  bool operator>(const Sleeper& other) const {
    return wake_ns != other.wake_ns ? wake_ns > other.wake_ns : order > other.order;
  }
};

struct State {
  Scheduler* owner = nullptr;
  Options options;
  bool multi = false;  // several workers: the lock below is taken
  std::mutex mutex;
  std::condition_variable idle;
  Thread* head = nullptr;  // the run queue: first in, first out
  Thread* tail = nullptr;
  std::priority_queue<Sleeper, std::vector<Sleeper>, std::greater<>> sleepers;
  uint64_t sleep_order = 0;
  std::unordered_map<ThreadId, Thread*> live;
  ThreadId next_id = 1;
  size_t unfinished = 0;
  Statistics stats;
  std::atomic<uint64_t> preemptions{0}, preempt_deferred{0};  // counted in a signal handler
  std::unique_ptr<Poller> poller;
  std::string io_note;
  unsigned picks_since_poll = 0;
  // Stacks: cached guarded stacks, or the arena and its free slices.
  std::vector<Stack> stack_cache;
  Mapping arena;
  std::vector<std::byte*> arena_free;

  void lock() {
    if (multi) mutex.lock();
  }
  void unlock() {
    if (multi) mutex.unlock();
  }
  // Lock held.
  void make_runnable(Thread* thread);
};

// The worker the caller runs on. Not cached across a switch: a green thread may resume on
// another kernel thread (M:N), and a compiler may keep a thread_local's address in a register.
Worker* current_worker() noexcept;
// Enters library code on the current worker (no preemption until leave_library()).
Worker& enter_library();
void leave_library();
// Lock held, in library: switches away from the current green thread, to the next runnable
// one or to the worker's idle loop; returns when the thread is resumed, with the lock released.
void switch_away(Worker& worker, Worker::After after);

}  // namespace oslab::uthread
