// oslab-isolation: fault isolation, observed from a parent. A thread that dereferences NULL
// takes every thread of its process down; a child process that does the same leaves its parent
// running; a process that dies holding a process-shared mutex leaves it locked for everyone
// else (a waiter times out), unless the mutex is robust: then the next locker is told
// (EOWNERDEAD), repairs the state and marks it consistent.
//
// Try:     oslab-isolation
//          oslab-isolation --wait 1000          wait a whole second for the dead owner's lock
//          oslab-isolation --json | jq '.verdicts[] | {id, state}'
// Expect:  every outcome as Linux defines it: SIGSEGV kills the whole thread group; the parent
//          of a crashed child reaps it and carries on; the plain mutex times out; the robust one
//          answers EOWNERDEAD, then works again after pthread_mutex_consistent, and answers
//          ENOTRECOVERABLE for ever if the state is never marked consistent.
// Compare: oslab-clone-flags (what a thread shares), oslab-threads (what fork does to locks).

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/lab.hpp"
#include "oslab/locks.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace {

using namespace std::chrono_literals;
constexpr auto kDeadline = 10s;

// A crash that is a real SIGSEGV: no core file, and the default action even under a sanitizer
// (which would otherwise catch the signal, print a report and exit with a code instead).
void prepare_to_crash() noexcept {
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::prctl(PR_SET_DUMPABLE, 0);
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  ::sigaction(SIGSEGV, &action, nullptr);
}

[[gnu::noinline, gnu::no_sanitize("undefined", "address")]] void dereference_null() {
  volatile int* volatile null = nullptr;  // a volatile store: never optimised away
  *null = 42;                             // SIGSEGV
  _exit(99);                              // never reached
}

// What the children report, in shared memory.
struct Board {
  std::atomic<uint64_t> beats[3];         // heartbeats of the crashing process's other threads
  std::atomic<int> finished[3];           // set when a thread ends normally
  std::atomic<int> main_returned;         // the crashing process's main thread got past its joins
  std::atomic<int> crashed_child_signal;  // the process-crash parent's view of its child
  std::atomic<int> survivor_beats_after;  // the parent's heartbeats after its child crashed
  std::atomic<int> locked;                // the dying owner holds the mutex
  std::atomic<int> account_a, account_b;  // the state a robust mutex protects
};

// One observation: what Linux defines, what the parent saw.
struct Row {
  std::string scenario, linux_semantics, seen;
  bool matches;
};

struct Experiment {
  const oslab::Lab& lab;
  std::chrono::milliseconds wait;
  std::vector<Row> rows;

  void add(oslab::Report& report, const std::string& id, const std::string& claim, Row row) {
    report.fact(id, claim, row.matches, row.seen);
    rows.push_back(std::move(row));
  }

  // A process of three threads; one dereferences NULL after 50 ms while the two others beat.
  void thread_crash(oslab::Report& report) {
    oslab::Shared<Board> board;
    const int64_t started = oslab::now_ns();
    oslab::Child process = oslab::Child::fork([&] {
      prepare_to_crash();
      std::vector<std::thread> threads;
      for (int t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
          for (int i = 0; i < 2000; ++i) {  // 2 s of beating, unless the process dies first
            board->beats[t].fetch_add(1);
            std::this_thread::sleep_for(1ms);
          }
          board->finished[t] = 1;
        });
      threads.emplace_back([&] {
        std::this_thread::sleep_for(50ms);
        dereference_null();
      });
      for (auto& thread : threads) thread.join();
      board->main_returned = 1;
      return 0;
    });
    const oslab::ExitStatus status = process.wait(kDeadline);
    const double after_ms = static_cast<double>(oslab::now_ns() - started) / 1e6;
    const uint64_t beats[2] = {board->beats[0].load(), board->beats[1].load()};
    const bool finished = board->finished[0] || board->finished[1] || board->main_returned;
    // They were alive when the third thread crashed, and stopped short of their 2000 beats.
    const bool matches = !status.exited && status.signal == SIGSEGV && beats[0] > 0 && beats[1] > 0 &&
                         beats[0] < 2000 && beats[1] < 2000 && !finished;
    add(report, "thread-crash-kills-the-process", "a thread that dereferences NULL kills every thread of its process",
        {"a thread dereferences NULL", "SIGSEGV kills the whole process, every thread",
         fmt::format("the process was {} {:.0f} ms after it started; its two other threads had beaten {} and {} "
                     "times of their 2000; {}",
                     status.describe(), after_ms, beats[0], beats[1],
                     finished ? "some thread finished its work" : "no thread finished, the main thread never returned"),
         matches});
  }

  // A process whose child dereferences NULL: it reaps the child and carries on.
  void process_crash(oslab::Report& report) {
    oslab::Shared<Board> board;
    board->crashed_child_signal = -1;
    oslab::Child parent = oslab::Child::fork([&] {
      const pid_t child = ::fork();
      if (child == -1) return 1;
      if (child == 0) {
        prepare_to_crash();
        dereference_null();
      }
      const std::optional<oslab::ExitStatus> status = oslab::wait_for(child, kDeadline);
      if (!status) return 2;
      board->crashed_child_signal = status->exited ? 0 : status->signal;
      for (int i = 0; i < 20; ++i) {  // and lives on
        board->survivor_beats_after.fetch_add(1);
        std::this_thread::sleep_for(1ms);
      }
      return 0;
    });
    const oslab::ExitStatus status = parent.wait(kDeadline);
    const int child_signal = board->crashed_child_signal;
    const bool matches = status.success() && child_signal == SIGSEGV && board->survivor_beats_after == 20;
    add(report, "process-crash-is-isolated", "a child process that dereferences NULL leaves its parent running",
        {"a child process dereferences NULL", "SIGSEGV kills the child only; its parent reaps it and carries on",
         fmt::format("the parent saw its child {}, then beat {} more times and {}",
                     child_signal > 0 ? fmt::format("killed by SIG{}", ::sigabbrev_np(child_signal))
                                      : fmt::format("end otherwise ({})", child_signal),
                     board->survivor_beats_after.load(), status.describe()),
         matches});
  }

  // A process locks a process-shared mutex, moves 10 from account a to b halfway, and crashes.
  oslab::ExitStatus die_holding(oslab::SharedMutex& mutex, Board& board) {
    board.account_a = 100;
    board.account_b = 0;
    oslab::Child owner = oslab::Child::fork([&] {
      prepare_to_crash();
      if (mutex.lock_for(kDeadline) != oslab::LockOutcome::acquired) return 1;
      board.locked = 1;
      board.account_a -= 10;  // ... and the crash comes before account_b += 10
      dereference_null();
      return 0;
    });
    return owner.wait(kDeadline);
  }

  void dead_owner_plain(oslab::Report& report) {
    oslab::Shared<oslab::SharedMutex> mutex(oslab::SharedMutex::Kind::plain);
    oslab::Shared<Board> board;
    const oslab::ExitStatus owner = die_holding(*mutex, *board);
    const int64_t started = oslab::now_ns();
    const oslab::LockOutcome outcome = mutex->lock_for(wait);
    const double waited_ms = static_cast<double>(oslab::now_ns() - started) / 1e6;
    if (outcome == oslab::LockOutcome::acquired) mutex->unlock();
    add(report, "dead-owner-leaves-the-lock-held",
        "a process that dies holding a process-shared mutex leaves it locked: the next locker waits in vain",
        {"a process dies holding a plain process-shared mutex", "the mutex stays locked; a waiter times out",
         fmt::format("the owner was {} holding the lock; the parent's pthread_mutex_clocklock with a {} ms deadline "
                     "returned {} after {:.0f} ms",
                     owner.describe(), wait.count(), to_string(outcome), waited_ms),
         board->locked == 1 && !owner.exited && outcome == oslab::LockOutcome::timed_out});
  }

  void dead_owner_robust(oslab::Report& report) {
    oslab::Shared<oslab::SharedMutex> mutex(oslab::SharedMutex::Kind::robust);
    oslab::Shared<Board> board;
    const oslab::ExitStatus owner = die_holding(*mutex, *board);
    const oslab::LockOutcome first = mutex->lock_for(wait);
    const int a = board->account_a, b = board->account_b;
    oslab::LockOutcome again = oslab::LockOutcome::timed_out;
    if (first == oslab::LockOutcome::owner_died) {
      board->account_b = 100 - board->account_a;  // repair: the money that left a arrives in b
      mutex->make_consistent();
      mutex->unlock();
      again = mutex->lock_for(wait);
      if (again == oslab::LockOutcome::acquired || again == oslab::LockOutcome::owner_died) mutex->unlock();
    } else if (first == oslab::LockOutcome::acquired) {
      mutex->unlock();
    }
    add(report, "robust-mutex-reports-the-dead-owner",
        "with PTHREAD_MUTEX_ROBUST the next locker gets EOWNERDEAD and recovers with pthread_mutex_consistent",
        {"a process dies holding a robust mutex",
         "the next lock returns EOWNERDEAD (and the lock); after repair and pthread_mutex_consistent it works again",
         fmt::format("the owner was {}; the parent's lock returned {}, with the state half-updated (a = {}, b = {}); "
                     "it repaired b to {}, called pthread_mutex_consistent and unlocked; the next lock returned {}",
                     owner.describe(), to_string(first), a, b, board->account_b.load(), to_string(again)),
         !owner.exited && first == oslab::LockOutcome::owner_died && a == 90 && b == 0 &&
             again == oslab::LockOutcome::acquired});
  }

  void dead_owner_never_repaired(oslab::Report& report) {
    oslab::Shared<oslab::SharedMutex> mutex(oslab::SharedMutex::Kind::robust);
    oslab::Shared<Board> board;
    const oslab::ExitStatus owner = die_holding(*mutex, *board);
    const oslab::LockOutcome first = mutex->lock_for(wait);
    oslab::LockOutcome next = oslab::LockOutcome::timed_out;
    if (first == oslab::LockOutcome::owner_died || first == oslab::LockOutcome::acquired) {
      mutex->unlock();  // without pthread_mutex_consistent
      next = mutex->lock_for(wait);
      if (next == oslab::LockOutcome::acquired || next == oslab::LockOutcome::owner_died) mutex->unlock();
    }
    add(report, "unrepaired-robust-mutex-is-unusable",
        "a robust mutex unlocked after EOWNERDEAD without pthread_mutex_consistent can never be locked again",
        {"... and the next owner unlocks without repairing",
         "every later lock returns ENOTRECOVERABLE: the mutex must be destroyed and made again",
         fmt::format("the owner was {}; the parent's lock returned {}; it unlocked without "
                     "pthread_mutex_consistent; the next lock returned {}",
                     owner.describe(), to_string(first), to_string(next)),
         !owner.exited && first == oslab::LockOutcome::owner_died && next == oslab::LockOutcome::not_recoverable});
  }

  // What robustness costs when nothing dies: an uncontended lock and unlock, plain vs robust.
  void lock_costs(oslab::Report& report) const {
    oslab::Shared<oslab::SharedMutex> plain(oslab::SharedMutex::Kind::plain);
    oslab::Shared<oslab::SharedMutex> robust(oslab::SharedMutex::Kind::robust);
    auto lock_unlock = [](oslab::SharedMutex& mutex) {
      return [&mutex](int64_t batch) {
        pthread_mutex_t* native = mutex.native();
        for (int64_t i = 0; i < batch; ++i) {
          oslab::check_errnum("pthread_mutex_lock", ::pthread_mutex_lock(native));
          oslab::check_errnum("pthread_mutex_unlock", ::pthread_mutex_unlock(native));
        }
      };
    };
    oslab::SamplingPlan plan = lab.plan();
    plan.batch = 1000;
    std::function<void(int64_t)> ops[] = {lock_unlock(*plain), lock_unlock(*robust)};
    const auto measured = oslab::measure_interleaved(plan, ops);
    const char* kinds[] = {"plain", "robust"};
    for (int i = 0; i < 2; ++i)
      report.add("lock+unlock", {{"mutex", kinds[i]}, {"shared", "PTHREAD_PROCESS_SHARED"}}, measured[i],
                 {.what = fmt::format("pthread_mutex_lock + pthread_mutex_unlock of a {} process-shared mutex nobody "
                                      "else holds; one sample is the mean of a batch of 1000",
                                      kinds[i])});
  }

  void table(oslab::Report& report) const {
    oslab::Table table{"Fault isolation, observed by the parent", {"scenario", "Linux semantics", "observed"}, {}, ""};
    int differences = 0;
    for (const Row& row : rows) {
      table.rows.push_back({row.scenario, row.linux_semantics, std::string(row.matches ? "as defined" : "DIFFERENT")});
      differences += !row.matches;
    }
    table.footnote = differences == 0 ? "Every outcome is Linux's; the verdicts give what was seen."
                                      : fmt::format("{} outcome(s) differ: see the verdicts.", differences);
    report.table(table);
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "isolation",
      .purpose = "fault isolation: a crashing thread kills its process, a crashing child does not; dead lock owners",
      .claim = "The notes: 'no fault isolation between threads: if a thread crashes, it can bring down other\n"
               "threads; if a process crashes, other processes continue to execute... Caveat: a crashed\n"
               "process may fail to release synchronization locks'. Here each of these happens in a child,\n"
               "and the lab, its parent, looks at what is left.",
      .explain = "A thread is not a process. When a thread dereferences NULL the CPU faults, and the kernel\n"
                 "sends SIGSEGV to the thread; its default action ends the whole thread group, because the\n"
                 "threads share one address space and nothing in it can be trusted any more. The lab starts\n"
                 "a process with three threads: two beat a counter in shared memory every millisecond, the\n"
                 "third dereferences NULL after 50 ms. The lab sees the process killed by SIGSEGV and the\n"
                 "counters stop: the innocent threads died too. A child process that does the same dies\n"
                 "alone: its parent gets SIGCHLD, reaps it with waitpid, reads 'killed by SIGSEGV', and\n"
                 "carries on.\n\n"
                 "Processes are isolated in memory, but not in what they share on purpose. A mutex in\n"
                 "shared memory with PTHREAD_PROCESS_SHARED is just a word there (a futex); if its owner\n"
                 "dies, nobody unlocks it, and every later locker waits for ever: here with a deadline\n"
                 "(pthread_mutex_clocklock), which ends in ETIMEDOUT. A robust mutex (PTHREAD_MUTEX_ROBUST)\n"
                 "is on the owner's robust list, which the kernel walks when a thread dies: it marks the\n"
                 "word 'owner died' and wakes a waiter, whose lock succeeds with EOWNERDEAD. The state the\n"
                 "lock protects may be half-updated (here 10 left account a and never reached b): the new\n"
                 "owner repairs it, calls pthread_mutex_consistent, and unlocks. If it unlocks without\n"
                 "that, the mutex becomes unusable: every later lock returns ENOTRECOVERABLE.\n\n"
                 "The crashing children disable core dumps and restore SIGSEGV's default action (a\n"
                 "sanitizer would otherwise catch it). The lab also times an uncontended lock and unlock of\n"
                 "a plain and a robust process-shared mutex: what robustness costs when nothing dies.\n\n"
                 "Questions: why can the kernel not kill just the faulting thread? Who unlocks a robust\n"
                 "mutex when its owner dies, and how does the kernel know the owner held it? What else may\n"
                 "a crashed process leave behind (files half-written, temporary files, System V objects)?",
  });
  const long& wait_ms = lab.integer_option("--wait", "How long the parent waits for a dead owner's mutex, ms",
                                           {.full = 200, .quick = 100}, 1, 60'000);
  lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 0.2, .quick = 0.03}, .warmup = 2});

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) { experiment.emplace(Experiment{lab, std::chrono::milliseconds(wait_ms), {}}); };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        report.run_case("a thread dereferences NULL", [&] { experiment->thread_crash(report); });
        report.run_case("a child process dereferences NULL", [&] { experiment->process_crash(report); });
        report.run_case("a process dies holding a plain mutex", [&] { experiment->dead_owner_plain(report); });
        report.run_case("a process dies holding a robust mutex", [&] { experiment->dead_owner_robust(report); });
        report.run_case("a robust mutex nobody repairs", [&] { experiment->dead_owner_never_repaired(report); });
        experiment->lock_costs(report);
        experiment->table(report);
      },
      prepare);
}
