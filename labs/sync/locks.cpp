// oslab-locks: what mutual exclusion costs, uncontended and contended, for the pthread locks,
// the classic spinlocks, Drepper's futex mutex, semaphores used as locks, and std::mutex.
//
// Try:     oslab-locks                              every lock; 1 worker, up to the CPUs, 4x the CPUs
//          oslab-locks --locks mutex,tas,ticket,mcs -n 1,2,4,16
//          oslab-locks --as processes               the process-shared variants between processes
//          oslab-locks --outside-work 0             no work between acquisitions: pure contention
// Expect:  uncontended, every futex-based lock and every spinlock is a few nanoseconds and no
//          system call; a System V semaphore pays two system calls per lock+unlock. Contended,
//          spinlocks burn CPU (no voluntary switches) while a mutex sleeps in the kernel (futex
//          calls, voluntary switches). With more workers than CPUs a spinning waiter can wait a
//          whole time slice for a preempted holder, and a FIFO spinlock (ticket, MCS) stalls
//          behind a preempted waiter: milliseconds. FIFO locks share the lock evenly; the others
//          need not.
// Compare: oslab-condvar (what waking a sleeper costs), oslab-semaphores, oslab-prodcons.

#include <pthread.h>
#include <semaphore.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "locks.hpp"
#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/histogram.hpp"
#include "oslab/ipc.hpp"
#include "oslab/lab.hpp"
#include "oslab/measure.hpp"
#include "oslab/parties.hpp"
#include "oslab/shared.hpp"
#include "oslab/syscalls.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errnum;
using oslab::sync::McsLock;

enum class Kind {
  mutex,
  adaptive,
  errorcheck,
  std_mutex,
  tas,
  ttas,
  ticket,
  mcs,
  futex,
  rw_reads,
  rw_writes,
  posix_sem,
  sysv_sem
};

struct LockType {
  Kind kind;
  const char* name;  // --locks and the results' "lock" param
  const char* what;
  bool process_shared;  // can work between processes
  int read_percent;     // rwlock mixes: the share of acquisitions that are reads
  bool spins;           // waits on the CPU, never in the kernel
  bool futex_based;     // built on a futex: enters the kernel only to sleep or wake
};

const std::vector<LockType> kLockTypes = {
    {Kind::mutex, "mutex", "pthread_mutex_t, default type (normal)", true, 0, false, true},
    {Kind::adaptive, "mutex-adaptive", "pthread_mutex_t, PTHREAD_MUTEX_ADAPTIVE_NP: spins a while before it sleeps",
     true, 0, false, true},
    {Kind::errorcheck, "mutex-errorcheck",
     "pthread_mutex_t, PTHREAD_MUTEX_ERRORCHECK: records its owner, refuses a relock or a foreign unlock", true, 0,
     false, true},
    {Kind::std_mutex, "std-mutex", "std::mutex (a default pthread mutex inside)", false, 0, false, true},
    {Kind::tas, "tas", "test-and-set spinlock (locks.hpp)", true, 0, true, false},
    {Kind::ttas, "ttas", "test-and-test-and-set spinlock with exponential backoff (locks.hpp)", true, 0, true, false},
    {Kind::ticket, "ticket", "ticket spinlock: FIFO (locks.hpp)", true, 0, true, false},
    {Kind::mcs, "mcs", "MCS queue spinlock: FIFO, each waiter spins on its own node (locks.hpp)", true, 0, true, false},
    {Kind::futex, "futex", "Drepper's three-state futex mutex (locks.hpp)", true, 0, false, true},
    {Kind::rw_reads, "rwlock-reads", "pthread_rwlock_t, 90% of acquisitions read (shared), 10% write", true, 90, false,
     true},
    {Kind::rw_writes, "rwlock-writes", "pthread_rwlock_t, 10% of acquisitions read, 90% write", true, 10, false, true},
    {Kind::posix_sem, "posix-sem", "POSIX semaphore (sem_t, initial value 1) used as a lock", true, 0, false, true},
    {Kind::sysv_sem, "sysv-sem", "System V semaphore (semop -1 / +1 with SEM_UNDO) used as a lock", true, 0, false,
     false},
};

std::vector<std::string> lock_names() {
  std::vector<std::string> names;
  for (const auto& type : kLockTypes) names.emplace_back(type.name);
  return names;
}

const LockType& lock_type(const std::string& name) {
  for (const auto& type : kLockTypes)
    if (name == type.name) return type;
  throw std::logic_error("unknown lock " + name);
}

constexpr int kMaxWorkers = 64;  // run_parties' limit

// What the critical section touches. The counter is read and written with two separate
// atomic operations, not one read-modify-write: two holders at once would lose an update.
// The inside counts catch an overlap even when the counter happens to come out right.
struct alignas(oslab::sync::kCacheLine) Guarded {
  std::atomic<uint64_t> counter{0};
  std::atomic<int> writers_inside{0};
  std::atomic<int> readers_inside{0};
  std::atomic<uint64_t> overlaps{0};
};

// Every lock, in memory shared before the workers start (threads or processes alike).
struct LockSet {
  pthread_mutex_t mutex;
  pthread_rwlock_t rwlock;
  sem_t sem;
  alignas(oslab::sync::kCacheLine) std::mutex std_mutex;
  oslab::sync::TasLock tas;
  oslab::sync::TtasLock ttas;
  oslab::sync::TicketLock ticket;
  McsLock mcs;
  alignas(oslab::sync::kCacheLine) oslab::sync::FutexMutex futex;
  int sysv_id = -1;
  McsLock::Node nodes[kMaxWorkers];
  Guarded guarded;
};

// ---- One small adapter per lock: acquire(worker, reader) and release(worker, reader) --------

struct PthreadMutex {
  pthread_mutex_t* m;
  void acquire(int, bool) { check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(m)); }
  void release(int, bool) { check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(m)); }
};
struct StdMutex {
  std::mutex* m;
  void acquire(int, bool) { m->lock(); }
  void release(int, bool) { m->unlock(); }
};
template <typename Spin>
struct Plain {  // TAS, TTAS, ticket, futex mutex: lock() and unlock()
  Spin* lock;
  void acquire(int, bool) { lock->lock(); }
  void release(int, bool) { lock->unlock(); }
};
struct Mcs {
  McsLock* lock;
  McsLock::Node* nodes;  // one per worker
  void acquire(int worker, bool) { lock->lock(nodes[worker]); }
  void release(int worker, bool) { lock->unlock(nodes[worker]); }
};
struct RwLock {
  pthread_rwlock_t* rw;
  void acquire(int, bool reader) {
    check_errnum(reader ? "pthread_rwlock_rdlock" : "pthread_rwlock_wrlock",
                 reader ? ::pthread_rwlock_rdlock(rw) : ::pthread_rwlock_wrlock(rw));
  }
  void release(int, bool) { check_errnum("pthread_rwlock_unlock", ::pthread_rwlock_unlock(rw)); }
};
struct PosixSem {
  sem_t* sem;
  void acquire(int, bool) {
    while (::sem_wait(sem) == -1)
      if (errno != EINTR) throw oslab::SysError("sem_wait", errno);
  }
  void release(int, bool) { check_errno("sem_post", ::sem_post(sem)); }
};
struct SysvSem {
  int id;
  void acquire(int, bool) { op(-1); }
  void release(int, bool) { op(+1); }
  void op(short delta) const {
    sembuf change{0, delta, SEM_UNDO};  // SEM_UNDO: the kernel gives it back if we die holding it
    while (::semop(id, &change, 1) == -1)
      if (errno != EINTR) throw oslab::SysError("semop", errno);
  }
};

// ---- The workers ---------------------------------------------------------------------------

// Work of `units` dependent multiply-adds (about a nanosecond each), kept from being optimised away.
inline uint64_t work(uint64_t seed, int units) {
  for (int i = 0; i < units; ++i) seed = seed * 6364136223846793005ull + 1442695040888963407ull;
  return seed;
}

struct Xorshift {
  uint64_t state;
  uint32_t below(uint32_t n) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<uint32_t>(state % n);
  }
};

constexpr size_t kMaxBuckets = 7424;  // LogHistogram's bucket count

// What one worker reports, in shared memory.
struct WorkerReport {
  uint64_t acquisitions = 0, reads = 0;
  int64_t start_ns = 0, end_ns = 0, cpu_ns = 0;
  oslab::Counters counters;  // this thread's, over the run
  uint64_t syscalls = 0, futex_calls = 0, semop_calls = 0;
  bool counted = false;
  char count_error[160] = {};
  uint64_t sink = 0;
  size_t buckets = 0;
  double bucket_value[kMaxBuckets];
  uint64_t bucket_count[kMaxBuckets];
};

struct RunSetup {
  int duration_ms;
  int critical_work, outside_work;
  int read_percent;
  uint64_t seed;
  bool count_syscalls;  // the counting pass: perf on, no histogram
};

int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void critical_section(Guarded& g, bool reader, int units, uint64_t& sink) {
  if (reader) {
    g.readers_inside.fetch_add(1, std::memory_order_relaxed);
    if (g.writers_inside.load(std::memory_order_relaxed) != 0) g.overlaps.fetch_add(1, std::memory_order_relaxed);
    sink += g.counter.load(std::memory_order_relaxed);
    sink = work(sink, units);
    g.readers_inside.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  if (g.writers_inside.fetch_add(1, std::memory_order_relaxed) != 0 ||
      g.readers_inside.load(std::memory_order_relaxed) != 0)
    g.overlaps.fetch_add(1, std::memory_order_relaxed);
  g.counter.store(g.counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  sink = work(sink, units);
  g.writers_inside.fetch_sub(1, std::memory_order_relaxed);
}

// The measured loop, one instantiation per lock: no dispatch inside. Each acquisition is timed
// from the attempt to the moment the lock is held (two clock reads, the second inside).
template <typename Lock>
void contend(Lock lock, Guarded& guarded, const RunSetup& setup, int worker, WorkerReport& out, oslab::Party& party) {
  Xorshift random{setup.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(worker) + 1};
  std::optional<oslab::LogHistogram> waits;
  std::optional<oslab::SyscallCounter> syscall_counter;
  if (setup.count_syscalls) {
    try {
      syscall_counter.emplace();
    } catch (const std::exception& e) {
      (void)std::snprintf(out.count_error, sizeof out.count_error, "%s", e.what());
    }
  } else {
    waits.emplace();
  }
  uint64_t sink = 0, acquisitions = 0, reads = 0;
  party.ready();
  if (syscall_counter) syscall_counter->start();
  const oslab::Counters before = oslab::read_counters(RUSAGE_THREAD);
  const int64_t cpu_before = thread_cpu_ns();
  const int64_t start = oslab::now_ns(), end = start + int64_t{setup.duration_ms} * 1'000'000;
  int64_t attempt = start;
  while (attempt < end) {
    const bool reader = setup.read_percent > 0 && random.below(100) < static_cast<uint32_t>(setup.read_percent);
    lock.acquire(worker, reader);
    const int64_t held = oslab::now_ns();
    critical_section(guarded, reader, setup.critical_work, sink);
    lock.release(worker, reader);
    if (waits) waits->record(static_cast<double>(held - attempt));
    ++acquisitions;
    reads += reader;
    sink = work(sink, setup.outside_work);
    attempt = oslab::now_ns();
  }
  out.end_ns = attempt;
  out.cpu_ns = thread_cpu_ns() - cpu_before;
  out.counters = oslab::read_counters(RUSAGE_THREAD) - before;
  if (syscall_counter) {
    const oslab::SyscallCounts counts = syscall_counter->stop();
    out.counted = true;
    out.syscalls = counts.total;
    out.futex_calls = counts.of("futex");
    out.semop_calls = counts.of("semop") + counts.of("semtimedop");
  }
  out.start_ns = start;
  out.acquisitions = acquisitions;
  out.reads = reads;
  out.sink = sink;
  if (waits) {
    const auto buckets = waits->buckets();
    out.buckets = std::min(buckets.size(), kMaxBuckets);
    for (size_t i = 0; i < out.buckets; ++i) {
      out.bucket_value[i] = buckets[i].first;
      out.bucket_count[i] = buckets[i].second;
    }
  }
}

void run_worker(Kind kind, LockSet& set, const RunSetup& setup, int worker, WorkerReport& out, oslab::Party& party) {
  Guarded& g = set.guarded;
  switch (kind) {
    case Kind::mutex:
    case Kind::adaptive:
    case Kind::errorcheck: contend(PthreadMutex{&set.mutex}, g, setup, worker, out, party); break;
    case Kind::std_mutex: contend(StdMutex{&set.std_mutex}, g, setup, worker, out, party); break;
    case Kind::tas: contend(Plain<oslab::sync::TasLock>{&set.tas}, g, setup, worker, out, party); break;
    case Kind::ttas: contend(Plain<oslab::sync::TtasLock>{&set.ttas}, g, setup, worker, out, party); break;
    case Kind::ticket: contend(Plain<oslab::sync::TicketLock>{&set.ticket}, g, setup, worker, out, party); break;
    case Kind::mcs: contend(Mcs{&set.mcs, set.nodes}, g, setup, worker, out, party); break;
    case Kind::futex: contend(Plain<oslab::sync::FutexMutex>{&set.futex}, g, setup, worker, out, party); break;
    case Kind::rw_reads:
    case Kind::rw_writes: contend(RwLock{&set.rwlock}, g, setup, worker, out, party); break;
    case Kind::posix_sem: contend(PosixSem{&set.sem}, g, setup, worker, out, party); break;
    case Kind::sysv_sem: contend(SysvSem{set.sysv_id}, g, setup, worker, out, party); break;
  }
}

// Makes the lock of `kind` fresh, private to this process or shared between processes.
void init_lock(LockSet& set, Kind kind, bool between_processes) {
  const int pshared = between_processes ? PTHREAD_PROCESS_SHARED : PTHREAD_PROCESS_PRIVATE;
  switch (kind) {
    case Kind::mutex:
    case Kind::adaptive:
    case Kind::errorcheck: {
      pthread_mutexattr_t attr;
      check_errnum("pthread_mutexattr_init", ::pthread_mutexattr_init(&attr));
      const int type = kind == Kind::adaptive     ? PTHREAD_MUTEX_ADAPTIVE_NP
                       : kind == Kind::errorcheck ? PTHREAD_MUTEX_ERRORCHECK
                                                  : PTHREAD_MUTEX_DEFAULT;
      check_errnum("pthread_mutexattr_settype", ::pthread_mutexattr_settype(&attr, type));
      check_errnum("pthread_mutexattr_setpshared", ::pthread_mutexattr_setpshared(&attr, pshared));
      check_errnum("pthread_mutex_init", ::pthread_mutex_init(&set.mutex, &attr));
      ::pthread_mutexattr_destroy(&attr);
      break;
    }
    case Kind::rw_reads:
    case Kind::rw_writes: {
      pthread_rwlockattr_t attr;
      check_errnum("pthread_rwlockattr_init", ::pthread_rwlockattr_init(&attr));
      check_errnum("pthread_rwlockattr_setpshared", ::pthread_rwlockattr_setpshared(&attr, pshared));
      check_errnum("pthread_rwlock_init", ::pthread_rwlock_init(&set.rwlock, &attr));
      ::pthread_rwlockattr_destroy(&attr);
      break;
    }
    case Kind::posix_sem: check_errno("sem_init", ::sem_init(&set.sem, between_processes ? 1 : 0, 1)); break;
    case Kind::sysv_sem: check_errno("semctl(SETVAL)", ::semctl(set.sysv_id, 0, SETVAL, 1)); break;
    case Kind::std_mutex: new (&set.std_mutex) std::mutex(); break;
    case Kind::tas: new (&set.tas) oslab::sync::TasLock(); break;
    case Kind::ttas: new (&set.ttas) oslab::sync::TtasLock(); break;
    case Kind::ticket: new (&set.ticket) oslab::sync::TicketLock(); break;
    case Kind::mcs: new (&set.mcs) McsLock(); break;
    case Kind::futex:
      new (&set.futex)
          oslab::sync::FutexMutex(between_processes ? oslab::FutexScope::shared : oslab::FutexScope::process_private);
      break;
  }
}

void destroy_lock(LockSet& set, Kind kind) {
  switch (kind) {
    case Kind::mutex:
    case Kind::adaptive:
    case Kind::errorcheck: ::pthread_mutex_destroy(&set.mutex); break;
    case Kind::rw_reads:
    case Kind::rw_writes: ::pthread_rwlock_destroy(&set.rwlock); break;
    case Kind::posix_sem: ::sem_destroy(&set.sem); break;
    case Kind::std_mutex: set.std_mutex.~mutex(); break;
    default: break;
  }
}

// ---- Rounds and cases ------------------------------------------------------------------------

struct Round {
  double throughput = 0;  // acquisitions per second, all workers together
  std::vector<uint64_t> per_worker;
  double fairness_cv = 0;  // stddev / mean of the workers' acquisitions
  uint64_t acquisitions = 0, writes = 0;
  double wall_s = 0, cpu_s = 0;
  oslab::Counters counters;  // summed over workers
  bool counted = false;
  std::string count_error;
  uint64_t syscalls = 0, futex_calls = 0, semop_calls = 0;
};

double coefficient_of_variation(const std::vector<uint64_t>& values) {
  if (values.size() < 2) return 0;
  double mean = 0;
  for (uint64_t v : values) mean += static_cast<double>(v);
  mean /= static_cast<double>(values.size());
  double sum = 0;
  for (uint64_t v : values) sum += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
  return mean > 0 ? std::sqrt(sum / static_cast<double>(values.size())) / mean : 0;
}

struct Case {
  const LockType* type;
  int workers;
  bool processes;
  std::vector<Round> rounds;
  Round counting;  // the syscall-counting pass
  oslab::LogHistogram waits;
  uint64_t overlaps = 0, lost_updates = 0;
  std::string failure;
  std::string as() const { return processes ? "processes" : "threads"; }
  nlohmann::json params() const { return {{"lock", type->name}, {"workers", workers}, {"as", as()}}; }
};

struct Experiment {
  const oslab::Lab& lab;
  std::vector<const LockType*> locks;
  std::vector<long> worker_counts;
  std::vector<std::string> as;
  int duration_ms, rounds, critical_work, outside_work;
  int cpus = 1;
  std::optional<oslab::Shared<LockSet>> set;
  std::optional<oslab::SharedArray<WorkerReport>> reports;
  std::unique_ptr<oslab::SysvId> sysv_set;
  std::vector<Case> cases;
  std::map<std::string, oslab::Measurement> uncontended;
  std::map<std::string, double> uncontended_syscalls;  // per lock+unlock, counted by the kernel
  std::string syscall_count_method, syscall_count_skip;

  void setup() {
    set.emplace();
    reports.emplace(kMaxWorkers);
    if (std::any_of(locks.begin(), locks.end(), [](const LockType* t) { return t->kind == Kind::sysv_sem; })) {
      sysv_set = std::make_unique<oslab::SysvId>(oslab::SysvId::semaphores(1));
      (*set)->sysv_id = sysv_set->id();
    }
  }

  // ---- Uncontended: one thread, lock+unlock back to back ----
  void measure_uncontended(oslab::Report& report) {
    std::vector<std::function<void(int64_t)>> ops;
    for (const LockType* type : locks) {
      init_lock(**set, type->kind, false);
      ops.push_back(uncontended_op(*type));
    }
    oslab::SamplingPlan plan = lab.plan();
    plan.batch = 200;
    const std::vector<oslab::Measurement> measured = oslab::measure_interleaved(plan, ops);
    for (size_t i = 0; i < locks.size(); ++i) {
      uncontended[locks[i]->name] = measured[i];
      report.add("uncontended lock+unlock", {{"lock", locks[i]->name}}, measured[i],
                 {.what = fmt::format("{}: lock then unlock, one thread, nobody else; a sample is the mean of a "
                                      "batch of {}",
                                      locks[i]->what, plan.batch),
                  .headline = locks[i]->kind == Kind::mutex});
    }
    report.run_case("system calls of an uncontended lock+unlock", [&] {
      for (size_t i = 0; i < locks.size(); ++i) {
        constexpr int kCount = 1000;
        auto op = ops[i];
        const oslab::SyscallCounts counts = oslab::count_syscalls([&] { op(kCount); });
        uncontended_syscalls[locks[i]->name] = static_cast<double>(counts.total) / kCount;
        syscall_count_method = counts.method;
      }
    });
    for (const LockType* type : locks) destroy_lock(**set, type->kind);
  }

  std::function<void(int64_t)> uncontended_op(const LockType& type) {
    LockSet& s = **set;
    auto loop = [](auto lock, bool reader) {
      return [lock, reader](int64_t batch) mutable {
        for (int64_t i = 0; i < batch; ++i) {
          lock.acquire(0, reader);
          lock.release(0, reader);
        }
      };
    };
    switch (type.kind) {
      case Kind::mutex:
      case Kind::adaptive:
      case Kind::errorcheck: return loop(PthreadMutex{&s.mutex}, false);
      case Kind::std_mutex: return loop(StdMutex{&s.std_mutex}, false);
      case Kind::tas: return loop(Plain<oslab::sync::TasLock>{&s.tas}, false);
      case Kind::ttas: return loop(Plain<oslab::sync::TtasLock>{&s.ttas}, false);
      case Kind::ticket: return loop(Plain<oslab::sync::TicketLock>{&s.ticket}, false);
      case Kind::mcs: return loop(Mcs{&s.mcs, s.nodes}, false);
      case Kind::futex: return loop(Plain<oslab::sync::FutexMutex>{&s.futex}, false);
      case Kind::rw_reads: return loop(RwLock{&s.rwlock}, true);
      case Kind::rw_writes: return loop(RwLock{&s.rwlock}, false);
      case Kind::posix_sem: return loop(PosixSem{&s.sem}, false);
      case Kind::sysv_sem: return loop(SysvSem{s.sysv_id}, false);
    }
    throw std::logic_error("unknown lock");
  }

  // ---- Contended: N workers hammer one lock for the duration ----
  Round run_round(const Case& c, uint64_t seed, bool count_syscalls) {
    LockSet& s = **set;
    init_lock(s, c.type->kind, c.processes);
    s.guarded.counter = 0;
    s.guarded.overlaps = 0;
    // The counting pass is shorter: it only needs enough acquisitions for a rate.
    const RunSetup setup{count_syscalls ? std::clamp(duration_ms / 2, 1, 50) : duration_ms,
                         critical_work,
                         outside_work,
                         c.type->read_percent,
                         seed,
                         count_syscalls};
    for (int w = 0; w < c.workers; ++w) {
      WorkerReport& r = (*reports)[static_cast<size_t>(w)];
      r.acquisitions = r.reads = 0;
      r.counted = false;
      r.count_error[0] = '\0';
      r.buckets = 0;
    }
    std::vector<std::function<void(oslab::Party&)>> bodies;
    for (int w = 0; w < c.workers; ++w)
      bodies.emplace_back([&, w](oslab::Party& party) {
        run_worker(c.type->kind, s, setup, w, (*reports)[static_cast<size_t>(w)], party);
      });
    oslab::run_parties({.threads = !c.processes,
                        .assignment = oslab::assign_cpus(oslab::Placement::unpinned, bodies.size(), lab.options().cpus),
                        .deadline = std::chrono::milliseconds(duration_ms + 30'000)},
                       bodies);
    destroy_lock(s, c.type->kind);

    Round round;
    int64_t first_start = INT64_MAX, last_end = 0;
    for (int w = 0; w < c.workers; ++w) {
      const WorkerReport& r = (*reports)[static_cast<size_t>(w)];
      round.per_worker.push_back(r.acquisitions);
      round.acquisitions += r.acquisitions;
      round.writes += r.acquisitions - r.reads;
      round.cpu_s += static_cast<double>(r.cpu_ns) / 1e9;
      round.counters += r.counters;
      first_start = std::min(first_start, r.start_ns);
      last_end = std::max(last_end, r.end_ns);
      round.counted = r.counted;
      if (r.count_error[0] != '\0') round.count_error = r.count_error;
      round.syscalls += r.syscalls;
      round.futex_calls += r.futex_calls;
      round.semop_calls += r.semop_calls;
    }
    round.wall_s = static_cast<double>(last_end - first_start) / 1e9;
    round.throughput = static_cast<double>(round.acquisitions) / round.wall_s;
    round.fairness_cv = coefficient_of_variation(round.per_worker);
    return round;
  }

  void absorb(Case& c, const Round& round) {
    LockSet& s = **set;
    c.overlaps += s.guarded.overlaps.load();
    if (s.guarded.counter.load() != round.writes) c.lost_updates += round.writes - s.guarded.counter.load();
    for (int w = 0; w < c.workers; ++w) {
      const WorkerReport& r = (*reports)[static_cast<size_t>(w)];
      for (size_t b = 0; b < r.buckets; ++b)
        for (uint64_t k = 0; k < r.bucket_count[b]; ++k) c.waits.record(r.bucket_value[b]);
    }
  }

  void measure_contended(oslab::Report& report) {
    for (const std::string& mode : as)
      for (long workers : worker_counts)
        for (const LockType* type : locks) {
          const bool processes = mode == "processes";
          if (processes && !type->process_shared) continue;
          cases.push_back(Case{type, static_cast<int>(workers), processes, {}, {}, {}, 0, 0, {}});
        }
    for (const std::string& mode : as)
      if (mode == "processes")
        for (const LockType* type : locks)
          if (!type->process_shared)
            report.skip(fmt::format("{} between processes", type->name),
                        "std::mutex cannot be shared between processes (no process-shared attribute)");
    // Rounds in rotation: round 0 of every case, then round 1 of every case, ... so that a slow
    // spell of the machine falls on every lock alike.
    for (int r = 0; r < rounds; ++r)
      for (Case& c : cases) {
        if (!c.failure.empty()) continue;
        report.run_case(fmt::format("{} with {} {}", c.type->name, c.workers, c.as()), [&] {
          try {
            const Round round = run_round(c, lab.options().seed + static_cast<uint64_t>(r), false);
            absorb(c, round);
            c.rounds.push_back(round);
          } catch (...) {
            c.failure = "failed";
            throw;
          }
        });
      }
    for (Case& c : cases) {
      if (!c.failure.empty()) continue;
      report.run_case(fmt::format("system calls of {} with {} {}", c.type->name, c.workers, c.as()), [&] {
        c.counting = run_round(c, lab.options().seed, true);
        absorb(c, c.counting);
      });
    }
  }

  // ---- Results and tables ----
  static double per_acquisition(double total, uint64_t acquisitions) {
    return acquisitions ? total / static_cast<double>(acquisitions) : 0;
  }

  void add_results(oslab::Report& report) const {
    for (const Case& c : cases) {
      if (c.rounds.empty()) continue;
      std::vector<double> throughput, cv;
      oslab::Counters counters;
      uint64_t acquisitions = 0;
      double cpu_s = 0, wall_s = 0;
      for (const Round& round : c.rounds) {
        throughput.push_back(round.throughput);
        cv.push_back(round.fairness_cv);
        counters += round.counters;
        acquisitions += round.acquisitions;
        cpu_s += round.cpu_s;
        wall_s += round.wall_s;
      }
      std::map<std::string, double> extra = {
          {"voluntary_switches_per_acquisition", per_acquisition(counters.voluntary_switches, acquisitions)},
          {"involuntary_switches_per_acquisition", per_acquisition(counters.involuntary_switches, acquisitions)},
          {"cpus_busy", wall_s > 0 ? cpu_s / wall_s : 0},
          {"fairness_cv", oslab::summarize(cv).p50},
          {"overlaps", static_cast<double>(c.overlaps)},
          {"lost_updates", static_cast<double>(c.lost_updates)}};
      if (c.counting.counted) {
        extra["syscalls_per_acquisition"] =
            per_acquisition(static_cast<double>(c.counting.syscalls), c.counting.acquisitions);
        extra["futex_calls_per_acquisition"] =
            per_acquisition(static_cast<double>(c.counting.futex_calls), c.counting.acquisitions);
      }
      const bool headline = c.type->kind == Kind::mutex || c.type->kind == Kind::tas;
      report.add_samples(
          "contended throughput", c.params(), throughput,
          {.what = fmt::format("{}: {} {} lock, work {} units inside and {} outside, for {} ms; a "
                               "sample is one round's acquisitions per second, all workers together",
                               c.type->what, c.workers, c.as(), critical_work, outside_work, duration_ms),
           .unit = "acq/s",
           .counters = extra,
           .headline = headline && c.workers == worker_counts.back()});
      report.add_histogram("wait to acquire", c.params(), c.waits,
                           {.what = fmt::format("{}: from the call to lock until it returned, every acquisition of "
                                                "every worker in every round",
                                                c.type->what)});
    }
  }

  const Case* find_case(Kind kind, int workers, bool processes) const {
    for (const Case& c : cases)
      if (c.type->kind == kind && c.workers == workers && c.processes == processes && !c.rounds.empty()) return &c;
    return nullptr;
  }

  void tables(oslab::Report& report) const {
    const oslab::Measurement* mutex_uncontended = uncontended.count("mutex") ? &uncontended.at("mutex") : nullptr;
    oslab::Table uncontended_table{"Uncontended: lock + unlock, one thread",
                                   {"lock", "median", "vs mutex", "system calls"},
                                   {},
                                   fmt::format("median of batch means; system calls counted by the kernel ({}) over "
                                               "1000 lock+unlock pairs",
                                               syscall_count_method.empty() ? "not counted" : syscall_count_method)};
    for (const LockType* type : locks) {
      const oslab::Summary s =
          oslab::summarize_blocks(uncontended.at(type->name).samples_ns, uncontended.at(type->name).blocks);
      std::string ratio = "-";
      if (mutex_uncontended)
        ratio = fmt::format("{:.2f}x", s.p50 / oslab::summarize(mutex_uncontended->samples_ns).p50);
      auto calls = uncontended_syscalls.find(type->name);
      uncontended_table.rows.push_back(
          {type->name, oslab::format_duration(s.p50), ratio,
           calls == uncontended_syscalls.end() ? "-" : oslab::format_number(calls->second)});
    }
    report.table(uncontended_table);

    for (const std::string& mode : as) {
      oslab::Table t{fmt::format("Contended, as {}: {} ms per round, {} round(s); work {} units inside, {} outside",
                                 mode, duration_ms, rounds, critical_work, outside_work),
                     {"lock", "workers", "acq/s", "vs mutex", "fairness CV", "wait p50", "wait p99", "wait max",
                      "vol sw/acq", "invol sw/acq", "syscalls/acq", "CPUs busy"},
                     {},
                     "acq/s: median over rounds, all workers together. fairness CV: stddev/mean of the workers' "
                     "acquisitions (0 = even shares). wait: from calling lock to holding it. sw/acq: context switches "
                     "per acquisition (getrusage per thread); syscalls/acq: counted by the kernel in a separate pass; "
                     "CPUs busy: the workers' CPU time / wall time.",
                     2};
      for (long workers : worker_counts)
        for (const LockType* type : locks) {
          const Case* c = find_case(type->kind, static_cast<int>(workers), mode == "processes");
          if (!c) continue;
          std::vector<double> throughput, cv;
          oslab::Counters counters;
          uint64_t acquisitions = 0;
          double cpu_s = 0, wall_s = 0;
          for (const Round& round : c->rounds) {
            throughput.push_back(round.throughput);
            cv.push_back(round.fairness_cv);
            counters += round.counters;
            acquisitions += round.acquisitions;
            cpu_s += round.cpu_s;
            wall_s += round.wall_s;
          }
          const double median = oslab::summarize(throughput).p50;
          std::string ratio = "-";
          if (const Case* mutex = find_case(Kind::mutex, c->workers, c->processes)) {
            std::vector<double> mutex_throughput;
            for (const Round& round : mutex->rounds) mutex_throughput.push_back(round.throughput);
            ratio = fmt::format("{:.2f}x", median / oslab::summarize(mutex_throughput).p50);
          }
          const oslab::Summary waits = c->waits.summary();
          t.rows.push_back(
              {type->name, std::to_string(c->workers), oslab::format_number(median), ratio,
               workers > 1 ? fmt::format("{:.3f}", oslab::summarize(cv).p50) : "-", oslab::format_duration(waits.p50),
               oslab::format_duration(waits.p99), oslab::format_duration(waits.max),
               oslab::format_number(per_acquisition(counters.voluntary_switches, acquisitions)),
               oslab::format_number(per_acquisition(counters.involuntary_switches, acquisitions)),
               c->counting.counted ? oslab::format_number(per_acquisition(static_cast<double>(c->counting.syscalls),
                                                                          c->counting.acquisitions))
                                   : "-",
               oslab::format_number(wall_s > 0 ? cpu_s / wall_s : 0)});
        }
      if (!t.rows.empty()) report.table(t);
    }
  }

  // ---- Verdicts ----
  void verdicts(oslab::Report& report) const {
    mutual_exclusion(report);
    uncontended_syscall_fact(report);
    spinners_do_not_sleep(report);
    oversubscribed_stalls(report);
    sysv_costs_system_calls(report);
  }

  void mutual_exclusion(oslab::Report& report) const {
    uint64_t acquisitions = 0, overlaps = 0, lost = 0;
    size_t measured = 0;
    std::string bad;
    for (const Case& c : cases) {
      if (c.rounds.empty()) continue;
      ++measured;
      for (const Round& round : c.rounds) acquisitions += round.acquisitions;
      overlaps += c.overlaps;
      lost += c.lost_updates;
      if (c.overlaps || c.lost_updates)
        bad += fmt::format("; {} with {} {}: {} overlaps, {} lost updates", c.type->name, c.workers, c.as(), c.overlaps,
                           c.lost_updates);
    }
    if (measured == 0) return;
    report.fact("mutual-exclusion",
                "every lock admitted one writer at a time: no two holders overlapped and no update of the shared "
                "counter was lost",
                overlaps == 0 && lost == 0,
                fmt::format("{} cases, {} acquisitions: {} overlaps, {} lost updates{}", measured, acquisitions,
                            overlaps, lost, bad));
  }

  void uncontended_syscall_fact(oslab::Report& report) const {
    if (uncontended_syscalls.empty()) {
      report.skip("the system calls of an uncontended lock", "the kernel's count was not available here");
      return;
    }
    bool user_space = true, sysv_enters = true;
    std::string evidence;
    for (const LockType* type : locks) {
      const double calls = uncontended_syscalls.at(type->name);
      evidence += fmt::format("{}{} {}", evidence.empty() ? "" : ", ", type->name, oslab::format_number(calls));
      if (type->kind == Kind::sysv_sem)
        sysv_enters = calls >= 2;
      else
        user_space = user_space && calls < 0.01;
    }
    report.fact(
        "uncontended-stays-in-user-space",
        "uncontended, a futex-based lock (pthread mutex and rwlock, std::mutex, POSIX semaphore, the futex "
        "mutex) and a spinlock make no system call; a System V semaphore makes one per operation (semop)",
        user_space && sysv_enters,
        fmt::format("system calls per lock+unlock, counted by the kernel ({}): {}", syscall_count_method, evidence));
  }

  void spinners_do_not_sleep(oslab::Report& report) const {
    const bool processes = as.front() == "processes";
    // Voluntary switches, all rounds of all contended counts together: a spinner never makes one.
    auto sleeps = [&](Kind kind) {
      double voluntary = 0;
      uint64_t acquisitions = 0, futex_calls = 0;
      for (const Case& c : cases)
        if (c.type->kind == kind && c.processes == processes && c.workers >= 2) {
          for (const Round& round : c.rounds) {
            voluntary += round.counters.voluntary_switches;
            acquisitions += round.acquisitions;
          }
          futex_calls += c.counting.futex_calls;
        }
      return std::tuple{voluntary, acquisitions, futex_calls};
    };
    const auto [mutex_sleeps, mutex_acquisitions, mutex_futex] = sleeps(Kind::mutex);
    if (mutex_acquisitions == 0) return;  // no contended mutex case
    bool spinners_awake = true;
    std::string evidence;
    for (const LockType* type : locks) {
      if (!type->spins) continue;
      const auto [voluntary, acquisitions, futex_calls] = sleeps(type->kind);
      if (acquisitions == 0) continue;
      spinners_awake = spinners_awake && voluntary == 0;
      evidence += fmt::format("{} {} in {} acquisitions, ", type->name, voluntary, acquisitions);
    }
    evidence += fmt::format("mutex {} in {} acquisitions ({} futex calls in the counting pass)", mutex_sleeps,
                            mutex_acquisitions, mutex_futex);
    const oslab::VerdictState state = !spinners_awake    ? oslab::VerdictState::does_not_hold
                                      : mutex_sleeps > 0 ? oslab::VerdictState::holds
                                                         : oslab::VerdictState::inconclusive;
    report.verdict("spinners-never-sleep",
                   "a thread waiting for a spinlock never sleeps (no voluntary context switch: it burns its CPU); "
                   "a thread waiting for a contended mutex sleeps in the kernel",
                   state,
                   fmt::format("voluntary context switches of the workers ({}, 2 or more workers): {} (holds when no "
                               "spinlock worker ever switched voluntarily and the mutex's workers did; inconclusive "
                               "when the mutex was never contended enough to sleep)",
                               processes ? "processes" : "threads", evidence));
  }

  void oversubscribed_stalls(oslab::Report& report) const {
    const bool processes = as.front() == "processes";
    const int workers = static_cast<int>(worker_counts.back());
    const Case* fifo = find_case(Kind::ticket, workers, processes);
    if (fifo == nullptr) fifo = find_case(Kind::mcs, workers, processes);
    if (workers <= cpus || fifo == nullptr) {
      report.skip(
          "spinning with more workers than CPUs",
          fmt::format("needs the ticket or MCS lock at more workers than the {} CPU(s) this run may use", cpus));
      return;
    }
    const double max = fifo->waits.max();
    std::string evidence = fmt::format("{} workers on {} CPUs: the {} lock's longest wait was {}", workers, cpus,
                                       fifo->type->name, oslab::format_duration(max));
    for (Kind kind : {Kind::tas, Kind::ttas, Kind::mcs, Kind::mutex, Kind::futex})
      if (const Case* other = find_case(kind, workers, processes); other && other != fifo)
        evidence += fmt::format(", {}'s {}", other->type->name, oslab::format_duration(other->waits.max()));
    report.verdict("oversubscribed-spinning-stalls",
                   "with more spinning workers than CPUs, a FIFO spinlock stalls for a scheduler time slice "
                   "(milliseconds) whenever the holder or the next in line has been preempted",
                   oslab::Estimate{max, max, max}, oslab::Compare::above, 1e6, evidence, "ns");
  }

  void sysv_costs_system_calls(oslab::Report& report) const {
    if (!uncontended.count("sysv-sem") || !uncontended.count("futex")) return;
    const oslab::Summary sysv =
        oslab::summarize_blocks(uncontended.at("sysv-sem").samples_ns, uncontended.at("sysv-sem").blocks);
    const oslab::Summary futex =
        oslab::summarize_blocks(uncontended.at("futex").samples_ns, uncontended.at("futex").blocks);
    report.verdict("uncontended-syscall-dominates",
                   "uncontended, a lock that enters the kernel (System V semaphore) costs many times one that does "
                   "not (the futex mutex)",
                   oslab::ratio_of(sysv, futex), oslab::Compare::above, 5,
                   fmt::format("sysv-sem {} vs futex {} per lock+unlock", oslab::format_duration(sysv.p50),
                               oslab::format_duration(futex.p50)));
  }
};

std::vector<long> default_workers(size_t cpus) {
  std::vector<long> counts;
  for (long n = 1; n < static_cast<long>(cpus); n *= 2) counts.push_back(n);
  counts.push_back(static_cast<long>(cpus));
  counts.push_back(std::min<long>(4 * static_cast<long>(cpus), kMaxWorkers));
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "locks",
      .purpose = "the cost, fairness and tail latency of mutual exclusion: pthread locks, spinlocks, futex mutex, "
                 "semaphores",
      .claim = "The notes (pthreads API): mutexes protect shared data so that only one thread accesses it at a\n"
               "time; semaphores can do the same. What does that cost when nobody else wants the lock, and\n"
               "when several threads (or processes) fight over it? Is the lock fair? How long can a wait be?",
      .explain =
          "Each worker loops for --duration ms: take the lock, do --critical-work units of work on shared data,\n"
          "release it, do --outside-work units of its own (a unit is one multiply-add, about a nanosecond). The\n"
          "critical section increments a shared counter with a separate load and store, so two holders at once\n"
          "would lose an update, and checks that no other writer (or, for a reader, no writer) is inside: the\n"
          "lab verifies mutual exclusion on every run instead of assuming it.\n\n"
          "Uncontended, a futex-based lock (pthread mutex, rwlock, std::mutex, POSIX semaphore, Drepper's futex\n"
          "mutex) takes and releases the lock with one atomic instruction each and never enters the kernel; so\n"
          "does a spinlock. A System V semaphore is a system call (semop) per operation. The kernel's own count\n"
          "of system calls is shown beside each time.\n\n"
          "Contended, the locks part ways. A spinlock waits on the CPU: no sleep, no system call, no voluntary\n"
          "context switch, and all the CPU time it is given. Test-and-set keeps writing the lock's cache line\n"
          "while it spins; test-and-test-and-set reads it instead and backs off after losing a race; a ticket\n"
          "lock and an MCS lock serve waiters in arrival order (FIFO), MCS with each waiter spinning on its own\n"
          "cache line. A mutex spins briefly at most (adaptive) and then sleeps in the kernel (FUTEX_WAIT) until\n"
          "the holder wakes it (FUTEX_WAKE): system calls and voluntary switches, but the CPU is free for others.\n"
          "Drepper's futex mutex (\"Futexes Are Tricky\") is the three-state design the pthread mutex uses:\n"
          "0 free, 1 taken, 2 taken and maybe someone sleeps; only a waiter sleeps and only an unlock that sees\n"
          "2 wakes. locks.hpp explains it line by line.\n\n"
          "With more workers than CPUs, spinning goes wrong: the scheduler can preempt the holder, and every\n"
          "spinner then burns its time slice waiting for a thread that is not running. A FIFO spinlock is worse: the "
          "lock goes to the next in line even when that thread is not\n"
          "running, and everyone waits for it to be scheduled again. Look at the wait max column: milliseconds,\n"
          "a time slice, where the mutex's waits stay far shorter per hand-over. Fairness: the coefficient of\n"
          "variation of the workers' acquisition counts (0 = equal shares). A lock that lets the thread that just\n"
          "released it take it again at once (TAS, the mutex: the lock is already in its cache) can be unfair;\n"
          "FIFO locks are fair by construction.\n\n"
          "What is measured: uncontended, the mean of a batch of lock+unlock pairs, batches in rotation across\n"
          "the locks. Contended, every acquisition's wait (two clock reads, the second inside the lock) into a\n"
          "histogram, each worker's acquisitions, its context switches (getrusage RUSAGE_THREAD) and CPU time;\n"
          "system calls per acquisition come from a separate, shorter pass with the kernel's counter on (it\n"
          "slows system calls down). Rounds rotate over the locks so a busy spell of the machine hits them all.\n"
          "--as processes runs the workers as processes sharing the lock in shared memory (process-shared\n"
          "pthread attributes, a shared futex, an unnamed semaphore with pshared = 1).\n\n"
          "Questions: why does TAS do worse than TTAS as workers grow? Why is the ticket lock so fair, and so\n"
          "slow with more workers than CPUs? When is a spinlock the right choice (hint: the kernel uses them\n"
          "where the holder cannot be preempted)? What does the errorcheck mutex buy, and what does it cost?",
  });
  const std::vector<int> inherited = oslab::get_affinity();
  const std::vector<long> workers_default = default_workers(inherited.size());
  // --quick leaves out the single worker (the uncontended cost is measured on its own anyway).
  std::vector<long> workers_quick(workers_default.begin() + (workers_default.size() > 2 ? 1 : 0),
                                  workers_default.end());
  const auto& lock_choice = lab.choice_option("--locks", "Locks to measure, comma-separated", lock_names(),
                                              {.full = lock_names(), .quick = lock_names()});
  const auto& workers = lab.list_option("-n,--workers",
                                        "Worker counts, comma-separated (default: up to the CPUs, "
                                        "and 4x the CPUs)",
                                        {.full = workers_default, .quick = workers_quick}, 1, kMaxWorkers);
  const auto& as =
      lab.choice_option("--as", "Run the workers as threads, processes, or both (comma-separated)",
                        {"threads", "processes"}, {.full = {"threads", "processes"}, .quick = {"threads"}});
  const long& duration =
      lab.integer_option("--duration", "Milliseconds per contended round", {.full = 100, .quick = 15}, 1, 60'000);
  const long& rounds =
      lab.integer_option("--rounds", "Rounds of every contended case (in rotation)", {.full = 3, .quick = 1}, 1, 1000);
  const long& critical = lab.integer_option("--critical-work", "Work units inside the lock (about 1 ns each)",
                                            {.full = 50, .quick = 50}, 0, 1'000'000);
  const long& outside = lab.integer_option("--outside-work", "Work units between acquisitions (about 1 ns each)",
                                           {.full = 200, .quick = 200}, 0, 10'000'000);
  lab.sampling({.samples = {.full = 60, .quick = 20}, .budget_s = {.full = 0.1, .quick = 0.02}});

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    std::vector<const LockType*> locks;
    for (const std::string& name : lock_choice) locks.push_back(&lock_type(name));
    std::vector<long> counts = workers;
    const int cpus = static_cast<int>(lab.options().cpus.size());
    if (!lab.given("--workers") && lab.options().cpus_given) {
      counts = default_workers(lab.options().cpus.size());
      if (lab.quick() && counts.size() > 2) counts.erase(counts.begin());
    }
    std::sort(counts.begin(), counts.end());
    counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
    report.params["worker_counts"] = counts;
    experiment.emplace(Experiment{lab,
                                  locks,
                                  counts,
                                  as,
                                  static_cast<int>(duration),
                                  static_cast<int>(rounds),
                                  static_cast<int>(critical),
                                  static_cast<int>(outside),
                                  cpus,
                                  {},
                                  {},
                                  {},
                                  {},
                                  {},
                                  {},
                                  {},
                                  {}});
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->setup();
        experiment->measure_uncontended(report);
        experiment->measure_contended(report);
        experiment->add_results(report);
        experiment->tables(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
