// oslab-condvar: what it costs to wake a waiting thread or process, by every mechanism the
// notes name (condition variable, semaphore) and those underneath or beside them (futex,
// System V semaphore, eventfd, pipe); how often a waiter wakes to find nothing; and why a wait
// sits in a while loop, shown by an `if` that breaks under a forced interleaving.
//
// Try:     oslab-condvar                             every method, same CPU and two CPUs, threads and processes
//          oslab-condvar --methods condvar,futex --placement two-cpus --as threads
//          oslab-condvar --waiters 8                 more waiters for the wake-up count
// Expect:  on one CPU a hand-off is a context switch (a few microseconds round trip); across two
//          CPUs it is a wake-up of the other CPU, which may be faster or slower depending on how
//          deeply it sleeps. A condition variable costs a little more than the futex it is built
//          on (it also takes a mutex); a pipe and a System V semaphore pay a system call each way
//          like the rest, and more work inside it. Broadcast wakes every waiter; all but one
//          find nothing to do. The `if` waiter takes an item that is not there.
// Compare: oslab-locks, oslab-prodcons (the same mistakes in a bounded buffer), oslab-semaphores.

#include <pthread.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/sem.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "locks.hpp"
#include "oslab/error.hpp"
#include "oslab/futex.hpp"
#include "oslab/handles.hpp"
#include "oslab/ipc.hpp"
#include "oslab/lab.hpp"
#include "oslab/pingpong.hpp"
#include "oslab/shared.hpp"
#include "schedule.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errnum;

constexpr uint64_t kMagic = 0x5DEECE66Dull;  // the answer is the message xor this: a wrong one is caught

// ---- The exchanges: one way to hand a message over and wait for the answer, each -------------

// A mutex, two condition variables and a turn flag. Each wait sits in a while loop; a wake-up
// that finds the turn not yet ours is counted (spurious, or a signal meant for an earlier turn).
class CondvarExchange : public oslab::Exchange {
 public:
  explicit CondvarExchange(bool between_processes) {
    const int pshared = between_processes ? PTHREAD_PROCESS_SHARED : PTHREAD_PROCESS_PRIVATE;
    pthread_mutexattr_t mutex_attr;
    check_errnum("pthread_mutexattr_init", ::pthread_mutexattr_init(&mutex_attr));
    check_errnum("pthread_mutexattr_setpshared", ::pthread_mutexattr_setpshared(&mutex_attr, pshared));
    check_errnum("pthread_mutex_init", ::pthread_mutex_init(&s_->mutex, &mutex_attr));
    ::pthread_mutexattr_destroy(&mutex_attr);
    pthread_condattr_t cond_attr;
    check_errnum("pthread_condattr_init", ::pthread_condattr_init(&cond_attr));
    check_errnum("pthread_condattr_setpshared", ::pthread_condattr_setpshared(&cond_attr, pshared));
    check_errnum("pthread_cond_init", ::pthread_cond_init(&s_->to_pong, &cond_attr));
    check_errnum("pthread_cond_init", ::pthread_cond_init(&s_->to_ping, &cond_attr));
    ::pthread_condattr_destroy(&cond_attr);
  }
  ~CondvarExchange() override {
    ::pthread_cond_destroy(&s_->to_pong);
    ::pthread_cond_destroy(&s_->to_ping);
    ::pthread_mutex_destroy(&s_->mutex);
  }
  void ping(uint64_t sequence) override {
    lock();
    s_->message = sequence;
    s_->turn = 1;
    check_errnum("pthread_cond_signal", ::pthread_cond_signal(&s_->to_pong));
    while (s_->turn != 0) wait(&s_->to_ping);
    const uint64_t answer = s_->answer;
    unlock();
    if (answer != (sequence ^ kMagic))
      throw std::runtime_error(fmt::format("condvar: sent {}, got the answer {:#x}", sequence, answer));
  }
  bool pong() override {
    lock();
    while (s_->turn != 1 && !s_->stop) wait(&s_->to_pong);
    const bool go_on = !s_->stop;
    if (go_on) {
      s_->answer = s_->message ^ kMagic;
      s_->turn = 0;
      check_errnum("pthread_cond_signal", ::pthread_cond_signal(&s_->to_ping));
    }
    unlock();
    return go_on;
  }
  void stop() override {
    lock();
    s_->stop = true;
    check_errnum("pthread_cond_broadcast", ::pthread_cond_broadcast(&s_->to_pong));
    unlock();
  }
  oslab::SyscallExpectation expected_syscalls() const override {
    return {2, false,
            "on one CPU, at least the FUTEX_WAIT of the side that must sleep and the FUTEX_WAKE that wakes it"};
  }
  uint64_t wakeups() const { return s_->wakeups; }
  uint64_t empty_wakeups() const { return s_->empty_wakeups; }

 private:
  struct State {
    pthread_mutex_t mutex;
    pthread_cond_t to_pong, to_ping;
    uint64_t message = 0, answer = 0;
    int turn = 0;  // 1: pong's turn, 0: ping's
    bool stop = false;
    uint64_t wakeups = 0, empty_wakeups = 0;
  };
  void lock() { check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&s_->mutex)); }
  void unlock() { check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&s_->mutex)); }
  void wait(pthread_cond_t* condition) {
    const int turn = s_->turn;
    check_errnum("pthread_cond_wait", ::pthread_cond_wait(condition, &s_->mutex));
    ++s_->wakeups;
    if (s_->turn == turn && !s_->stop) ++s_->empty_wakeups;  // woke, but nothing changed
  }
  oslab::Shared<State> s_;
};

// Two POSIX semaphores (unnamed; pshared between processes): post the other's, wait on ours.
class SemaphoreExchange : public oslab::Exchange {
 public:
  explicit SemaphoreExchange(bool between_processes) {
    check_errno("sem_init", ::sem_init(&s_->to_pong, between_processes ? 1 : 0, 0));
    check_errno("sem_init", ::sem_init(&s_->to_ping, between_processes ? 1 : 0, 0));
  }
  ~SemaphoreExchange() override {
    ::sem_destroy(&s_->to_pong);
    ::sem_destroy(&s_->to_ping);
  }
  void ping(uint64_t sequence) override {
    s_->message = sequence;
    check_errno("sem_post", ::sem_post(&s_->to_pong));
    wait(&s_->to_ping);
    if (s_->answer != (sequence ^ kMagic))
      throw std::runtime_error(fmt::format("semaphore: sent {}, got the answer {:#x}", sequence, s_->answer));
  }
  bool pong() override {
    wait(&s_->to_pong);
    if (s_->stop) return false;
    s_->answer = s_->message ^ kMagic;
    check_errno("sem_post", ::sem_post(&s_->to_ping));
    return true;
  }
  void stop() override {
    s_->stop = true;
    check_errno("sem_post", ::sem_post(&s_->to_pong));
  }
  oslab::SyscallExpectation expected_syscalls() const override {
    return {2, false,
            "on one CPU, at least the FUTEX_WAIT of the side that must sleep and the FUTEX_WAKE that wakes it"};
  }

 private:
  static void wait(sem_t* sem) {
    while (::sem_wait(sem) == -1)
      if (errno != EINTR) throw oslab::SysError("sem_wait", errno);
  }
  struct State {
    sem_t to_pong, to_ping;
    uint64_t message = 0, answer = 0;  // ordered by the semaphores (post releases, wait acquires)
    bool stop = false;
  };
  oslab::Shared<State> s_;
};

// A System V set of two semaphores: semop(+1) on the other's, semop(-1) on ours. Every
// operation is a system call, needed or not (as svsematest does it).
class SysvExchange : public oslab::Exchange {
 public:
  SysvExchange() : set_(oslab::SysvId::semaphores(2)) {}
  void ping(uint64_t sequence) override {
    s_->message = sequence;
    op(kToPong, +1);
    op(kToPing, -1);
    if (s_->answer != (sequence ^ kMagic))
      throw std::runtime_error(fmt::format("sysv: sent {}, got the answer {:#x}", sequence, s_->answer));
  }
  bool pong() override {
    op(kToPong, -1);
    if (s_->stop) return false;
    s_->answer = s_->message ^ kMagic;
    op(kToPing, +1);
    return true;
  }
  void stop() override {
    s_->stop = true;
    op(kToPong, +1);
  }
  oslab::SyscallExpectation expected_syscalls() const override {
    return {4, true, "a semop to post and a semop to wait on each side"};
  }

 private:
  static constexpr unsigned short kToPong = 0, kToPing = 1;
  void op(unsigned short which, short delta) {
    sembuf change{which, delta, 0};
    while (::semop(set_.id(), &change, 1) == -1)
      if (errno != EINTR) throw oslab::SysError("semop", errno);
  }
  struct State {
    uint64_t message = 0, answer = 0;
    bool stop = false;
  };
  oslab::SysvId set_;  // the guardian removes it if the lab is killed
  oslab::Shared<State> s_;
};

// Bare futexes: a flag per direction; set it, FUTEX_WAKE; wait with FUTEX_WAIT while ours is 0.
class FutexExchange : public oslab::Exchange {
 public:
  explicit FutexExchange(bool between_processes)
      : scope_(between_processes ? oslab::FutexScope::shared : oslab::FutexScope::process_private) {}
  void ping(uint64_t sequence) override {
    s_->message = sequence;
    post(s_->to_pong);
    wait(s_->to_ping);
    if (s_->answer != (sequence ^ kMagic))
      throw std::runtime_error(fmt::format("futex: sent {}, got the answer {:#x}", sequence, s_->answer));
  }
  bool pong() override {
    wait(s_->to_pong);
    if (s_->stop.load()) return false;
    s_->answer = s_->message ^ kMagic;
    post(s_->to_ping);
    return true;
  }
  void stop() override {
    s_->stop = true;
    post(s_->to_pong);
  }
  oslab::SyscallExpectation expected_syscalls() const override {
    return {2, false, "a FUTEX_WAKE on each side (and a FUTEX_WAIT whenever the other has not answered yet)"};
  }

 private:
  void post(std::atomic<uint32_t>& flag) {
    flag.store(1, std::memory_order_release);
    oslab::futex_wake(&flag, 1, scope_);
  }
  void wait(std::atomic<uint32_t>& flag) {
    while (flag.load(std::memory_order_acquire) == 0) oslab::futex_wait(&flag, 0, std::chrono::nanoseconds(-1), scope_);
    flag.store(0, std::memory_order_relaxed);
  }
  struct State {
    std::atomic<uint32_t> to_pong{0}, to_ping{0};
    uint64_t message = 0, answer = 0;
    std::atomic<bool> stop{false};
  };
  oslab::FutexScope scope_;
  oslab::Shared<State> s_;
};

// Two eventfds: write(2) adds the message to the counter, read(2) takes it (and sleeps while 0).
class EventfdExchange : public oslab::Exchange {
 public:
  EventfdExchange()
      : to_pong_(check_errno("eventfd", ::eventfd(0, EFD_CLOEXEC))),
        to_ping_(check_errno("eventfd", ::eventfd(0, EFD_CLOEXEC))) {}
  void ping(uint64_t sequence) override {
    put(to_pong_, sequence);
    const uint64_t answer = take(to_ping_);
    if (answer != (sequence ^ kMagic))
      throw std::runtime_error(fmt::format("eventfd: sent {}, got the answer {:#x}", sequence, answer));
  }
  bool pong() override {
    const uint64_t message = take(to_pong_);
    if (message == kStop) return false;
    put(to_ping_, message ^ kMagic);
    return true;
  }
  void stop() override { put(to_pong_, kStop); }
  oslab::SyscallExpectation expected_syscalls() const override { return {4, true, "a write and a read on each side"}; }

 private:
  static constexpr uint64_t kStop = 0xFFFF'FFFF'FFFF'FFFEull - 1;  // an eventfd counter holds up to 2^64 - 2
  static void put(const oslab::UniqueFd& fd, uint64_t value) {
    if (check_errno("write(eventfd)", ::write(fd.get(), &value, sizeof value)) != sizeof value)
      throw std::runtime_error("write(eventfd): short write");
  }
  static uint64_t take(const oslab::UniqueFd& fd) {
    uint64_t value = 0;
    if (check_errno("read(eventfd)", ::read(fd.get(), &value, sizeof value)) != sizeof value)
      throw std::runtime_error("read(eventfd): short read");
    return value;
  }
  oslab::UniqueFd to_pong_, to_ping_;
};

struct Method {
  const char* name;
  const char* what;
  std::function<std::unique_ptr<oslab::Exchange>(bool between_processes)> make;
};

const std::vector<Method>& methods() {
  static const std::vector<Method> list = {
      {"condvar", "pthread_cond_signal -> pthread_cond_wait returns (a mutex, two condition variables, a turn flag)",
       [](bool p) { return std::make_unique<CondvarExchange>(p); }},
      {"semaphore", "sem_post -> sem_wait returns (two unnamed POSIX semaphores)",
       [](bool p) { return std::make_unique<SemaphoreExchange>(p); }},
      {"sysv-sem", "semop(+1) -> semop(-1) returns (a System V set of two semaphores)",
       [](bool) { return std::make_unique<SysvExchange>(); }},
      {"futex", "FUTEX_WAKE -> FUTEX_WAIT returns (two flags)",
       [](bool p) { return std::make_unique<FutexExchange>(p); }},
      {"eventfd", "write(2) -> read(2) returns (two eventfds)",
       [](bool) { return std::make_unique<EventfdExchange>(); }},
      {"pipe", "write(2) -> read(2) returns (two pipes, 4 bytes)",
       [](bool) { return std::make_unique<oslab::PipeExchange>(); }},
  };
  return list;
}

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const Method& m : methods()) names.emplace_back(m.name);
  return names;
}

// ---- How often a waiter wakes to nothing ----------------------------------------------------

// `waiters` threads take items from a counter under a mutex, each wait in a while loop; a
// producer adds `items` items one at a time and signals (or broadcasts) after each. Every
// wake-up that finds no item is counted: the item went to a thread that got the mutex first
// (a stolen wake-up), or the wake-up had no cause at all (a spurious one).
// About a microsecond on the CPU, without giving it up.
void pause_briefly() {
  for (int i = 0; i < 500; ++i) oslab::sync::cpu_relax();
}

struct WakeupCount {
  uint64_t items = 0, waits = 0, wakeups = 0, empty_wakeups = 0;
};

WakeupCount count_wakeups(int waiters, int items, bool broadcast, const std::vector<int>& cpus) {
  struct State {
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t available = PTHREAD_COND_INITIALIZER;
    long count = 0;
    bool done = false;
    WakeupCount seen;
  } s;
  std::vector<std::function<void(oslab::Party&)>> bodies;
  bodies.emplace_back([&](oslab::Party& party) {
    party.ready();
    for (int i = 0; i < items; ++i) {
      check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&s.mutex));
      ++s.count;
      check_errnum("pthread_cond_signal/broadcast",
                   broadcast ? ::pthread_cond_broadcast(&s.available) : ::pthread_cond_signal(&s.available));
      check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&s.mutex));
      pause_briefly();  // a moment for the waiters (sched_yield would wait behind every other task)
    }
    check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&s.mutex));
    s.done = true;
    ::pthread_cond_broadcast(&s.available);
    ::pthread_mutex_unlock(&s.mutex);
  });
  for (int w = 0; w < waiters; ++w)
    bodies.emplace_back([&](oslab::Party& party) {
      party.ready();
      check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&s.mutex));
      for (;;) {
        while (s.count == 0 && !s.done) {
          ++s.seen.waits;
          check_errnum("pthread_cond_wait", ::pthread_cond_wait(&s.available, &s.mutex));
          ++s.seen.wakeups;
          if (s.count == 0 && !s.done) ++s.seen.empty_wakeups;
        }
        if (s.count == 0) break;  // done, nothing left
        --s.count;
        ++s.seen.items;
        // Give the item back to the world between takes: unlock, and let the others run.
        check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&s.mutex));
        pause_briefly();
        check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&s.mutex));
      }
      check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&s.mutex));
    });
  oslab::run_parties(
      {.threads = true, .assignment = oslab::assign_cpus(oslab::Placement::unpinned, bodies.size(), cpus)}, bodies);
  return s.seen;
}

// ---- Why a wait sits in a while loop ---------------------------------------------------------

// A waiter, a producer and a thief share a count of items. The forced schedule: the waiter
// finds none and waits; the producer adds one and, while it holds the mutex, the thief queues
// for the mutex; the producer signals (the waiter wakes and queues behind the thief) and
// unlocks; the thief takes the item; the waiter gets the mutex back. With `if` it takes an item
// that is not there (the count goes negative); with `while` it checks again and waits for the
// producer's second item.
struct IfOutcome {
  long lowest_count = 0;  // below 0: an item was taken that did not exist
  long waiter_took = 0, thief_took = 0;
  std::string deadlock, released;
};

IfOutcome run_if_schedule(bool recheck, uint64_t seed, const std::vector<int>& cpus) {
  using oslab::sync::Schedule;
  struct State {
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t available = PTHREAD_COND_INITIALIZER;
    long count = 0, lowest = 0;
    long waiter_took = 0, thief_took = 0;
  } s;
  enum { kWaiter, kProducer, kThief };
  Schedule schedule({{kWaiter, "before-lock"},
                     {kWaiter, "before-wait"},
                     {kProducer, "before-lock"},
                     {kProducer, "after-add"},  // holding the mutex
                     {kThief, "before-lock"},
                     {kProducer, "before-signal", {kThief}, &s.mutex},
                     {kProducer, "before-unlock", {kWaiter}, &s.mutex},
                     // The producer's second item only once the waiter has the mutex back: a
                     // producer that took the mutex again at once would hand it a real item.
                     {kWaiter, "after-wait"},
                     {kProducer, "before-lock"}},
                    seed);
  oslab::sync::WaitBoard board({"the waiter", "the producer", "the thief"});
  schedule.attach(&board);
  constexpr const char* kMutexName = "mutex 'items'";
  auto lock = [&](int me) {
    board.waiting(me, kMutexName, "to get at the count");
    check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&s.mutex));
    board.running(me);
    board.holds(me, kMutexName);
  };
  auto unlock = [&](int me) {
    board.releases(me, kMutexName);
    check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&s.mutex));
  };
  auto take = [&](long& took) {
    --s.count;
    ++took;
    s.lowest = std::min(s.lowest, s.count);
  };
  auto start = [&](int me, oslab::Party& party) {
    board.enroll(me);
    schedule.enroll(me);
    party.ready();
  };
  std::vector<std::function<void(oslab::Party&)>> bodies = {
      [&](oslab::Party& party) {  // the waiter
        start(kWaiter, party);
        schedule.point(kWaiter, "before-lock");
        lock(kWaiter);
        auto wait = [&] {
          schedule.point(kWaiter, "before-wait");
          board.releases(kWaiter, kMutexName);
          board.waiting(kWaiter, "condition variable 'available'", "waiting for an item");
          check_errnum("pthread_cond_wait", ::pthread_cond_wait(&s.available, &s.mutex));
          board.running(kWaiter);
          board.holds(kWaiter, kMutexName);
          schedule.point(kWaiter, "after-wait");
        };
        if (recheck) {
          while (s.count == 0 && !board.aborted()) wait();
        } else if (s.count == 0) {
          wait();
        }
        if (!board.aborted()) take(s.waiter_took);
        unlock(kWaiter);
        board.done(kWaiter);
      },
      [&](oslab::Party& party) {  // the producer: two items
        start(kProducer, party);
        for (int i = 0; i < 2; ++i) {
          schedule.point(kProducer, "before-lock");
          lock(kProducer);
          ++s.count;
          board.progress();
          schedule.point(kProducer, "after-add");
          schedule.point(kProducer, "before-signal");
          check_errnum("pthread_cond_signal", ::pthread_cond_signal(&s.available));
          schedule.point(kProducer, "before-unlock");
          unlock(kProducer);
        }
        board.done(kProducer);
      },
      [&](oslab::Party& party) {  // the thief: takes an item if there is one, never waits
        start(kThief, party);
        schedule.point(kThief, "before-lock");
        lock(kThief);
        if (s.count > 0) take(s.thief_took);
        board.progress();
        unlock(kThief);
        board.done(kThief);
      }};
  board.watch(
      &schedule, [&] { return fmt::format("count {}", s.count); }, [&] { ::pthread_cond_broadcast(&s.available); },
      std::chrono::milliseconds(100));
  oslab::run_parties(
      {.threads = true, .assignment = oslab::assign_cpus(oslab::Placement::unpinned, bodies.size(), cpus)}, bodies);
  board.stop();
  IfOutcome outcome{s.lowest, s.waiter_took, s.thief_took, board.deadlock(), ""};
  if (schedule.released() && !board.deadlocked()) outcome.released = schedule.released_why();
  return outcome;
}

// ---- The experiment --------------------------------------------------------------------------

struct Case {
  const Method* method;
  oslab::Assignment assignment;
  bool processes;
  oslab::PingPongResult result;
  uint64_t wakeups = 0, empty_wakeups = 0;
  nlohmann::json params() const {
    nlohmann::json p = assignment.to_json();
    p["method"] = method->name;
    p["as"] = processes ? "processes" : "threads";
    return p;
  }
};

struct Experiment {
  const oslab::Lab& lab;
  std::vector<const Method*> chosen;
  std::vector<std::string> as;
  int waiters, wakeup_items;
  std::vector<Case> cases;
  std::map<std::string, std::string> syscall_checks;  // method -> describe() or the failure
  std::map<std::string, bool> syscall_ok;
  std::optional<WakeupCount> signal_count, broadcast_count;
  std::optional<IfOutcome> with_if, with_while;

  void measure(oslab::Report& report) {
    for (const std::string& mode : as)
      for (oslab::Placement placement : lab.options().placements)
        for (const Method* method : chosen) {
          const bool processes = mode == "processes";
          report.run_case(fmt::format("{} {} {}", method->name, oslab::to_string(placement), mode), [&] {
            Case c{method, oslab::assign_cpus(placement, 2, lab.options().cpus), processes, {}, 0, 0};
            std::unique_ptr<oslab::Exchange> exchange = method->make(processes);
            c.result = oslab::run_ping_pong(*exchange, {.threads = !processes, .assignment = c.assignment}, lab.plan());
            if (auto* cv = dynamic_cast<CondvarExchange*>(exchange.get())) {
              c.wakeups = cv->wakeups();
              c.empty_wakeups = cv->empty_wakeups();
            }
            add_result(report, c);
            cases.push_back(std::move(c));
          });
        }
  }

  void add_result(oslab::Report& report, const Case& c) const {
    std::map<std::string, double> counters = c.result.pong_counters.to_map("pong_");
    const double round_trips = static_cast<double>(std::max<uint64_t>(c.result.answered, 1));
    if (c.wakeups) {
      counters["wakeups_per_round_trip"] = static_cast<double>(c.wakeups) / round_trips;
      counters["empty_wakeups_per_round_trip"] = static_cast<double>(c.empty_wakeups) / round_trips;
    }
    report.add("round trip", c.params(), c.result.round_trips,
               {.what = fmt::format("{}: one message there and the answer back, two hand-offs, {}, as {}; timed on "
                                    "side 0",
                                    c.method->what, c.assignment.describe(), c.processes ? "processes" : "threads"),
                .counters = counters,
                .headline = std::string(c.method->name) == "condvar" || std::string(c.method->name) == "futex"});
  }

  void check_syscalls(oslab::Report& report) {
    for (const Method* method : chosen) {
      report.run_case(fmt::format("system calls of {}", method->name), [&] {
        std::unique_ptr<oslab::Exchange> exchange = method->make(false);
        const oslab::Assignment same = oslab::assign_cpus(oslab::Placement::same_cpu, 2, lab.options().cpus);
        try {
          const oslab::SyscallCheck check = oslab::verify_syscalls(*exchange, {.threads = true, .assignment = same});
          syscall_checks[method->name] = check.describe();
          syscall_ok[method->name] = true;
        } catch (const oslab::SkipError&) {
          throw;
        } catch (const std::exception& e) {
          syscall_checks[method->name] = e.what();
          syscall_ok[method->name] = false;
        }
      });
    }
  }

  void count(oslab::Report& report) {
    report.run_case("wake-ups with signal",
                    [&] { signal_count = count_wakeups(waiters, wakeup_items, false, lab.options().cpus); });
    report.run_case("wake-ups with broadcast",
                    [&] { broadcast_count = count_wakeups(waiters, wakeup_items, true, lab.options().cpus); });
    report.run_case("the if waiter under a forced schedule", [&] {
      const std::string unavailable = oslab::sync::futex_observation_unavailable();
      if (!unavailable.empty())
        throw oslab::SkipError("the schedule watches threads sleep on the mutex, but " + unavailable);
      with_if = run_if_schedule(false, lab.options().seed, lab.options().cpus);
      with_while = run_if_schedule(true, lab.options().seed, lab.options().cpus);
    });
  }

  const Case* find(const char* method, oslab::Placement placement, bool processes) const {
    for (const Case& c : cases)
      if (std::string(c.method->name) == method && c.assignment.placement == placement && c.processes == processes)
        return &c;
    return nullptr;
  }

  void tables(oslab::Report& report) const {
    for (const std::string& mode : as) {
      oslab::Table t{fmt::format("One hand-off (half a round trip), as {}", mode),
                     {"method"},
                     {},
                     "median and p99 of round trip / 2 (a round trip is two hand-offs: there and back); vs futex: the "
                     "ratio of medians at the same placement. rt-tests' ptsematest and svsematest print one-way "
                     "latencies in whole microseconds, measured their own way: compare ratios, not the digits."};
      for (oslab::Placement placement : lab.options().placements) {
        t.header.push_back(fmt::format("{} p50", oslab::to_string(placement)));
        t.header.emplace_back("p99");
        t.header.emplace_back("vs futex");
      }
      for (const Method* method : chosen) {
        std::vector<std::string> row{method->name};
        for (oslab::Placement placement : lab.options().placements) {
          const Case* c = find(method->name, placement, mode == "processes");
          const Case* futex = find("futex", placement, mode == "processes");
          if (!c) {
            row.insert(row.end(), {"-", "-", "-"});
            continue;
          }
          const oslab::Summary s = oslab::summarize(c->result.round_trips.samples_ns);
          row.push_back(oslab::format_duration(s.p50 / 2));
          row.push_back(oslab::format_duration(s.p99 / 2));
          row.push_back(
              futex ? fmt::format("{:.2f}x", s.p50 / oslab::summarize(futex->result.round_trips.samples_ns).p50) : "-");
        }
        t.rows.push_back(row);
      }
      report.table(t);
    }
    if (signal_count && broadcast_count) {
      oslab::Table t{
          fmt::format("Wake-ups: {} waiters, one producer adding {} items one at a time", waiters, wakeup_items),
          {"producer calls", "items taken", "waits", "wake-ups", "woke to nothing"},
          {},
          "woke to nothing: pthread_cond_wait returned but the count was still 0 (the item went to a "
          "thread that got the mutex first, or the wake-up was spurious); the while loop sends such a "
          "waiter back to sleep."};
      for (const auto& [name, c] :
           {std::pair{"pthread_cond_signal", *signal_count}, std::pair{"pthread_cond_broadcast", *broadcast_count}})
        t.rows.push_back(
            {name, std::to_string(c.items), std::to_string(c.waits), std::to_string(c.wakeups),
             fmt::format("{} ({})", c.empty_wakeups,
                         oslab::format_percent(
                             c.wakeups ? static_cast<double>(c.empty_wakeups) / static_cast<double>(c.wakeups) : 0))});
      report.table(t);
    }
  }

  void verdicts(oslab::Report& report) const {
    if (!syscall_checks.empty()) {
      bool all = true;
      std::string evidence;
      for (const auto& [method, text] : syscall_checks) {
        all = all && syscall_ok.at(method);
        evidence += fmt::format("{}{}: {}", evidence.empty() ? "" : "; ", method, text);
      }
      report.fact("handoffs-make-their-system-calls",
                  "every method's round trip made the system calls it must (counted by the kernel, both sides, on "
                  "one CPU): no method skips the kernel and looks fast",
                  all, evidence);
    }
    if (with_if && with_while) {
      const bool if_broke = with_if->lowest_count < 0;
      const bool while_held = with_while->lowest_count >= 0 && with_while->deadlock.empty() &&
                              with_while->waiter_took == 1 && with_while->thief_took == 1;
      report.fact("while-not-if",
                  "a wait must sit in a while loop: under the forced interleaving (the item is taken between the "
                  "signal and the waiter getting the mutex back) the `if` waiter takes an item that is not there, "
                  "the `while` waiter waits again and gets the next one",
                  if_broke && while_held,
                  fmt::format("if: the count fell to {} (the waiter took {}, the thief {}){}; while: lowest count {}, "
                              "the waiter took {}, the thief {}{}",
                              with_if->lowest_count, with_if->waiter_took, with_if->thief_took,
                              with_if->released.empty() ? "" : " [schedule released: " + with_if->released + "]",
                              with_while->lowest_count, with_while->waiter_took, with_while->thief_took,
                              with_while->deadlock.empty() ? "" : " DEADLOCK: " + with_while->deadlock));
    }
    if (broadcast_count && signal_count) {
      // Whether waiters were asleep together when a broadcast came is up to the scheduler: no
      // wake-up to nothing proves nothing, so that case is inconclusive, not a refutation.
      const WakeupCount& b = *broadcast_count;
      const bool all_taken =
          b.items == static_cast<uint64_t>(wakeup_items) && signal_count->items == static_cast<uint64_t>(wakeup_items);
      report.verdict("waiters-wake-to-nothing",
                     "a waiter must expect to wake to nothing: with broadcast, most wake-ups find the item already "
                     "taken and the while loop sends them back to sleep; every item is still taken exactly once",
                     !all_taken            ? oslab::VerdictState::does_not_hold
                     : b.empty_wakeups > 0 ? oslab::VerdictState::holds
                                           : oslab::VerdictState::inconclusive,
                     fmt::format("broadcast: {} wake-ups, {} to nothing, {} of {} items taken; signal: {} wake-ups, {} "
                                 "to nothing, {} items taken (inconclusive when no two waiters ever slept together)",
                                 b.wakeups, b.empty_wakeups, b.items, wakeup_items, signal_count->wakeups,
                                 signal_count->empty_wakeups, signal_count->items));
    }
    const bool processes = as.front() == "processes";
    const oslab::Placement placement = lab.options().placements.front();
    const Case* cv = find("condvar", placement, processes);
    const Case* futex = find("futex", placement, processes);
    if (cv && futex) {
      const oslab::Summary c =
          oslab::summarize_blocks(cv->result.round_trips.samples_ns, cv->result.round_trips.blocks);
      const oslab::Summary f =
          oslab::summarize_blocks(futex->result.round_trips.samples_ns, futex->result.round_trips.blocks);
      report.verdict(
          "condvar-costs-a-futex-and-more",
          "a condition variable hand-off costs at least as much as the bare futex it is built on (it adds a "
          "mutex and its own bookkeeping)",
          oslab::ratio_of(c, f), oslab::Compare::above, 1.0,
          fmt::format("{} {}: condvar {} vs futex {} per round trip", cv->processes ? "processes" : "threads",
                      cv->assignment.describe(), oslab::format_duration(c.p50), oslab::format_duration(f.p50)));
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "condvar",
      .purpose = "hand-off latency: condition variable, semaphore, futex, System V semaphore, eventfd, pipe; "
                 "wake-ups to nothing; while, not if",
      .claim = "The notes (pthreads API): condition variables let a thread wait until another signals it;\n"
               "semaphores can do the same. What does waking a waiting thread (or process) cost, how often does\n"
               "a waiter wake to nothing, and why must every wait sit in a loop?",
      .explain = "Two parties pass a message back and forth (a ping-pong); each hand-off wakes the other side, which\n"
                 "was asleep waiting for it. Methods: a condition variable (mutex, two condition variables, a turn\n"
                 "flag), two POSIX semaphores, two bare futexes, a System V semaphore set, two eventfds, two pipes.\n"
                 "Every answer is checked (the message xor a constant), and each method's system calls per round\n"
                 "trip are counted by the kernel once per run, so a method that skipped the kernel would be caught,\n"
                 "not reported as fast.\n\n"
                 "Placement matters more than the method: on one CPU (same-cpu) a hand-off is a context switch, the\n"
                 "waker runs until it blocks and then the scheduler switches to the woken side; on two CPUs\n"
                 "(two-cpus) it is a wake-up of the other CPU, which costs whatever that CPU needs to leave its idle\n"
                 "state (and in a virtual machine, the hypervisor's IPI). Threads and processes (--as) cost about the\n"
                 "same: a switch between processes also changes the address space, which modern CPUs (PCID) make\n"
                 "cheap. One hand-off is half a round trip: the tables show round trip / 2, to set beside tools that\n"
                 "report one-way latency (rt-tests' ptsematest and svsematest, which print whole microseconds).\n\n"
                 "Underneath, a condition variable, a semaphore and a mutex are all futexes: a thread sleeps with\n"
                 "FUTEX_WAIT only when it must and is woken with FUTEX_WAKE. The condition variable adds its mutex\n"
                 "and some bookkeeping (glibc keeps waiters in two groups, so that a signal wakes one who was\n"
                 "already waiting, the longest first). A System V semaphore is always a system call (semop), and an\n"
                 "eventfd or a pipe a write and a read.\n\n"
                 "Waking to nothing: pthread_cond_wait may return although no one signalled (POSIX allows spurious\n"
                 "wake-ups), and a signalled waiter must get the mutex back before it runs, so a thread that was not\n"
                 "waiting can take the item first (a stolen wake-up). With broadcast every waiter wakes for one item\n"
                 "and all but one find nothing. The lab counts wake-ups that found the condition still false. That is\n"
                 "why a wait sits in a while loop. The `if` version is shown failing under a forced interleaving: the\n"
                 "threads pass a token at marked points, and where the order depends on who gets the mutex first, one\n"
                 "waits until the other is asleep on it (read from /proc/self/task/TID/syscall); the kernel wakes\n"
                 "futex waiters in the order they slept, so it fails every time. The same schedule with `while`\n"
                 "works.\n\n"
                 "Questions: why is the same-CPU round trip about two context switches? Why does broadcast exist if\n"
                 "it wakes threads for nothing? Must pthread_cond_signal be called with the mutex held?",
      .placements = {oslab::Placement::same_cpu, oslab::Placement::two_cpus, oslab::Placement::unpinned},
      .default_placements = {oslab::Placement::same_cpu, oslab::Placement::two_cpus},
  });
  const auto& method_choice = lab.choice_option("--methods", "Hand-off methods, comma-separated", method_names(),
                                                {.full = method_names(), .quick = method_names()});
  const auto& as = lab.choice_option("--as", "Run the two sides as threads, processes, or both (comma-separated)",
                                     {"threads", "processes"},
                                     {.full = {"threads", "processes"}, .quick = {"threads", "processes"}});
  const long& waiters =
      lab.integer_option("--waiters", "Waiting threads in the wake-up count", {.full = 4, .quick = 3}, 1, 60);
  const long& wakeup_items = lab.integer_option("--wakeup-items", "Items the producer adds in the wake-up count",
                                                {.full = 5'000, .quick = 1'000}, 1, 10'000'000);
  lab.sampling({.samples = {.full = 2000, .quick = 300}, .budget_s = {.full = 0.25, .quick = 0.03}});
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    std::vector<const Method*> chosen;
    for (const std::string& name : method_choice)
      for (const Method& m : methods())
        if (name == m.name) chosen.push_back(&m);
    experiment.emplace(Experiment{
        lab, chosen, as, static_cast<int>(waiters), static_cast<int>(wakeup_items), {}, {}, {}, {}, {}, {}, {}});
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->measure(report);
        experiment->check_syscalls(report);
        experiment->count(report);
        experiment->tables(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
