// oslab-semaphores: the three kinds of semaphore side by side. POSIX unnamed (a sem_t in
// memory the processes share), POSIX named (sem_open: reachable by name from any process,
// until unlinked), System V (semget/semop: kernel objects with an id, and SEM_UNDO). What each
// costs, how another process reaches it, and what happens when a holder dies.
//
// Try:     oslab-semaphores
//          oslab-semaphores --json | jq '.verdicts[] | {id, holds}'
// Expect:  a POSIX semaphore's wait+post stays in user space when nobody waits; a System V one
//          is two system calls. Another program opens a named semaphore by its name, until it is
//          unlinked. Kill a holder: a System V semaphore taken with SEM_UNDO comes back (the
//          kernel undoes the holder's operations at exit), without SEM_UNDO or as a POSIX
//          semaphore it stays taken for good; a robust mutex tells the next owner (EOWNERDEAD).
// Compare: oslab-locks (semaphores used as locks, contended), oslab-condvar (as a hand-off).

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <unistd.h>

#include <optional>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/ipc.hpp"
#include "oslab/lab.hpp"
#include "oslab/measure.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"
#include "oslab/syscalls.hpp"

namespace {

using oslab::check_errno;
using oslab::check_errnum;

constexpr auto kDeadline = std::chrono::seconds(10);

// A named POSIX semaphore, created O_EXCL and 0600 under a unique name, removed by SIGINT/SIGTERM
// clean-up (PosixName) and, should the lab be SIGKILLed, by the guardian, until it is unlinked.
struct NamedSemaphore {
  // PosixName registers the name (with the SIGINT/SIGTERM clean-up and with the guardian)
  // before sem_open creates it: a kill in between leaves nothing to remove.
  explicit NamedSemaphore(unsigned value) : name(oslab::PosixName::Type::sem, oslab::unique_ipc_name("semaphores")) {
    sem = ::sem_open(name.name().c_str(), O_CREAT | O_EXCL, 0600, value);
    if (sem == SEM_FAILED) throw oslab::SysError("sem_open " + name.name(), errno);
  }
  ~NamedSemaphore() {
    if (sem != SEM_FAILED) ::sem_close(sem);
  }
  oslab::PosixName name;
  sem_t* sem = SEM_FAILED;
};

// Runs the helper with `args`; its stdout comes back through a pipe.
struct Helper {
  oslab::Child child;
  oslab::UniqueFd out;
  static Helper start(std::vector<std::string> args, int inherit_fd = -1) {
    const std::string path = oslab::helper_path("oslab-sem-helper");
    args.insert(args.begin(), path);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    oslab::Pipe pipe = oslab::Pipe::create();
    const int write_end = pipe.write_end.get();
    oslab::Child child = oslab::Child::fork([&]() -> int {
      if (::dup2(write_end, STDOUT_FILENO) == -1) oslab::child_fail("dup2", errno);
      if (inherit_fd >= 0) {
        const int flags = ::fcntl(inherit_fd, F_GETFD);
        ::fcntl(inherit_fd, F_SETFD, flags & ~FD_CLOEXEC);
      }
      ::execv(argv[0], argv.data());
      oslab::child_fail("execv oslab-sem-helper", errno);
    });
    pipe.write_end.reset();
    return Helper{std::move(child), std::move(pipe.read_end)};
  }
  // Waits for the helper's "held" line.
  void wait_until_held() {
    char line[8] = {};
    const ssize_t n = check_errno("read(helper)", ::read(out.get(), line, sizeof line - 1));
    if (n <= 0 || std::string(line, static_cast<size_t>(n)) != "held\n")
      throw std::runtime_error("the helper did not take the semaphore (see its message above)");
  }
  // SIGKILL: no handler, no atexit, no chance to give anything back.
  void kill() {
    ::kill(child.pid(), SIGKILL);
    const oslab::ExitStatus status = child.wait(kDeadline);
    if (status.exited || status.signal != SIGKILL)
      throw std::runtime_error("the helper ended by itself: " + status.describe());
  }
};

int sysv_value(int id) {
  return check_errno("semctl(GETVAL)", ::semctl(id, 0, GETVAL));
}

int posix_value(sem_t* sem) {
  int value = 0;
  check_errno("sem_getvalue", ::sem_getvalue(sem, &value));
  return value;
}

struct Experiment {
  const oslab::Lab& lab;

  // ---- Named: reachable by name, until unlinked ----
  void named(oslab::Report& report) {
    report.run_case("a named semaphore reached by name", [&] {
      NamedSemaphore named_sem(0);
      Helper helper = Helper::start({"open-post", named_sem.name.name()});
      helper.child.wait_success(kDeadline, "oslab-sem-helper open-post");
      const bool posted = ::sem_trywait(named_sem.sem) == 0;
      named_sem.name.unlink();  // both sides have had it: the name goes now
      const bool name_gone = ::sem_open(named_sem.name.name().c_str(), 0) == SEM_FAILED && errno == ENOENT;
      check_errno("sem_post", ::sem_post(named_sem.sem));
      const bool handle_works = posix_value(named_sem.sem) == 1;
      report.fact("named-reached-by-name",
                  "a named POSIX semaphore is reached by its name from another program; once unlinked the name is "
                  "gone, while the processes that opened it keep using it",
                  posted && name_gone && handle_works,
                  fmt::format("another program (oslab-sem-helper) did sem_open(\"{}\") and sem_post: the lab's "
                              "sem_trywait {}; after sem_unlink, sem_open of the name {}; the lab's own handle {}",
                              named_sem.name.name(), posted ? "succeeded" : "FAILED",
                              name_gone ? "fails with ENOENT" : "STILL WORKS",
                              handle_works ? "still posts and reads 1" : "FAILED"));
    });
  }

  // ---- A holder dies: who gives the semaphore back? ----
  void holder_dies(oslab::Report& report) {
    report.run_case("a System V holder killed, with and without SEM_UNDO", [&] {
      oslab::SysvId set = oslab::SysvId::semaphores(1);
      int before[2] = {}, after[2] = {};
      for (int undo = 1; undo >= 0; --undo) {
        check_errno("semctl(SETVAL)", ::semctl(set.id(), 0, SETVAL, 1));
        Helper helper = Helper::start({"hold-sysv", std::to_string(set.id()), std::to_string(undo)});
        helper.wait_until_held();
        before[undo] = sysv_value(set.id());
        helper.kill();
        after[undo] = sysv_value(set.id());
      }
      report.fact("sem-undo-releases-on-death",
                  "a System V semaphore taken with SEM_UNDO is given back by the kernel when its holder dies, even "
                  "by SIGKILL",
                  before[1] == 0 && after[1] == 1,
                  fmt::format("value 1; the helper took it with SEM_UNDO (value {}), was SIGKILLed: value {}",
                              before[1], after[1]));
      report.fact("no-undo-stays-taken",
                  "without SEM_UNDO the kernel gives nothing back: a holder's death leaves the semaphore taken for "
                  "good",
                  before[0] == 0 && after[0] == 0,
                  fmt::format("value 1; the helper took it without SEM_UNDO (value {}), was SIGKILLed: value {}",
                              before[0], after[0]));
    });
    report.run_case("a POSIX holder killed", [&] {
      NamedSemaphore named_sem(1);
      Helper helper = Helper::start({"hold-posix", named_sem.name.name()});
      helper.wait_until_held();
      named_sem.name.unlink();
      const int held = posix_value(named_sem.sem);
      helper.kill();
      const int after = posix_value(named_sem.sem);
      report.fact("posix-not-released-on-death", "a POSIX semaphore has no undo: when its holder dies it stays taken",
                  held == 0 && after == 0,
                  fmt::format("value 1; another program took it (value {}), was SIGKILLed: value {}", held, after));
    });
    report.run_case("a robust mutex's holder killed", [&] {
      oslab::UniqueFd memfd(check_errno("memfd_create", ::memfd_create("oslab-semaphores", MFD_CLOEXEC)));
      check_errno("ftruncate", ::ftruncate(memfd.get(), static_cast<off_t>(oslab::page_size())));
      void* page = oslab::check_errno_ptr(
          "mmap", ::mmap(nullptr, oslab::page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0), MAP_FAILED);
      auto* mutex = static_cast<pthread_mutex_t*>(page);
      pthread_mutexattr_t attr;
      check_errnum("pthread_mutexattr_init", ::pthread_mutexattr_init(&attr));
      check_errnum("pthread_mutexattr_setpshared", ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED));
      check_errnum("pthread_mutexattr_setrobust", ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST));
      check_errnum("pthread_mutex_init", ::pthread_mutex_init(mutex, &attr));
      ::pthread_mutexattr_destroy(&attr);
      Helper helper = Helper::start({"hold-robust", std::to_string(memfd.get())}, memfd.get());
      helper.wait_until_held();
      const int busy = ::pthread_mutex_trylock(mutex);
      helper.kill();
      const int rc = ::pthread_mutex_lock(mutex);
      bool consistent = false;
      if (rc == EOWNERDEAD) {
        consistent = ::pthread_mutex_consistent(mutex) == 0;
        ::pthread_mutex_unlock(mutex);
      } else if (rc == 0) {
        ::pthread_mutex_unlock(mutex);
      }
      ::pthread_mutex_destroy(mutex);
      ::munmap(page, oslab::page_size());
      report.fact("robust-mutex-reports-dead-owner",
                  "a robust mutex is different: the next locker gets it with EOWNERDEAD (the kernel walks the dead "
                  "thread's robust list), repairs the data and marks it consistent",
                  busy == EBUSY && rc == EOWNERDEAD && consistent,
                  fmt::format("while the helper held it, pthread_mutex_trylock said {}; after SIGKILL, "
                              "pthread_mutex_lock returned {}{}",
                              oslab::errno_name(busy), rc == 0 ? "0" : oslab::errno_name(rc),
                              consistent ? ", and pthread_mutex_consistent succeeded" : ""));
    });
  }

  // ---- What a wait+post costs, nobody else around ----
  void costs(oslab::Report& report) {
    oslab::Shared<sem_t> unnamed;
    check_errno("sem_init", ::sem_init(unnamed.get(), 1, 1));
    NamedSemaphore named_sem(1);
    named_sem.name.unlink();
    oslab::SysvId set = oslab::SysvId::semaphores(1);
    check_errno("semctl(SETVAL)", ::semctl(set.id(), 0, SETVAL, 1));
    auto posix_pair = [](sem_t* sem) {
      return [sem](int64_t batch) {
        for (int64_t i = 0; i < batch; ++i) {
          while (::sem_wait(sem) == -1)
            if (errno != EINTR) throw oslab::SysError("sem_wait", errno);
          check_errno("sem_post", ::sem_post(sem));
        }
      };
    };
    auto sysv_pair = [id = set.id()](short flags) {
      return [id, flags](int64_t batch) {
        sembuf down{0, -1, flags}, up{0, +1, flags};
        for (int64_t i = 0; i < batch; ++i) {
          check_errno("semop", ::semop(id, &down, 1));
          check_errno("semop", ::semop(id, &up, 1));
        }
      };
    };
    struct Kind {
      const char* name;
      const char* what;
      std::function<void(int64_t)> op;
    };
    const std::vector<Kind> kinds = {
        {"posix-unnamed", "sem_wait + sem_post on a process-shared sem_t in shared memory", posix_pair(unnamed.get())},
        {"posix-named", "sem_wait + sem_post on a sem_open()ed semaphore", posix_pair(named_sem.sem)},
        {"sysv", "semop(-1) + semop(+1)", sysv_pair(0)},
        {"sysv-undo", "semop(-1, SEM_UNDO) + semop(+1, SEM_UNDO)", sysv_pair(SEM_UNDO)},
    };
    std::vector<std::function<void(int64_t)>> ops;
    for (const Kind& k : kinds) ops.push_back(k.op);
    oslab::SamplingPlan plan = lab.plan();
    plan.batch = 100;
    const std::vector<oslab::Measurement> measured = oslab::measure_interleaved(plan, ops);
    for (size_t i = 0; i < kinds.size(); ++i) {
      std::map<std::string, double> counters;
      report.run_case(fmt::format("system calls of {}", kinds[i].name), [&] {
        const oslab::SyscallCounts counts = oslab::count_syscalls([&] { kinds[i].op(1000); });
        counters["syscalls_per_wait_post"] = static_cast<double>(counts.total) / 1000;
      });
      report.add("wait+post", {{"kind", kinds[i].name}}, measured[i],
                 {.what = fmt::format("{}, uncontended, one thread; a sample is the mean of a batch of {}",
                                      kinds[i].what, plan.batch),
                  .counters = counters,
                  .headline = i == 0 || i == 2});
    }
    ::sem_destroy(unnamed.get());
  }

  void table(oslab::Report& report) const {
    oslab::Table t{"Semaphores side by side",
                   {"", "POSIX unnamed", "POSIX named", "System V"},
                   {},
                   "wait+post: the median of batch means, uncontended, with the system calls the kernel counted.",
                   4};
    auto cost = [&](const char* kind) {
      const oslab::Result* r = report.find("wait+post", {{"kind", kind}});
      if (!r) return std::string("-");
      auto calls = r->counters.find("syscalls_per_wait_post");
      return fmt::format(
          "{}{}", oslab::format_duration(r->summary.p50),
          calls == r->counters.end() ? "" : fmt::format(" ({} calls)", oslab::format_number(calls->second)));
    };
    t.rows = {
        {"created by", "sem_init(&sem, pshared, value)", "sem_open(name, O_CREAT|O_EXCL, 0600, value)",
         "semget(IPC_PRIVATE, n, 0600): a set of n"},
        {"another process reaches it", "through memory it shares (fork, shm, memfd)", "by name: /dev/shm/sem.NAME",
         "by id (or key): ipcs lists it"},
        {"goes away", "with the memory (sem_destroy)", "sem_unlink, then the last sem_close",
         "semctl(IPC_RMID): at once, waiters get EIDRM"},
        {"a holder dies", "stays taken", "stays taken", "given back with SEM_UNDO; else stays taken"},
        {"wait+post", cost("posix-unnamed"), cost("posix-named"), cost("sysv") + " / SEM_UNDO " + cost("sysv-undo")},
    };
    report.table(t);
  }

  void verdicts(oslab::Report& report) const {
    const oslab::Result* posix = report.find("wait+post", {{"kind", "posix-unnamed"}});
    const oslab::Result* sysv = report.find("wait+post", {{"kind", "sysv"}});
    if (!posix || !sysv) return;
    auto calls = [](const oslab::Result* r) {
      auto it = r->counters.find("syscalls_per_wait_post");
      return it == r->counters.end() ? -1.0 : it->second;
    };
    if (calls(posix) >= 0 && calls(sysv) >= 0)
      report.fact("posix-stays-in-user-space",
                  "nobody waiting, a POSIX semaphore's wait and post make no system call; a System V semaphore's "
                  "make one each",
                  calls(posix) < 0.01 && calls(sysv) >= 2 - 0.01,
                  fmt::format("system calls per wait+post, counted by the kernel: POSIX unnamed {}, System V {}",
                              oslab::format_number(calls(posix)), oslab::format_number(calls(sysv))));
    report.verdict("sysv-pays-for-the-kernel",
                   "uncontended, a System V semaphore costs many times a POSIX one (two system calls per wait+post)",
                   oslab::ratio_of(sysv->summary, posix->summary), oslab::Compare::above, 3,
                   fmt::format("System V {} vs POSIX unnamed {} per wait+post",
                               oslab::format_duration(sysv->summary.p50), oslab::format_duration(posix->summary.p50)));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "semaphores",
      .purpose = "POSIX unnamed, POSIX named and System V semaphores side by side: cost, reach, and a holder's death",
      .claim = "The notes (pthreads API): semaphores provide create, destroy, wait and post. There are three kinds\n"
               "on Linux, and they differ in how another process reaches them, how they go away, what they cost,\n"
               "and what happens when the process holding one dies.",
      .explain =
          "POSIX unnamed: a sem_t placed in memory the processes share (pshared = 1): a 32-bit futex word and a\n"
          "waiter count. sem_wait decrements it in user space when it can, and sleeps in the kernel (FUTEX_WAIT)\n"
          "only when the value is 0; sem_post increments it and calls FUTEX_WAKE only if someone sleeps.\n"
          "POSIX named: the same sem_t, in a file of /dev/shm (sem.NAME) that sem_open maps: any process that\n"
          "knows the name and has the permission can open it, until sem_unlink removes the name. The lab\n"
          "starts a separate program that opens it by name and posts it, then unlinks it and shows the name\n"
          "gone while the lab's own handle still works. Unique names (/oslab.semaphores.PID.N), O_EXCL, mode\n"
          "0600, unlinked as soon as both sides hold it.\n"
          "System V: a kernel object, a set of semaphores with an id (semget, IPC_PRIVATE here): every semop is\n"
          "a system call, waited or not; IPC_RMID removes it at once, and ipcs lists it until then.\n\n"
          "A holder's death: SEM_UNDO asks the kernel to record each operation and undo it when the process\n"
          "exits, however it exits. The lab's helper takes a System V semaphore with and without SEM_UNDO and is\n"
          "SIGKILLed: with it, the value comes back; without, it stays taken. A POSIX semaphore has no undo: a\n"
          "dead holder's semaphore stays taken (a semaphore has no owner to undo for). The tool for a lock that\n"
          "must survive its holder's death is a robust mutex: the kernel walks the dead thread's list of robust\n"
          "mutexes and the next pthread_mutex_lock returns EOWNERDEAD, so the new owner knows the data may be\n"
          "half-updated.\n\n"
          "Cost: wait+post with nobody else around, timed in batches, with the kernel's count of system calls:\n"
          "none for POSIX, two for System V (and SEM_UNDO adds the kernel's record of every change).\n\n"
          "Every object is private to the run and removed even if the lab is killed: System V sets and names\n"
          "are registered with a guardian process that removes them when the lab ends, however it ends.\n\n"
          "Questions: why can a POSIX semaphore not offer SEM_UNDO? Why is a semaphore a poor lock across\n"
          "processes that may crash? What does ipcs show while this lab runs?",
  });
  lab.sampling({.samples = {.full = 100, .quick = 20}, .budget_s = {.full = 0.2, .quick = 0.03}});
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    oslab::helper_path("oslab-sem-helper");  // a broken installation fails before anything is printed
    experiment.emplace(Experiment{lab});
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->named(report);
        experiment->holder_dies(report);
        experiment->costs(report);
        experiment->table(report);
        experiment->verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
