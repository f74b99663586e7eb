// oslab's green threads: threads, stacks, the run queue, join, sleep, M:N, preemption.
// The switch itself is in context.cpp and switch_x86_64.S; blocking IO in io.cpp.
//
// How a switch happens. A green thread that yields takes the next thread from the run queue
// and switches to it directly. It cannot put itself on the run queue first: with several
// kernel threads (M:N), another one could take it from the queue and resume it before its
// registers are saved. So the thread that runs next finishes the switch (finish_switch): it
// queues the previous thread, or frees its stack if it ended, as Linux's finish_task_switch
// does. With several workers the run-queue lock is held across the switch and released by
// the thread that runs next, on the same kernel thread.
//
// Preemption (Options::preempt_every). Each worker has a POSIX timer on its own CPU-time
// clock (timer_create, CLOCK_THREAD_CPUTIME_ID, SIGEV_THREAD_ID) that sends it SIGURG. The
// handler switches to the next green thread from inside the handler; the preempted thread
// resumes later by returning from the handler, which restores every register from the
// signal frame. The pitfalls, and what this file does about each:
//   1. The interrupted code may hold a lock the next thread needs: malloc's, stdio's, the
//      run queue's. The handler switches only when the interrupted instruction lies in this
//      program's own text (not in libc, libstdc++ or the vDSO) and no library code of ours is
//      running (Worker::in_library), or in the vDSO (clock_gettime: no locks); otherwise it marks the preemption
//      pending and the next call into the library yields.
//   2. The handler runs with SIGURG blocked, and a switch out of it keeps that mask on the
//      kernel thread: the handler unblocks SIGURG (pthread_sigmask is async-signal-safe)
//      before switching, or no timer signal would ever arrive again.
//   3. errno belongs to the kernel thread, not to the green thread: the handler saves and
//      restores it around the switch.
//   4. The signal frame (every register, the FPU/AVX state) is pushed on the green thread's
//      stack: stacks must have room for it (several KiB with AVX-512), and no SA_ONSTACK,
//      since one alternate stack per kernel thread cannot hold several suspended handlers.
//   5. SA_RESTART, so that most of a kernel thread's system calls elsewhere are restarted rather
//      than cut short (EINTR); epoll_wait, poll and nanosleep fail with EINTR whatever the flag,
//      and the library retries its own.
//   6. Taking the run-queue mutex in a handler is safe only because pitfall 1 guarantees
//      that this kernel thread does not hold it already.

#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "internal.hpp"
#include "oslab/clock.hpp"
#include "oslab/error.hpp"

extern "C" {
extern const char __executable_start;  // NOLINT(readability-identifier-naming): the linker's names
extern const char etext;               // NOLINT(readability-identifier-naming)
}

namespace oslab::uthread {
namespace {

thread_local Worker* t_worker = nullptr;

constexpr uint64_t kCanary = 0x6f736c61'62737461ull;  // "oslabsta": the bottom word of an arena stack
constexpr int kPreemptSignal = SIGURG;                // ignored by default: a stray one does no harm
constexpr unsigned kPollEvery = 64;                   // picks between IO polls while threads are runnable

// ---- Stacks ------------------------------------------------------------------------------

StackBounds give_stack(State& state, Thread& thread) {
  const size_t bytes = state.options.stack_bytes;
  if (state.options.guard_pages) {
    if (!state.stack_cache.empty()) {
      thread.guarded_stack = std::move(state.stack_cache.back());
      state.stack_cache.pop_back();
    } else {
      thread.guarded_stack = Stack::create(bytes);
    }
    thread.guard_low = thread.guarded_stack.guard();
    const size_t usable = thread.guarded_stack.usable_bytes();
    return {thread.guarded_stack.top() - usable, usable};
  }
  if (state.arena_free.empty())
    throw std::runtime_error(fmt::format("the stack arena is full ({} stacks)", state.options.arena_stacks));
  thread.arena_stack = state.arena_free.back();
  state.arena_free.pop_back();
  std::memcpy(thread.arena_stack, &kCanary, sizeof kCanary);
  return {thread.arena_stack, bytes};
}

void return_stack(State& state, Thread& thread) {
  if (thread.arena_stack != nullptr) {
    uint64_t bottom = 0;
    std::memcpy(&bottom, thread.arena_stack, sizeof bottom);
    if (bottom != kCanary) {
      write_stderr("oslab uthread: a green thread overflowed its arena stack (canary overwritten)\n");
      std::abort();
    }
    state.arena_free.push_back(thread.arena_stack);
    return;
  }
  constexpr size_t kCachedStacks = 1024;
  if (state.stack_cache.size() < kCachedStacks) state.stack_cache.push_back(std::move(thread.guarded_stack));
}

// ---- The run queue (lock held) --------------------------------------------------------

Thread* pop_front(State& state) {
  Thread* thread = state.head;
  if (thread != nullptr) {
    state.head = thread->next;
    if (state.head == nullptr) state.tail = nullptr;
    thread->next = nullptr;
  }
  return thread;
}

void wake_sleepers(State& state) {
  if (state.sleepers.empty()) return;
  const int64_t now = now_ns();
  while (!state.sleepers.empty() && state.sleepers.top().wake_ns <= now) {
    Thread* thread = state.sleepers.top().thread;
    state.sleepers.pop();
    state.make_runnable(thread);
  }
}

// The next thread to run, or nullptr. Polls for IO now and then while threads are runnable.
Thread* pick_next(State& state) {
  wake_sleepers(state);
  if (state.poller && state.poller->waiting > 0 && (state.head == nullptr || ++state.picks_since_poll >= kPollEvery)) {
    state.picks_since_poll = 0;
    state.poller->poll(0);
  }
  return pop_front(state);
}

void release_thread(State& state, Thread* thread) {
  state.live.erase(thread->id);
  return_stack(state, *thread);
  delete thread;  // NOLINT(cppcoreguidelines-owning-memory): threads are owned by `live`
}

// Runs in whatever gets the CPU right after a switch, with the lock held; releases it.
void finish_switch(Worker& worker) {
  State& state = *worker.state;
  Thread* previous = worker.previous;
  worker.previous = nullptr;
  switch (std::exchange(worker.after, Worker::After::nothing)) {
    case Worker::After::requeue: state.make_runnable(previous); break;
    case Worker::After::release: release_thread(state, previous); break;
    case Worker::After::park:
    case Worker::After::nothing: break;
  }
  state.unlock();
}

// Every green thread starts here (through Context::make) on its own stack.
void thread_main(void* arg) {
  auto* thread = static_cast<Thread*>(arg);
  finish_switch(*current_worker());
  leave_library();
  try {
    thread->body();
  } catch (...) {
    write_stderr("oslab uthread: an exception escaped a green thread\n");
    std::terminate();
  }
  exit();
}

// ---- Preemption ----------------------------------------------------------------------------

// The vDSO (clock_gettime and friends) takes no locks: a thread may be preempted there too.
uintptr_t g_vdso_low = 0, g_vdso_high = 0;

void find_vdso() {
  const auto base = static_cast<uintptr_t>(::getauxval(AT_SYSINFO_EHDR));
  if (base == 0) return;
  const auto* header = reinterpret_cast<const ElfW(Ehdr)*>(base);
  const auto* segments = reinterpret_cast<const ElfW(Phdr)*>(base + header->e_phoff);
  for (int i = 0; i < header->e_phnum; ++i)
    if (segments[i].p_type == PT_LOAD) {
      g_vdso_low = base;
      g_vdso_high = base + segments[i].p_offset + segments[i].p_memsz;
    }
}

bool in_program_text(const void* context) {
  const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  const auto pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  const auto pc = static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  (void)uc;
  const uintptr_t pc = 0;
#endif
  return (pc >= reinterpret_cast<uintptr_t>(&__executable_start) && pc < reinterpret_cast<uintptr_t>(&etext)) ||
         (pc >= g_vdso_low && pc < g_vdso_high);
}

void on_preempt_signal(int, siginfo_t*, void* context) {
  const int saved_errno = errno;
  Worker* worker = t_worker;
  if (worker == nullptr || worker->current == nullptr) {  // this worker is idle: nothing to preempt
    errno = saved_errno;
    return;
  }
  if (worker->in_library != 0 || !in_program_text(context)) {
    worker->preempt_pending = 1;
    worker->state->preempt_deferred.fetch_add(1, std::memory_order_relaxed);  // lock-free: signal-safe
    errno = saved_errno;
    return;
  }
  worker->in_library = 1;
  sigset_t preempt;
  sigemptyset(&preempt);
  sigaddset(&preempt, kPreemptSignal);
  pthread_sigmask(SIG_UNBLOCK, &preempt, nullptr);
  State& state = *worker->state;
  state.preemptions.fetch_add(1, std::memory_order_relaxed);
  state.lock();
  switch_away(*worker, Worker::After::requeue);
  current_worker()->in_library = 0;
  errno = saved_errno;
}

void start_preemption(Worker& worker, std::chrono::microseconds every) {
  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = kPreemptSignal;
  event._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
  check_errno("timer_create", ::timer_create(CLOCK_THREAD_CPUTIME_ID, &event, &worker.timer));
  worker.has_timer = true;
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(every).count();
  itimerspec spec{};
  spec.it_interval = {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  spec.it_value = spec.it_interval;
  check_errno("timer_settime", ::timer_settime(worker.timer, 0, &spec, nullptr));
}

void stop_preemption(Worker& worker) {
  if (worker.has_timer) ::timer_delete(worker.timer);
  worker.has_timer = false;
}

// ---- Stack overflow, explained -------------------------------------------------------------

std::mutex g_signal_mutex;  // the process-wide handlers below, installed while any run() runs
int g_signal_users = 0;
struct sigaction g_previous_segv {
}, g_previous_preempt{};

void on_segv(int signo, siginfo_t* info, void* context) {
  const Worker* worker = t_worker;
  const auto* address = static_cast<const std::byte*>(info->si_addr);
  if (worker != nullptr && worker->current != nullptr && worker->current->guard_low != nullptr &&
      address >= worker->current->guard_low && address < worker->current->guard_low + page_size()) {
    write_stderr(
        "oslab uthread: a green thread overflowed its stack: it touched the guard page below it "
        "(SIGSEGV)\n");
    (void)::signal(SIGSEGV, SIG_DFL);  // the fault happens again on return and ends the process
    return;
  }
  // Not ours: hand it to whatever handled SIGSEGV before (ASan, gtest, or the default).
  ::sigaction(SIGSEGV, &g_previous_segv, nullptr);
  (void)signo;
  (void)context;
}

void install_handlers(const Options& options) {
  std::lock_guard guard(g_signal_mutex);
  if (g_signal_users++ > 0) return;
  find_vdso();
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_sigaction = on_segv;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  if (options.explain_overflow) check_errno("sigaction SIGSEGV", ::sigaction(SIGSEGV, &action, &g_previous_segv));
  action.sa_sigaction = on_preempt_signal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  check_errno("sigaction SIGURG", ::sigaction(kPreemptSignal, &action, &g_previous_preempt));
}

void remove_handlers(const Options& options) {
  std::lock_guard guard(g_signal_mutex);
  if (--g_signal_users > 0) return;
  if (options.explain_overflow) ::sigaction(SIGSEGV, &g_previous_segv, nullptr);
  ::sigaction(kPreemptSignal, &g_previous_preempt, nullptr);
}

// The SIGSEGV handler needs a stack of its own: the green thread's is the one that overflowed.
class AlternateStack {
 public:
  AlternateStack() : memory_(Mapping::anonymous(64 * 1024)) {
    stack_t stack{};
    stack.ss_sp = memory_.data();
    stack.ss_size = memory_.size();
    check_errno("sigaltstack", ::sigaltstack(&stack, &previous_));
  }
  ~AlternateStack() { ::sigaltstack(&previous_, nullptr); }
  AlternateStack(const AlternateStack&) = delete;
  AlternateStack& operator=(const AlternateStack&) = delete;

 private:
  Mapping memory_;
  stack_t previous_{};
};

// ---- Workers ------------------------------------------------------------------------------

// The idle loop of one kernel thread: run whatever is runnable; when nothing is, wait for a
// sleeper's deadline, for IO, or (M:N) for another worker to queue something.
void worker_loop(Worker& worker) {
  State& state = *worker.state;
  worker.in_library = 1;
  state.lock();
  for (;;) {
    if (Thread* next = pick_next(state)) {
      next->status = Thread::Status::running;
      worker.current = next;
      ++state.stats.switches;
      switch_context(state.options.backend, worker.native, next->context);
      worker.current = nullptr;
      ++state.stats.switches;
      finish_switch(worker);
      state.lock();
      continue;
    }
    if (state.unfinished == 0) break;
    ++state.stats.idle_waits;
    const int64_t deadline = state.sleepers.empty() ? -1 : state.sleepers.top().wake_ns;
    if (state.poller && state.poller->waiting > 0) {
      state.poller->poll(deadline < 0 ? -1 : std::max<int64_t>(0, deadline - now_ns()));
    } else if (state.multi) {
      std::unique_lock lock(state.mutex, std::adopt_lock);
      if (deadline < 0)
        state.idle.wait(lock);
      else
        state.idle.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(0, deadline - now_ns())));
      lock.release();
    } else if (deadline >= 0) {
      const timespec until{static_cast<time_t>(deadline / 1'000'000'000), static_cast<long>(deadline % 1'000'000'000)};
      while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr) == EINTR) {
      }
    } else {
      state.unlock();
      throw std::logic_error(
          fmt::format("deadlock: {} green threads wait and none can run (a join cycle?)", state.unfinished));
    }
  }
  state.idle.notify_all();
  state.unlock();
}

void worker_main(State& state, Worker& worker) {
  worker.state = &state;
  worker.native.adopt_this_thread();
  t_worker = &worker;
  struct Reset {
    Worker& worker;
    ~Reset() {
      stop_preemption(worker);
      t_worker = nullptr;
    }
  } reset{worker};
  std::optional<AlternateStack> alternate;
  if (state.options.explain_overflow) alternate.emplace();
  if (state.options.preempt_every.count() > 0) start_preemption(worker, state.options.preempt_every);
  worker_loop(worker);
}

}  // namespace

// ---- The library's inside (internal.hpp) -------------------------------------------------

void State::make_runnable(Thread* thread) {
  thread->status = Thread::Status::ready;
  thread->next = nullptr;
  if (tail != nullptr)
    tail->next = thread;
  else
    head = thread;
  tail = thread;
  if (multi) idle.notify_one();
}

__attribute__((noinline)) Worker* current_worker() noexcept {
  Worker* worker = t_worker;
  asm volatile("" : "+r"(worker));  // never assumed constant across calls
  return worker;
}

Worker& enter_library() {
  Worker* worker = current_worker();
  if (worker == nullptr || worker->current == nullptr)
    throw std::logic_error("oslab::uthread: called outside a green thread");
  worker->in_library = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return *worker;
}

void leave_library() {
  Worker* worker = current_worker();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  worker->in_library = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (worker->preempt_pending != 0) {  // a timer signal came while we were in here: yield now
    worker->preempt_pending = 0;
    yield();
  }
}

void switch_away(Worker& worker, Worker::After after) {
  State& state = *worker.state;
  Thread* previous = worker.current;
  Thread* next = pick_next(state);
  if ((next == nullptr && after == Worker::After::requeue) || next == previous) {
    // Nothing else to run, or the IO this thread was about to park for completed while
    // pick_next polled: carry on.
    previous->status = Thread::Status::running;
    state.unlock();
    return;
  }
  if (after == Worker::After::park) previous->status = Thread::Status::parked;
  worker.previous = previous;
  worker.after = after;
  worker.current = next;
  ++state.stats.switches;
  if (next != nullptr) {
    next->status = Thread::Status::running;
    switch_context(state.options.backend, previous->context, next->context, after == Worker::After::release);
  } else {
    switch_context(state.options.backend, previous->context, worker.native, after == Worker::After::release);
  }
  // Resumed, perhaps on another worker.
  finish_switch(*current_worker());
}

// ---- Scheduler -----------------------------------------------------------------------------

const char* to_string(Io io) {
  switch (io) {
    case Io::none: return "none";
    case Io::epoll: return "epoll";
    case Io::io_uring: return "io_uring";
    case Io::automatic: return "automatic";
  }
  return "?";
}

Scheduler::Scheduler(Options options) : state_(std::make_unique<State>()) {
  State& state = *state_;
  state.owner = this;
  if (options.workers < 1) throw std::invalid_argument("Options::workers must be at least 1");
  if (!available(options.backend)) throw std::invalid_argument("this backend is not available here");
  if (options.io != Io::none && options.workers != 1)
    throw std::invalid_argument("IO parking (Options::io) runs on one worker (workers == 1)");
  state.options = options;
  state.multi = options.workers > 1;
  if (!options.guard_pages) {
    if (options.arena_stacks == 0) throw std::invalid_argument("Options::arena_stacks must be set without guard pages");
    const size_t slice = (options.stack_bytes + 63) / 64 * 64;
    state.options.stack_bytes = slice;
    state.arena = Mapping::anonymous(slice * options.arena_stacks, MAP_PRIVATE | MAP_NORESERVE);
    state.arena_free.reserve(options.arena_stacks);
    for (size_t i = options.arena_stacks; i-- > 0;) state.arena_free.push_back(state.arena.data() + i * slice);
  }
  switch (options.io) {
    case Io::none: break;
    case Io::epoll: state.poller = make_epoll_poller(state); break;
    case Io::io_uring: state.poller = make_io_uring_poller(state); break;
    case Io::automatic: try { state.poller = make_io_uring_poller(state);
      } catch (const std::exception& error) {
        state.io_note = std::string("io_uring unavailable (") + error.what() + "): epoll instead";
        state.poller = make_epoll_poller(state);
      }
      break;
  }
}

Scheduler::~Scheduler() {
  // Threads that never finished (run() was not called, or threw): free them without running.
  State& state = *state_;
  for (auto& [id, thread] : state.live) {
    return_stack(state, *thread);
    delete thread;  // NOLINT(cppcoreguidelines-owning-memory)
  }
}

const Options& Scheduler::options() const noexcept {
  return state_->options;
}
Io Scheduler::io() const noexcept {
  return state_->poller ? state_->poller->kind() : Io::none;
}
const std::string& Scheduler::io_note() const noexcept {
  return state_->io_note;
}

Statistics Scheduler::statistics() const {
  std::lock_guard guard(state_->mutex);
  Statistics stats = state_->stats;
  stats.preemptions = state_->preemptions.load();
  stats.preempt_deferred = state_->preempt_deferred.load();
  return stats;
}

ThreadId Scheduler::spawn(std::function<void()> body) {
  State& state = *state_;
  Worker* worker = current_worker();
  const bool inside = worker != nullptr && worker->current != nullptr;
  if (inside) enter_library();
  state.lock();
  ThreadId id = 0;
  try {
    auto thread = std::make_unique<Thread>();
    thread->id = id = state.next_id++;
    thread->body = std::move(body);
    const StackBounds bounds = give_stack(state, *thread);
    thread->context.make(state.options.backend, bounds, thread_main, thread.get());
    state.live.emplace(id, thread.get());
    ++state.unfinished;
    ++state.stats.spawned;
    state.make_runnable(thread.release());
  } catch (...) {
    state.unlock();
    if (inside) leave_library();
    throw;
  }
  state.unlock();
  if (inside) leave_library();
  return id;
}

void Scheduler::run() {
  if (current_worker() != nullptr) throw std::logic_error("Scheduler::run() called from a green thread");
  State& state = *state_;
  install_handlers(state.options);
  struct Remove {
    const Options& options;
    ~Remove() { remove_handlers(options); }
  } remove{state.options};
  std::vector<Worker> workers(static_cast<size_t>(state.options.workers));
  std::vector<std::thread> others;
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&](Worker& worker) {
    try {
      worker_main(state, worker);
    } catch (...) {
      std::lock_guard guard(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  for (size_t i = 1; i < workers.size(); ++i) others.emplace_back(work, std::ref(workers[i]));
  work(workers[0]);
  for (auto& other : others) other.join();
  if (failure) std::rethrow_exception(failure);
}

// ---- Inside a green thread --------------------------------------------------------------------

size_t thread_record_bytes() noexcept {
  return sizeof(Thread);
}

bool in_green_thread() noexcept {
  Worker* worker = current_worker();
  return worker != nullptr && worker->current != nullptr;
}

ThreadId self() {
  Worker* worker = current_worker();
  if (worker == nullptr || worker->current == nullptr) throw std::logic_error("uthread::self() outside a green thread");
  return worker->current->id;
}

void yield() {
  Worker& worker = enter_library();
  worker.preempt_pending = 0;
  worker.state->lock();
  switch_away(worker, Worker::After::requeue);
  leave_library();
}

void exit() {
  Worker& worker = enter_library();
  State& state = *worker.state;
  state.lock();
  Thread* thread = worker.current;
  thread->status = Thread::Status::finished;
  while (Thread* joiner = thread->joiners) {
    thread->joiners = joiner->next;
    state.make_runnable(joiner);
  }
  --state.unfinished;
  if (state.multi && state.unfinished == 0) state.idle.notify_all();
  switch_away(worker, Worker::After::release);
  __builtin_trap();  // a released thread is never resumed
}

void join(ThreadId id) {
  Worker& worker = enter_library();
  State& state = *worker.state;
  state.lock();
  auto it = state.live.find(id);
  if (it == state.live.end() || it->second->status == Thread::Status::finished) {
    state.unlock();
    leave_library();
    return;
  }
  Thread* target = it->second;
  Thread* thread = worker.current;
  if (target == thread) {
    state.unlock();
    leave_library();
    throw std::logic_error("uthread::join: a thread cannot join itself");
  }
  thread->next = target->joiners;
  target->joiners = thread;
  switch_away(worker, Worker::After::park);
  leave_library();
}

void sleep_for(std::chrono::nanoseconds duration) {
  Worker& worker = enter_library();
  State& state = *worker.state;
  state.lock();
  state.sleepers.push({now_ns() + std::max<int64_t>(0, duration.count()), state.sleep_order++, worker.current});
  switch_away(worker, Worker::After::park);
  leave_library();
}

Scheduler& current_scheduler() {
  Worker* worker = current_worker();
  if (worker == nullptr || worker->current == nullptr) throw std::logic_error("not in a green thread");
  // The Scheduler owns its State; find the owner through the State's back pointer.
  return *worker->state->owner;
}

}  // namespace oslab::uthread
