// oslab-prodcons: the bounded buffer, done right three ways and wrong four ways, with every
// item checked exactly once and the wrong ones caught failing under a forced schedule.
//
// Try:     oslab-prodcons                          every variant: throughput, forced schedules, random runs
//          oslab-prodcons --variant if,signal      two broken ones, and the same schedules on the right code
//          oslab-prodcons --variant cv,sem -n 1,2,4 --buffer 1,16,1024
//          oslab-prodcons --random-runs 50 --seed 1
// Expect:  cv (a mutex and two condition variables), sem (two counting semaphores and a mutex)
//          and spsc (a lock-free ring for one producer and one consumer) deliver every item
//          exactly once, at every thread count and buffer size, and faster with a bigger buffer.
//          Under its forced schedule each broken variant fails every time: `if` takes from an
//          empty buffer (and an item is lost), `signal` deadlocks with a producer asleep beside an
//          empty buffer, `no-mutex` overwrites an item, `wrong-order` deadlocks holding the mutex.
//          The same schedules on the right code deliver every item.
// Compare: oslab-condvar (why waits sit in a while loop), oslab-locks, oslab-patterns.

#include <pthread.h>
#include <semaphore.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "oslab/parties.hpp"
#include "oslab/placement.hpp"
#include "schedule.hpp"

namespace {

using oslab::check_errnum;
using oslab::sync::Ledger;
using oslab::sync::Schedule;
using oslab::sync::WaitBoard;

enum class Family { conditions, semaphores, ring };

struct Variant {
  const char* name;
  const char* what;
  bool broken;
  Family family;
  bool two_conditions = true;  // conditions: not_full and not_empty, or one for both
  bool recheck = true;         // conditions: wait in a while loop (true) or an if (false)
  bool uses_mutex = true;      // semaphores: a mutex around the buffer
  bool mutex_first = false;    // semaphores: the mutex taken before the counting semaphore
};

const std::vector<Variant> kVariants = {
    {"cv", "a mutex and two condition variables (not_full, not_empty); each wait in a while loop", false,
     Family::conditions},
    {"sem", "counting semaphores empty (starts at the buffer size) and full (at 0), then a mutex around the buffer",
     false, Family::semaphores},
    {"spsc", "a lock-free ring for one producer and one consumer (acquire/release atomics, no lock)", false,
     Family::ring},
    {"if", "one condition variable for both conditions, and each wait in an if instead of a while", true,
     Family::conditions, false, false},
    {"signal", "one condition variable for both conditions, woken with pthread_cond_signal (not broadcast)", true,
     Family::conditions, false, true},
    {"no-mutex", "the two counting semaphores without the mutex around the buffer", true, Family::semaphores, true,
     true, false, false},
    {"wrong-order", "the two counting semaphores and the mutex, but the mutex taken first", true, Family::semaphores,
     true, true, true, true},
};

const Variant& variant_named(const std::string& name) {
  for (const Variant& v : kVariants)
    if (name == v.name) return v;
  throw std::logic_error("unknown variant " + name);
}

std::vector<std::string> variant_names() {
  std::vector<std::string> names;
  for (const Variant& v : kVariants) names.emplace_back(v.name);
  return names;
}

constexpr uint64_t kPill = Ledger::kEmpty - 1;  // "no more items": one per consumer at the end
constexpr const char* kMutex = "mutex 'buffer'";

// The bounded buffer. Its fields are atomics used with relaxed loads and stores, each on its
// own, as plain variables would be: the program stays well defined in C++, and two threads
// in put() at once still lose an update as plain code would.
struct Buffer {
  explicit Buffer(size_t capacity) : slots(capacity) {
    for (auto& slot : slots) slot.store(Ledger::kEmpty);
  }
  std::vector<std::atomic<uint64_t>> slots;        // an empty slot holds Ledger::kEmpty
  std::atomic<size_t> fill{0}, use{0};             // the next slot to write, to read
  std::atomic<long> count{0};                      // items inside, as the code counts them
  alignas(64) std::atomic<uint64_t> ring_tail{0};  // spsc: written by the producer only
  alignas(64) std::atomic<uint64_t> ring_head{0};  // spsc: written by the consumer only
  size_t capacity() const { return slots.size(); }
};

// One run of one variant: the buffer, its locks, the threads' quotas, the schedule and the board.
struct Run {
  Run(const Variant& v, int producer_count, int consumer_count, size_t buffer_size, Ledger& items)
      : variant(v),
        producers(producer_count),
        consumers(consumer_count),
        buffer(buffer_size),
        ledger(items),
        board(names(producer_count, consumer_count)),
        producers_left(producer_count) {
    check_errnum("pthread_mutex_init", ::pthread_mutex_init(&mutex, nullptr));
    check_errnum("pthread_cond_init", ::pthread_cond_init(&not_full, nullptr));
    check_errnum("pthread_cond_init", ::pthread_cond_init(&not_empty, nullptr));
    oslab::check_errno("sem_init", ::sem_init(&empty, 0, static_cast<unsigned>(buffer_size)));
    oslab::check_errno("sem_init", ::sem_init(&full, 0, 0));
  }
  ~Run() {
    ::pthread_mutex_destroy(&mutex);
    ::pthread_cond_destroy(&not_full);
    ::pthread_cond_destroy(&not_empty);
    ::sem_destroy(&empty);
    ::sem_destroy(&full);
  }
  static std::vector<std::string> names(int p, int c) {
    std::vector<std::string> list;
    for (int i = 0; i < p; ++i) list.push_back(fmt::format("producer {}", i));
    for (int i = 0; i < c; ++i) list.push_back(fmt::format("consumer {}", i));
    return list;
  }

  const Variant& variant;
  int producers, consumers;
  Buffer buffer;
  Ledger& ledger;
  WaitBoard board;
  Schedule* schedule = nullptr;  // forced or random; none in a throughput run
  pthread_mutex_t mutex;
  pthread_cond_t not_full, not_empty;  // with one condition variable, not_full serves both
  sem_t empty, full;
  std::vector<long> produce_quota, consume_quota;  // per thread; -1: until the deadline (then pills)
  int64_t deadline_ns = 0;
  std::atomic<int> producers_left;

  void use(Schedule* s) {
    schedule = s;
    if (schedule) schedule->attach(&board);
  }
  void point(int me, const char* name) {
    if (schedule) schedule->point(me, name);
  }

  pthread_cond_t* room_condition() { return &not_full; }
  pthread_cond_t* item_condition() { return variant.two_conditions ? &not_empty : &not_full; }
  bool buffer_full() const {
    return buffer.count.load(std::memory_order_relaxed) >= static_cast<long>(buffer.capacity());
  }
  bool empty_buffer() const { return buffer.count.load(std::memory_order_relaxed) <= 0; }
  std::string state() const {
    return fmt::format("the buffer holds {} of {} (count {})", std::clamp<long>(buffer.count.load(), 0, 1L << 40),
                       buffer.capacity(), buffer.count.load());
  }

  // ---- Blocking calls, each announced on the board first ----
  void lock(int me) {
    board.waiting(me, kMutex, "to get into the buffer");
    check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(&mutex));
    board.running(me);
    board.holds(me, kMutex);
  }
  void unlock(int me) {
    board.releases(me, kMutex);
    check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(&mutex));
  }
  // Waits once. Returns false (with the mutex released) when the run was aborted.
  const char* room_name() const {
    return variant.two_conditions ? "condition variable 'not_full'" : "condition variable 'cond'";
  }
  const char* item_name() const {
    return variant.two_conditions ? "condition variable 'not_empty'" : "condition variable 'cond'";
  }
  bool wait(int me, pthread_cond_t* condition, const char* name, const char* why) {
    point(me, "before-wait");
    board.releases(me, kMutex);
    board.waiting(me, name, why);
    check_errnum("pthread_cond_wait", ::pthread_cond_wait(condition, &mutex));
    board.running(me);
    board.holds(me, kMutex);
    point(me, "after-wait");
    if (!board.aborted()) return true;
    unlock(me);
    return false;
  }
  bool sem_wait(int me, sem_t* sem, const char* name, const char* why) {
    board.waiting(me, name, why);
    while (::sem_wait(sem) == -1)
      if (errno != EINTR) throw oslab::SysError("sem_wait", errno);
    board.running(me);
    return !board.aborted();
  }
  void post(sem_t* sem) { oslab::check_errno("sem_post", ::sem_post(sem)); }

  // The deadlock watchdog's way to end a run: wake every sleeper, which then sees aborted().
  void unblock() {
    ::pthread_cond_broadcast(&not_full);
    ::pthread_cond_broadcast(&not_empty);
    for (int i = 0; i < producers + consumers; ++i) {
      ::sem_post(&empty);
      ::sem_post(&full);
    }
  }
};

// ---- The buffer itself ------------------------------------------------------------------------

void put(Run& r, int me, uint64_t id) {
  Buffer& b = r.buffer;
  const size_t at = b.fill.load(std::memory_order_relaxed);
  b.slots[at].store(id, std::memory_order_relaxed);
  r.point(me, "after-write");  // between writing the slot and moving on: where two producers collide
  b.fill.store((at + 1) % b.capacity(), std::memory_order_relaxed);
  b.count.store(b.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

uint64_t get(Run& r) {
  Buffer& b = r.buffer;
  const size_t at = b.use.load(std::memory_order_relaxed);
  const uint64_t id = b.slots[at].load(std::memory_order_relaxed);
  b.slots[at].store(Ledger::kEmpty, std::memory_order_relaxed);
  b.use.store((at + 1) % b.capacity(), std::memory_order_relaxed);
  b.count.store(b.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  return id;
}

// ---- (a) and the broken condition-variable variants ----------------------------------------

bool cv_put(Run& r, int me, uint64_t id) {
  r.point(me, "before-lock");
  r.lock(me);
  // The whole difference between right and wrong: after a wake-up, check again.
  if (r.variant.recheck) {
    while (r.buffer_full())
      if (!r.wait(me, r.room_condition(), r.room_name(), "waiting for room")) return false;
  } else if (r.buffer_full()) {
    if (!r.wait(me, r.room_condition(), r.room_name(), "waiting for room")) return false;
  }
  put(r, me, id);
  r.point(me, "before-signal");
  check_errnum("pthread_cond_signal", ::pthread_cond_signal(r.item_condition()));
  r.point(me, "before-unlock");
  r.unlock(me);
  return true;
}

bool cv_get(Run& r, int me, uint64_t& id) {
  r.point(me, "before-lock");
  r.lock(me);
  if (r.variant.recheck) {
    while (r.empty_buffer())
      if (!r.wait(me, r.item_condition(), r.item_name(), "waiting for an item")) return false;
  } else if (r.empty_buffer()) {
    if (!r.wait(me, r.item_condition(), r.item_name(), "waiting for an item")) return false;
  }
  id = get(r);
  r.point(me, "before-signal");
  check_errnum("pthread_cond_signal", ::pthread_cond_signal(r.room_condition()));
  r.point(me, "before-unlock");
  r.unlock(me);
  return true;
}

// ---- (b) and the broken semaphore variants ---------------------------------------------------

bool sem_put(Run& r, int me, uint64_t id) {
  r.point(me, "before-put");
  if (r.variant.mutex_first) {  // wrong: holds the mutex while it may sleep on 'empty'
    r.lock(me);
    if (!r.sem_wait(me, &r.empty, "semaphore 'empty'", "waiting for a free slot")) {
      r.unlock(me);
      return false;
    }
  } else {
    if (!r.sem_wait(me, &r.empty, "semaphore 'empty'", "waiting for a free slot")) return false;
    if (r.variant.uses_mutex) r.lock(me);
  }
  put(r, me, id);
  if (r.variant.uses_mutex) r.unlock(me);
  r.post(&r.full);
  return true;
}

bool sem_get(Run& r, int me, uint64_t& id) {
  r.point(me, "before-get");
  if (r.variant.mutex_first) {
    r.lock(me);
    if (!r.sem_wait(me, &r.full, "semaphore 'full'", "waiting for an item")) {
      r.unlock(me);
      return false;
    }
  } else {
    if (!r.sem_wait(me, &r.full, "semaphore 'full'", "waiting for an item")) return false;
    if (r.variant.uses_mutex) r.lock(me);
  }
  id = get(r);
  if (r.variant.uses_mutex) r.unlock(me);
  r.post(&r.empty);
  return true;
}

// ---- (c) the single-producer, single-consumer ring ---------------------------------------------

// The producer alone writes the tail, the consumer alone the head: no read-modify-write, no
// lock. The release store of the tail publishes the slot written before it; the consumer's
// acquire load of the tail makes that slot visible. Each side spins (yielding) while it cannot go on.
bool ring_put(Run& r, int, uint64_t id) {
  Buffer& b = r.buffer;
  const uint64_t tail = b.ring_tail.load(std::memory_order_relaxed);
  while (tail - b.ring_head.load(std::memory_order_acquire) == b.capacity()) {
    if (r.board.aborted()) return false;
    std::this_thread::yield();
  }
  b.slots[tail % b.capacity()].store(id, std::memory_order_relaxed);
  b.ring_tail.store(tail + 1, std::memory_order_release);
  return true;
}

bool ring_get(Run& r, int, uint64_t& id) {
  Buffer& b = r.buffer;
  const uint64_t head = b.ring_head.load(std::memory_order_relaxed);
  while (b.ring_tail.load(std::memory_order_acquire) == head) {
    if (r.board.aborted()) return false;
    std::this_thread::yield();
  }
  id = b.slots[head % b.capacity()].load(std::memory_order_relaxed);
  b.ring_head.store(head + 1, std::memory_order_release);
  return true;
}

bool put_item(Run& r, int me, uint64_t id) {
  switch (r.variant.family) {
    case Family::conditions: return cv_put(r, me, id);
    case Family::semaphores: return sem_put(r, me, id);
    case Family::ring: return ring_put(r, me, id);
  }
  return false;
}

bool get_item(Run& r, int me, uint64_t& id) {
  switch (r.variant.family) {
    case Family::conditions: return cv_get(r, me, id);
    case Family::semaphores: return sem_get(r, me, id);
    case Family::ring: return ring_get(r, me, id);
  }
  return false;
}

// ---- The threads -----------------------------------------------------------------------------

// Producer p makes ids p, p + P, p + 2P, ...: its quota of them, or as many as it can until the
// deadline (then the last producer to finish puts one pill per consumer).
void producer(Run& r, int me) {
  const long quota = r.produce_quota[static_cast<size_t>(me)];
  for (uint64_t k = 0;; ++k) {
    if (quota >= 0 ? static_cast<long>(k) >= quota : oslab::now_ns() >= r.deadline_ns) break;
    const uint64_t id = static_cast<uint64_t>(me) + k * static_cast<uint64_t>(r.producers);
    if (id >= r.ledger.capacity()) break;
    r.ledger.produced(id);
    if (!put_item(r, me, id)) return;
    r.board.progress();
  }
  if (quota < 0 && r.producers_left.fetch_sub(1) == 1)
    for (int c = 0; c < r.consumers; ++c)
      if (!put_item(r, me, kPill)) return;
}

void consumer(Run& r, int me) {
  const long quota = r.consume_quota[static_cast<size_t>(me - r.producers)];
  for (long taken = 0; quota < 0 || taken < quota; ++taken) {
    uint64_t id = 0;
    if (!get_item(r, me, id)) return;
    if (id == kPill && quota < 0) return;
    r.ledger.consumed(id);
    r.board.progress();
  }
}

struct Outcome {
  Ledger::Tally tally;
  std::string deadlock;  // who waited on what, when the run deadlocked
  std::string released;  // why the forced schedule could not be followed, if it could not
  double seconds = 0;
  bool ok() const { return deadlock.empty() && tally.exactly_once(); }
  std::string describe() const {
    std::string text = tally.describe();
    if (!deadlock.empty()) text += "; DEADLOCK: " + deadlock;
    if (!released.empty()) text += "; the forced order could not be followed (" + released + ")";
    return text;
  }
};

struct RunSpec {
  const Variant* variant;
  int producers, consumers;
  size_t buffer;
  long per_producer = -1, per_consumer = -1;  // quotas; -1 with a duration
  int duration_ms = 0;
  uint64_t seed = 0;
  bool perturb = false;  // a random run: the points yield and spin, seeded
};

// Every live thread asleep in the kernel in a declared wait, this long, with no item moving: a
// deadlock (a woken thread is runnable at once, so nothing short of a deadlock looks like this).
constexpr auto kQuiet = std::chrono::milliseconds(100);

using ScriptMaker = std::function<std::vector<Schedule::Step>(const void* mutex)>;

// One run: builds the buffer and its locks, then the script (which may name the mutex's
// address), starts the threads together, and checks every item.
Outcome run_once(const RunSpec& spec, const std::vector<int>& cpus, const ScriptMaker& make_script = {}) {
  // Ids to keep track of: the quotas, or as many as 200 million items a second could make.
  const size_t capacity = spec.per_producer >= 0 ? static_cast<size_t>(spec.per_producer * spec.producers) + 1
                                                 : static_cast<size_t>(spec.duration_ms) * 200'000 + 1024;
  Ledger ledger(capacity);
  Run run(*spec.variant, spec.producers, spec.consumers, spec.buffer, ledger);
  Schedule schedule(make_script ? make_script(&run.mutex) : std::vector<Schedule::Step>{}, spec.seed);
  run.use(make_script || spec.perturb ? &schedule : nullptr);
  run.produce_quota.assign(static_cast<size_t>(spec.producers), spec.per_producer);
  run.consume_quota.assign(static_cast<size_t>(spec.consumers), spec.per_consumer);
  std::vector<std::function<void(oslab::Party&)>> bodies;
  for (int t = 0; t < spec.producers + spec.consumers; ++t)
    bodies.emplace_back([&run, t](oslab::Party& party) {
      run.board.enroll(t);
      if (run.schedule) run.schedule->enroll(t);
      party.ready();
      if (t < run.producers)
        producer(run, t);
      else
        consumer(run, t);
      run.board.done(t);
    });
  run.board.watch(
      run.schedule, [&run] { return run.state(); }, [&run] { run.unblock(); }, kQuiet);
  const int64_t start = oslab::now_ns();
  // Producers stop at the deadline; the time to start the threads is not theirs to lose.
  run.deadline_ns = start + int64_t{spec.duration_ms} * 1'000'000;
  oslab::run_parties({.threads = true,
                      .assignment = oslab::assign_cpus(oslab::Placement::unpinned, bodies.size(), cpus),
                      .deadline = std::chrono::milliseconds(spec.duration_ms + 30'000)},
                     bodies);
  Outcome outcome;
  outcome.seconds = static_cast<double>(oslab::now_ns() - start) / 1e9;
  run.board.stop();
  outcome.tally = ledger.tally();
  outcome.deadlock = run.board.deadlock();
  if (run.schedule && run.schedule->released() && !run.board.deadlocked())
    outcome.released = run.schedule->released_why();
  return outcome;
}

// ---- The forced schedules of the broken variants --------------------------------------------

struct Scenario {
  const char* variant;
  const char* control;  // the right code the same schedule runs on
  const char* id;       // verdict id
  int producers, consumers;
  size_t buffer;
  long per_producer, per_consumer;
  const char* story;  // what the schedule makes happen
  ScriptMaker script;
};

// Thread numbers: producers first, then consumers.
std::vector<Scenario> scenarios() {
  return {
      {"if", "cv", "if-takes-from-empty-buffer", 1, 2, 1, 2, 1,
       "consumer 0 waits on the empty buffer; the producer puts an item and, while it still holds the mutex, "
       "consumer 1 queues for the mutex; the producer signals (consumer 0 wakes and queues behind consumer 1) and "
       "unlocks; consumer 1 takes the item, then consumer 0 returns from its wait to an empty buffer",
       [](const void* mutex) {
         const int p0 = 0, c0 = 1, c1 = 2;
         return std::vector<Schedule::Step>{{c0, "before-lock"},
                                            {c0, "before-wait"},
                                            {p0, "before-lock"},
                                            {p0, "after-write"},  // holding the mutex
                                            {c1, "before-lock"},
                                            {p0, "before-signal", {c1}, mutex},
                                            {p0, "before-unlock", {c0}, mutex},
                                            // The producer's second item only once consumer 0 has the
                                            // mutex back: it must not take the mutex again first.
                                            {c0, "after-wait"},
                                            {p0, "before-lock"}};
       }},
      {"signal", "cv", "signal-wakes-the-wrong-waiter", 2, 2, 1, 1, 1,
       "both consumers wait on the empty buffer; producer 0 puts an item while producer 1 queues for the mutex; "
       "producer 0 signals (a consumer wakes) and unlocks; producer 1 finds the buffer full and waits; the woken "
       "consumer takes the item and signals the one condition variable, which wakes the other consumer (waiting "
       "longer) instead of producer 1; that consumer finds nothing and waits: all asleep",
       [](const void* mutex) {
         const int p0 = 0, p1 = 1, c0 = 2, c1 = 3;
         return std::vector<Schedule::Step>{{c0, "before-lock"},
                                            {c0, "before-wait"},
                                            {c1, "before-lock"},
                                            {c1, "before-wait"},
                                            {p0, "before-lock"},
                                            {p0, "after-write"},  // holding the mutex
                                            {p1, "before-lock"},
                                            {p0, "before-signal", {p1}, mutex},
                                            {p0, "before-unlock", {c0, c1}, mutex}};
       }},
      {"no-mutex", "sem", "no-mutex-overwrites", 2, 1, 2, 1, 2,
       "producer 0 writes its item into slot 0 and is stopped before it moves the index; producer 1 writes into "
       "the same slot 0 and moves the index; producer 0 moves it again: one item overwritten, one slot never "
       "written",
       [](const void*) {
         const int p0 = 0, p1 = 1;
         return std::vector<Schedule::Step>{{p0, "before-put"},
                                            {p1, "before-put", {}, nullptr, p0, "after-write"},
                                            {p1, "after-write"},
                                            {p0, "after-write"}};
       }},
      {"wrong-order", "sem", "wrong-order-deadlocks", 1, 1, 1, 1, 1,
       "the consumer comes first: it takes the mutex and sleeps on 'full' still holding it; the producer then "
       "needs the mutex to put the item that would wake it",
       [](const void*) {
         const int p0 = 0, c0 = 1;
         return std::vector<Schedule::Step>{{c0, "before-get"}, {p0, "before-put", {c0}, nullptr}};
       }},
  };
}

// ---- The experiment ----------------------------------------------------------------------------

struct Throughput {
  const Variant* variant;
  int pairs;
  size_t buffer;
  std::vector<double> items_per_s;
  std::vector<Outcome> outcomes;
};

struct Forced {
  const Scenario* scenario;
  Outcome broken, control;
};

struct Experiment {
  const oslab::Lab& lab;
  std::vector<const Variant*> variants;
  std::vector<long> pairs;
  std::vector<long> buffers;
  int duration_ms, rounds, random_runs;
  long random_items;
  std::vector<Throughput> throughput;
  std::vector<Forced> forced;
  std::map<std::string, std::vector<Outcome>> random;
  std::vector<Scenario> all_scenarios = scenarios();

  bool selected(const char* name) const {
    return std::any_of(variants.begin(), variants.end(),
                       [&](const Variant* v) { return std::string(v->name) == name; });
  }

  void measure_throughput(oslab::Report& report) {
    for (const Variant* v : variants) {
      if (v->broken) continue;
      for (long n : pairs) {
        if (v->family == Family::ring && n != 1) continue;
        for (long b : buffers) throughput.push_back({v, static_cast<int>(n), static_cast<size_t>(b), {}, {}});
      }
    }
    for (int round = 0; round < rounds; ++round)
      for (Throughput& t : throughput)
        report.run_case(
            fmt::format("{} with {} producer(s) and consumer(s), buffer {}", t.variant->name, t.pairs, t.buffer), [&] {
              RunSpec spec{t.variant, t.pairs, t.pairs, t.buffer, -1, -1, duration_ms, 0, false};
              const Outcome outcome = run_once(spec, lab.options().cpus);
              t.outcomes.push_back(outcome);
              t.items_per_s.push_back(static_cast<double>(outcome.tally.consumed) / outcome.seconds);
            });
    for (const Throughput& t : throughput) {
      if (t.items_per_s.empty()) continue;
      report.add_samples(
          "throughput",
          {{"variant", t.variant->name}, {"producers", t.pairs}, {"consumers", t.pairs}, {"buffer", t.buffer}},
          t.items_per_s,
          {.what = fmt::format("{}: {} producer(s) and {} consumer(s) for {} ms; a sample is one run's items per "
                               "second, every item checked exactly once",
                               t.variant->what, t.pairs, t.pairs, duration_ms),
           .unit = "items/s",
           .headline = t.variant->family == Family::conditions && t.pairs == 1});
    }
  }

  void run_forced(oslab::Report& report) {
    const std::string unavailable = oslab::sync::futex_observation_unavailable();
    for (const Scenario& s : all_scenarios) {
      if (!selected(s.variant)) continue;
      report.run_case(fmt::format("forced schedule of '{}'", s.variant), [&] {
        if (!unavailable.empty() && (std::string(s.variant) == "if" || std::string(s.variant) == "signal"))
          throw oslab::SkipError("the schedule watches threads sleep on the mutex, but " + unavailable);
        auto spec_for = [&](const char* name) {
          return RunSpec{&variant_named(name), s.producers, s.consumers,        s.buffer, s.per_producer,
                         s.per_consumer,       0,           lab.options().seed, false};
        };
        Forced f{&s, run_once(spec_for(s.variant), lab.options().cpus, s.script),
                 run_once(spec_for(s.control), lab.options().cpus, s.script)};
        forced.push_back(f);
      });
    }
  }

  void run_random(oslab::Report& report) {
    for (const Variant* v : variants) {
      report.run_case(fmt::format("random runs of '{}'", v->name), [&] {
        const bool ring = v->family == Family::ring;
        const int producers = ring ? 1 : 2, consumers = ring ? 1 : 2;
        for (int i = 0; i < random_runs; ++i) {
          RunSpec spec{v,
                       producers,
                       consumers,
                       v->family == Family::semaphores ? size_t{2} : size_t{1},
                       random_items,
                       random_items * producers / consumers,
                       0,
                       lab.options().seed + static_cast<uint64_t>(i),
                       true};
          random[v->name].push_back(run_once(spec, lab.options().cpus));
        }
      });
    }
  }

  void tables_and_verdicts(oslab::Report& report) const {
    throughput_table(report);
    forced_table_and_facts(report);
    random_table(report);
    exactly_once_fact(report);
    buffer_verdict(report);
  }

  void throughput_table(oslab::Report& report) const {
    oslab::Table t{fmt::format("The right ones: throughput ({} ms per run, median of {} run(s))", duration_ms, rounds),
                   {"variant", "producers", "consumers", "buffer", "items/s", "every item exactly once"},
                   {},
                   "items/s: items taken out per second, all consumers together."};
    for (const Throughput& th : throughput) {
      if (th.items_per_s.empty()) continue;
      bool ok = true;
      for (const Outcome& o : th.outcomes) ok = ok && o.ok();
      t.rows.push_back({th.variant->name, std::to_string(th.pairs), std::to_string(th.pairs), std::to_string(th.buffer),
                        oslab::format_number(oslab::summarize(th.items_per_s).p50), ok ? "yes" : "NO"});
    }
    if (!t.rows.empty()) report.table(t);
  }

  void forced_table_and_facts(oslab::Report& report) const {
    oslab::Table t{"The broken ones under their forced schedule, and the same schedule on the right code",
                   {"variant", "what the lab saw", "same schedule on", "what the lab saw there"},
                   {},
                   "A forced schedule: the threads pass a token at the marked points in a fixed order (and wait "
                   "until a named thread sleeps on the mutex where the order depends on it), so this happens on "
                   "every run, on any machine."};
    for (const Forced& f : forced) {
      auto summary = [](const Outcome& o) {
        if (!o.deadlock.empty()) return std::string("deadlock");
        std::string text;
        if (o.tally.lost) text += fmt::format("{} lost ", o.tally.lost);
        if (o.tally.duplicated) text += fmt::format("{} duplicated ", o.tally.duplicated);
        if (o.tally.empty_slots) text += fmt::format("{} empty slot taken ", o.tally.empty_slots);
        return text.empty() ? std::string("every item exactly once") : text;
      };
      t.rows.push_back({f.scenario->variant, summary(f.broken), f.scenario->control, summary(f.control)});
      const Variant& v = variant_named(f.scenario->variant);
      report.fact(f.scenario->id,
                  fmt::format("'{}' ({}) fails under its forced schedule, and the same schedule on '{}' does not",
                              v.name, v.what, f.scenario->control),
                  !f.broken.ok() && f.control.ok(),
                  fmt::format("the schedule: {}. '{}': {}. '{}': {}", f.scenario->story, v.name, f.broken.describe(),
                              f.scenario->control, f.control.describe()));
    }
    if (!t.rows.empty()) report.table(t);
  }

  void random_table(oslab::Report& report) const {
    oslab::Table t{fmt::format("Random runs: 2 producers and 2 consumers (spsc: 1 and 1), {} items each, random "
                               "yields and spins at the marked points (--seed)",
                               random_items),
                   {"variant", "runs", "failed", "first failure"},
                   {},
                   "A random run may or may not hit the bad interleaving: only the forced schedule fails every "
                   "time.",
                   4};
    for (const Variant* v : variants) {
      auto it = random.find(v->name);
      if (it == random.end()) continue;
      int failed = 0;
      std::string first;
      for (const Outcome& o : it->second)
        if (!o.ok()) {
          if (failed++ == 0) first = o.describe();
        }
      t.rows.push_back({v->name, std::to_string(it->second.size()), std::to_string(failed), first.substr(0, 160)});
    }
    if (!t.rows.empty()) report.table(t);
  }

  void exactly_once_fact(oslab::Report& report) const {
    uint64_t runs = 0, items = 0;
    std::string bad;
    for (const Throughput& th : throughput)
      for (const Outcome& o : th.outcomes) {
        ++runs;
        items += o.tally.consumed;
        if (!o.ok())
          bad +=
              fmt::format("; {} ({}x{}, buffer {}): {}", th.variant->name, th.pairs, th.pairs, th.buffer, o.describe());
      }
    for (const Variant* v : variants) {
      if (v->broken || !random.count(v->name)) continue;
      for (const Outcome& o : random.at(v->name)) {
        ++runs;
        items += o.tally.consumed;
        if (!o.ok()) bad += fmt::format("; {} random run: {}", v->name, o.describe());
      }
    }
    if (runs == 0) return;
    report.fact("right-ones-exactly-once",
                "the right variants (cv, sem, spsc) deliver every item exactly once, at every thread count and "
                "buffer size, with and without random perturbation",
                bad.empty(), fmt::format("{} runs, {} items checked{}", runs, items, bad));
  }

  void buffer_verdict(oslab::Report& report) const {
    if (buffers.size() < 2) return;
    const Throughput *small = nullptr, *large = nullptr;
    for (const Throughput& th : throughput)
      if (th.variant->family == Family::conditions && th.pairs == 1 && !th.items_per_s.empty()) {
        if (th.buffer == static_cast<size_t>(buffers.front())) small = &th;
        if (th.buffer == static_cast<size_t>(buffers.back())) large = &th;
      }
    if (!small || !large) return;
    const oslab::Summary s = oslab::summarize(small->items_per_s), l = oslab::summarize(large->items_per_s);
    report.verdict("bigger-buffer-faster",
                   "a bigger buffer lets the producer run ahead, so fewer items need a sleep and a wake-up: "
                   "throughput grows with the buffer",
                   oslab::ratio_of(l, s), oslab::Compare::above, 1.5,
                   fmt::format("cv, one producer and one consumer: buffer {} {} items/s, buffer {} {} items/s",
                               small->buffer, oslab::format_number(s.p50), large->buffer, oslab::format_number(l.p50)));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "prodcons",
      .purpose = "the bounded buffer: three right ways, four classic wrong ones caught in the act, every item checked",
      .claim = "The notes: producer/consumer is the first of the thread patterns: some threads produce, some\n"
               "consume, through a buffer. Done with a mutex and condition variables, or with semaphores, it is\n"
               "correct; done slightly differently, it loses items, takes them twice, or hangs.",
      .explain =
          "Producers put numbered items into a bounded buffer of --buffer slots; consumers take them out. Every\n"
          "item has an id and the lab checks, for every run, that each id came out exactly once: a lost item,\n"
          "a duplicate or an empty slot taken is counted, not guessed. A deadlock watchdog notices when every\n"
          "thread has slept in the kernel for 100 ms with no item moving, says who waits on what (and who holds\n"
          "the mutex), and wakes everyone so that the run ends instead of hanging.\n\n"
          "The right ones: cv, a mutex and two condition variables (not_full, not_empty), each wait in a while\n"
          "loop; sem, a semaphore 'empty' counting free slots, one 'full' counting items, and a mutex around the\n"
          "buffer itself, taken after the counting semaphore; spsc, for exactly one producer and one consumer, a\n"
          "ring where each side writes only its own index (release) and reads the other's (acquire): no lock.\n\n"
          "The wrong ones (OSTEP chapters 30 and 31 walk through each):\n"
          "  if           one condition variable, and a wait in an if. A consumer woken for an item can find it\n"
          "               gone: another consumer took it between the signal and the moment the woken one got\n"
          "               the mutex back. It takes from an empty buffer.\n"
          "  signal       one condition variable for both conditions, while loops, pthread_cond_signal. A\n"
          "               consumer's signal, meant for a producer, can wake another consumer: it finds nothing\n"
          "               and sleeps again, and so does everyone. The fix is two condition variables (or\n"
          "               broadcast).\n"
          "  no-mutex     the semaphores alone: two producers can write the same slot.\n"
          "  wrong-order  the mutex taken before the counting semaphore: a consumer sleeps on 'full' holding the\n"
          "               mutex that the producer needs to fill it.\n\n"
          "A random run may or may not hit the bad interleaving. So each broken variant also runs under a forced\n"
          "schedule: the threads pass a token at marked points (before-lock, before-wait, before-signal,\n"
          "before-unlock, after-write, ...) in a fixed order, and where the order depends on who gets the mutex\n"
          "first, a thread waits until another is asleep on the mutex in the kernel (read from\n"
          "/proc/self/task/TID/syscall). The Linux kernel wakes futex waiters of equal priority in the order they\n"
          "slept, and glibc gives a condition variable's signal to the waiters that have waited longest; with\n"
          "both, the failing interleaving happens every time, on any machine, loaded or not. The same schedule\n"
          "then runs on the right code (the 'control'): it delivers every item, and where the right code makes\n"
          "the scripted order impossible (the mutex keeps the second producer out of put), the lab says so.\n\n"
          "Throughput: items per second for the right ones, for -n producer/consumer pairs and each --buffer\n"
          "size. A buffer of 1 forces a hand-off (often a sleep and a wake-up) per item; a bigger one lets each\n"
          "side run ahead.\n\n"
          "Questions: why does the if variant need two consumers to fail? Why does broadcast fix the signal\n"
          "variant, and what does it cost? Why is the order of sem_wait(empty) and the mutex not symmetric with\n"
          "the order of the posts? Why can spsc not take a second producer?",
  });
  const size_t cpus = oslab::get_affinity().size();
  const auto& variant_choice = lab.choice_option("--variant", "Variants, comma-separated", variant_names(),
                                                 {.full = variant_names(), .quick = variant_names()});
  const auto& pairs =
      lab.list_option("-n,--workers", "Producer/consumer pairs for the throughput runs",
                      {.full = {1, static_cast<long>(std::max<size_t>(cpus, 2))}, .quick = {1, 2}}, 1, 16);
  const auto& buffers = lab.list_option("--buffer", "Buffer sizes (slots) for the throughput runs",
                                        {.full = {1, 16, 256}, .quick = {1, 64}}, 1, 1 << 20);
  const long& duration =
      lab.integer_option("--duration", "Milliseconds per throughput run", {.full = 100, .quick = 25}, 1, 60'000);
  const long& rounds = lab.integer_option("--rounds", "Throughput runs per case", {.full = 3, .quick = 3}, 1, 100);
  const long& random_runs =
      lab.integer_option("--random-runs", "Random runs of every variant", {.full = 5, .quick = 2}, 0, 10'000);
  const long& random_items = lab.integer_option("--random-items", "Items per producer in a random run",
                                                {.full = 1000, .quick = 200}, 1, 1'000'000);
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    std::vector<const Variant*> chosen;
    for (const std::string& name : variant_choice) chosen.push_back(&variant_named(name));
    std::vector<long> sorted_buffers = buffers;
    std::sort(sorted_buffers.begin(), sorted_buffers.end());
    experiment.emplace(Experiment{lab,
                                  chosen,
                                  pairs,
                                  sorted_buffers,
                                  static_cast<int>(duration),
                                  static_cast<int>(rounds),
                                  static_cast<int>(random_runs),
                                  random_items,
                                  {},
                                  {},
                                  {},
                                  scenarios()});
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->run_forced(report);
        experiment->measure_throughput(report);
        experiment->run_random(report);
        experiment->tables_and_verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
