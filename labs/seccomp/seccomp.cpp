// oslab-seccomp: what a seccomp filter does to a process, and what it costs. A filter is a
// small BPF program the kernel runs on every system call; libseccomp compiles rules into one.
// Each experiment runs in a child of its own, since a filter can never be removed.
//
// Try:     oslab-seccomp
//          oslab-seccomp --rules 0,10,100,1000 --json | jq '.verdicts'
// Expect:  a denied call fails with EPERM (deny-list or allow-list), or raises SIGSYS whose
//          siginfo names the call, or kills the process with SIGSYS; the filter survives fork
//          and exec and cannot be removed or loosened. Rules cost only the calls they inspect:
//          rules on other calls leave getppid as cheap as with no filter (the kernel caches an
//          unconditional allow), rules on getppid's own argument cost it more as they grow, and
//          a call answered by a supervisor (SECCOMP_RET_USER_NOTIF) costs a round trip to it.
// Compare: oslab-sandbox (libexec), which uses USER_NOTIF to name the calls it forbids; the
//          seccomp-filter homework.

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/fdpass.hpp"
#include "oslab/format.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/measure.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"
#include "oslab/stats.hpp"
#include "oslab/syscalls.hpp"

namespace {

using oslab::check_errno;
using namespace std::chrono_literals;

constexpr auto kDeadline = 10s;
constexpr long kFakePpid = 4242;  // what the supervisor answers for getppid

// ---- filters: compiled with libseccomp before fork, loaded in the child with one system call ----

// A BPF program exported by libseccomp: loading it needs no allocation, so a child of a
// process with threads (the watchdog) may load it right after fork.
struct Program {
  std::vector<sock_filter> code;
  std::string describe() const { return fmt::format("{} BPF instructions", code.size()); }
};

struct Rule {
  uint32_t action;
  const char* syscall;
  std::optional<scmp_datum_t> arg0;  // compare the first argument with this value
};

Program compile(uint32_t default_action, const std::vector<Rule>& rules) {
  scmp_filter_ctx ctx = seccomp_init(default_action);
  if (ctx == nullptr) throw std::runtime_error("seccomp_init failed");
  auto fail = [&](const std::string& what, int rc) {
    seccomp_release(ctx);
    throw oslab::SysError(what, -rc);
  };
  for (const Rule& rule : rules) {
    const int nr = seccomp_syscall_resolve_name(rule.syscall);
    const int rc = rule.arg0 ? seccomp_rule_add(ctx, rule.action, nr, 1, SCMP_A0(SCMP_CMP_EQ, *rule.arg0))
                             : seccomp_rule_add(ctx, rule.action, nr, 0);
    if (rc != 0) fail(fmt::format("seccomp_rule_add {}", rule.syscall), rc);
  }
  oslab::UniqueFd memory(check_errno("memfd_create", ::memfd_create("oslab-seccomp-bpf", MFD_CLOEXEC)));
  if (const int rc = seccomp_export_bpf(ctx, memory.get()); rc != 0) fail("seccomp_export_bpf", rc);
  seccomp_release(ctx);
  const off_t bytes = check_errno("lseek", ::lseek(memory.get(), 0, SEEK_END));
  Program program;
  program.code.resize(static_cast<size_t>(bytes) / sizeof(sock_filter));
  check_errno("pread", ::pread(memory.get(), program.code.data(), static_cast<size_t>(bytes), 0));
  return program;
}

// Child side (async-signal-safe): no_new_privs, then the filter. Returns the listener fd for
// SECCOMP_FILTER_FLAG_NEW_LISTENER, 0 otherwise, -errno on failure.
long load(const Program& program, unsigned flags = 0) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
  sock_fprog fprog{static_cast<unsigned short>(program.code.size()), const_cast<sock_filter*>(program.code.data())};
  const long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
  return rc < 0 ? -errno : rc;
}

long raw_getppid() {
  return ::syscall(SYS_getppid, 0, 0, 0, 0, 0, 0);
}

// ---- what each child saw, in shared memory ----

struct Seen {
  long rc = 0, rc2 = 0;
  int err = 0, err2 = 0;
  long load_rc = 0;
  int trap_nr = -1, trap_arch = 0, trap_code = 0;
  int filters = -1;
};

volatile sig_atomic_t g_trap_nr = -1, g_trap_arch = 0, g_trap_code = 0;

void on_sigsys(int, siginfo_t* info, void*) {
  g_trap_nr = info->si_syscall;
  g_trap_arch = static_cast<sig_atomic_t>(info->si_arch);
  g_trap_code = info->si_code;
}

// Seccomp_filters of /proc/self/status (the count of filters this process runs under).
int filter_count() {
  char buffer[4096] = {};
  const int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (n <= 0) return -1;
  const char* field = std::strstr(buffer, "Seccomp_filters:");
  return field ? std::atoi(field + 16) : -1;
}

struct Fact {
  std::string id, claim;
  bool holds = false;
  std::string evidence;
  // For the table of what a denied call does.
  std::string action, sees;
};

oslab::ExitStatus run_child(const std::function<int()>& body) {
  oslab::Child child = oslab::Child::fork(body);
  return child.wait(kDeadline);
}

std::string errno_text(long rc, int err) {
  return rc == -1 ? fmt::format("-1, errno {}", oslab::errno_name(err)) : std::to_string(rc);
}

const Program& deny_getppid() {
  static const Program program = compile(SCMP_ACT_ALLOW, {{SCMP_ACT_ERRNO(EPERM), "getppid", {}}});
  return program;
}

Fact deny_list() {
  oslab::Shared<Seen> seen;
  const auto status = run_child([&] {
    seen->load_rc = load(deny_getppid());
    errno = 0;
    seen->rc = raw_getppid();
    seen->err = errno;
    seen->rc2 = ::syscall(SYS_getpid);
    return 0;
  });
  const bool holds = status.success() && seen->load_rc == 0 && seen->rc == -1 && seen->err == EPERM && seen->rc2 > 0;
  return {"deny-list-eperm",
          "A deny-list filter (allow by default; getppid -> ERRNO(EPERM)): getppid fails with EPERM, other calls work",
          holds,
          fmt::format("getppid() = {}; getpid() = {}; the child {}", errno_text(seen->rc, seen->err), seen->rc2,
                      status.describe()),
          "SCMP_ACT_ERRNO(EPERM)",
          fmt::format("the call returns {}", errno_text(seen->rc, seen->err))};
}

Fact allow_list() {
  // Allowed: what a child needs to end (and what a sanitizer's allocator may call meanwhile).
  std::vector<Rule> rules;
  for (const char* call :
       {"exit_group", "exit", "brk", "mmap", "munmap", "madvise", "rt_sigreturn", "rt_sigprocmask", "futex", "getpid"})
    rules.push_back({SCMP_ACT_ALLOW, call, {}});
  const Program program = compile(SCMP_ACT_ERRNO(EPERM), rules);
  oslab::Shared<Seen> seen;
  const auto status = run_child([&] {
    seen->load_rc = load(program);
    utsname name{};
    errno = 0;
    seen->rc = ::syscall(SYS_uname, &name);
    seen->err = errno;
    seen->rc2 = ::syscall(SYS_getpid);
    return 0;
  });
  const bool holds = status.success() && seen->load_rc == 0 && seen->rc == -1 && seen->err == EPERM && seen->rc2 > 0;
  return {"allow-list-eperm",
          "An allow-list filter (EPERM by default; 10 calls allowed): uname, not on the list, fails with EPERM",
          holds,
          fmt::format("{}; uname() = {}; getpid() (allowed) = {}; the child {}", program.describe(),
                      errno_text(seen->rc, seen->err), seen->rc2, status.describe()),
          "",
          ""};
}

Fact trap() {
  const Program program = compile(SCMP_ACT_ALLOW, {{SCMP_ACT_TRAP, "getppid", {}}});
  oslab::Shared<Seen> seen;
  const auto status = run_child([&] {
    struct sigaction action {};
    action.sa_sigaction = on_sigsys;
    action.sa_flags = SA_SIGINFO;
    ::sigaction(SIGSYS, &action, nullptr);
    seen->load_rc = load(program);
    raw_getppid();
    seen->trap_nr = g_trap_nr;
    seen->trap_arch = g_trap_arch;
    seen->trap_code = g_trap_code;
    return 0;
  });
  char* name = seen->trap_nr >= 0
                   ? seccomp_syscall_resolve_num_arch(static_cast<uint32_t>(seen->trap_arch), seen->trap_nr)
                   : nullptr;
  const std::string decoded = name ? name : "?";
  std::free(name);
  const bool holds = status.success() && seen->trap_nr == SYS_getppid && seen->trap_code == 1 /* SYS_SECCOMP */ &&
                     decoded == "getppid";
  return {
      "trap-sigsys-decoded",
      "SCMP_ACT_TRAP: the call raises SIGSYS, whose siginfo gives the call's number and architecture",
      holds,
      fmt::format("SIGSYS with si_code {} (SYS_SECCOMP is 1), si_syscall {} = {} (arch 0x{:x}); the child {}",
                  seen->trap_code, seen->trap_nr, decoded, static_cast<unsigned>(seen->trap_arch), status.describe()),
      "SCMP_ACT_TRAP",
      fmt::format("SIGSYS: si_syscall {} ({}), decoded by the handler", seen->trap_nr, decoded)};
}

Fact kill_process() {
  const Program program = compile(SCMP_ACT_ALLOW, {{SCMP_ACT_KILL_PROCESS, "getppid", {}}});
  const auto status = run_child([&] {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);  // SIGSYS dumps core by default
    if (load(program) != 0) return 2;
    raw_getppid();
    return 0;  // never reached
  });
  const bool holds = !status.exited && status.signal == SIGSYS;
  return {"kill-process-sigsys",
          "SCMP_ACT_KILL_PROCESS: the process is killed, as if by SIGSYS, at the call",
          holds,
          fmt::format("the child {}", status.describe()),
          "SCMP_ACT_KILL_PROCESS",
          fmt::format("the process is {}", status.describe())};
}

Fact inherited_by_fork() {
  oslab::Shared<Seen> seen;
  const auto status = run_child([&] {
    if (load(deny_getppid()) != 0) return 2;
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      errno = 0;
      seen->rc = raw_getppid();
      seen->err = errno;
      _exit(0);
    }
    int child_status = 0;
    ::waitpid(grandchild, &child_status, 0);
    return 0;
  });
  return {"inherited-across-fork",
          "The filter is inherited by a child forked after it was loaded",
          status.success() && seen->rc == -1 && seen->err == EPERM,
          fmt::format("in the forked child, getppid() = {}", errno_text(seen->rc, seen->err)),
          "",
          ""};
}

Fact inherited_by_exec(const std::string& probe) {
  const auto status = run_child([&] {
    if (load(deny_getppid()) != 0) return 2;
    const char* argv[] = {probe.c_str(), nullptr};
    ::execv(probe.c_str(), const_cast<char* const*>(argv));
    return 4;
  });
  return {"inherited-across-exec",
          "The filter survives execve: the new program runs under it",
          status.exited && status.code == 3,
          fmt::format("{} (3: its getppid() failed with EPERM; 0: it worked)", status.describe()),
          "",
          ""};
}

Fact irreversible(int filters_before) {
  const Program allow_all = compile(SCMP_ACT_ALLOW, {});  // allows everything, getppid included
  oslab::Shared<Seen> seen;
  const auto status = run_child([&] {
    if (load(deny_getppid()) != 0) return 2;
    seen->load_rc = load(allow_all);  // a second filter, which allows every call
    errno = 0;
    seen->rc = raw_getppid();
    seen->err = errno;
    errno = 0;
    seen->rc2 = ::prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0);  // try to take no_new_privs back
    seen->err2 = errno;
    seen->filters = filter_count();
    return 0;
  });
  const bool holds = status.success() && seen->load_rc == 0 && seen->rc == -1 && seen->err == EPERM &&
                     seen->rc2 == -1 && seen->err2 == EINVAL &&
                     (filters_before < 0 || seen->filters == filters_before + 2);
  return {
      "irreversible",
      "A filter cannot be removed or loosened: a second, allow-all filter stacks on it (the strictest answer "
      "wins) and no_new_privs cannot be cleared",
      holds,
      fmt::format("after an allow-all filter on top, getppid() = {}; prctl(PR_SET_NO_NEW_PRIVS, 0) = {}; "
                  "Seccomp_filters {} (was {} before)",
                  errno_text(seen->rc, seen->err), errno_text(seen->rc2, seen->err2), seen->filters, filters_before),
      "",
      ""};
}

// Answers one notification; returns false when nothing came within `timeout_ms`.
bool answer(int notify_fd, int timeout_ms, bool with_fake_value, seccomp_notif* seen_request = nullptr) {
  pollfd p{notify_fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0 || (p.revents & POLLIN) == 0) return false;
  seccomp_notif request{};
  if (::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &request) != 0) return false;
  if (seen_request != nullptr) *seen_request = request;
  seccomp_notif_resp response{};
  response.id = request.id;
  if (with_fake_value)
    response.val = kFakePpid;
  else
    response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  return ::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &response) == 0;
}

const Program& notify_getppid() {
  static const Program program = compile(SCMP_ACT_ALLOW, {{SCMP_ACT_NOTIFY, "getppid", {}}});
  return program;
}

// A child that loads a USER_NOTIF filter and hands its listener to us through a socket.
struct Notified {
  oslab::Child child;
  oslab::UniqueFd listener;
};

Notified start_notified(const std::function<void()>& measured) {
  int sockets[2];
  check_errno("socketpair", ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets));
  oslab::UniqueFd ours(sockets[0]), theirs(sockets[1]);
  Notified notified;
  notified.child = oslab::Child::fork([&] {
    const long fd = load(notify_getppid(), SECCOMP_FILTER_FLAG_NEW_LISTENER);
    if (fd < 0) return 2;
    oslab::send_fd(theirs.get(), static_cast<int>(fd));
    ::close(static_cast<int>(fd));
    measured();
    return 0;
  });
  theirs.reset();
  notified.listener.reset(oslab::receive_fd(ours.get()));
  if (!notified.listener.valid()) {
    const auto status = notified.child.wait(kDeadline);
    throw oslab::SkipError(fmt::format("SECCOMP_FILTER_FLAG_NEW_LISTENER failed in the child ({})", status.describe()));
  }
  return notified;
}

Fact user_notif() {
  oslab::Shared<Seen> seen;
  Notified notified = start_notified([&] {
    seen->rc = raw_getppid();
    seen->rc2 = ::getppid();
  });
  seccomp_notif request{};
  const bool answered =
      answer(notified.listener.get(), 5000, true, &request) && answer(notified.listener.get(), 5000, true);
  const pid_t child = notified.child.pid();
  const auto status = notified.child.wait(kDeadline);
  const bool holds = answered && status.success() && seen->rc == kFakePpid && seen->rc2 == kFakePpid &&
                     request.pid == static_cast<uint32_t>(child) && request.data.nr == SYS_getppid;
  return {"user-notif-answers",
          "SECCOMP_RET_USER_NOTIF: the call waits while a supervisor process reads it (number, arguments, pid) and "
          "answers for the kernel",
          holds,
          fmt::format("the supervisor saw syscall {} from pid {} (the child is {}) and answered {}; the child's "
                      "getppid() returned {}; it {}",
                      request.data.nr, request.pid, child, kFakePpid, seen->rc, status.describe()),
          "SCMP_ACT_NOTIFY",
          fmt::format("the supervisor answers: getppid() = {}", seen->rc)};
}

// ---- the cost of a call under a filter ----

enum class Kind { none, other_calls, own_argument, user_notif };

struct Case {
  Kind kind;
  long rules;
  Program program;
  int64_t batch;
  std::string filter() const {
    switch (kind) {
      case Kind::none: return "none";
      case Kind::other_calls: return "rules on another call";
      case Kind::own_argument: return "rules on getppid's argument";
      case Kind::user_notif: return "USER_NOTIF";
    }
    return "";
  }
};

Program rules_program(Kind kind, long rules) {
  std::vector<Rule> list;
  // Never matched: the first argument is compared with values no call here passes.
  for (long i = 0; i < rules; ++i)
    list.push_back({SCMP_ACT_ERRNO(EPERM), kind == Kind::own_argument ? "getppid" : "uname",
                    static_cast<scmp_datum_t>(100'000 + i)});
  return compile(SCMP_ACT_ALLOW, list);
}

double now_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

// In the child: `samples` samples of `batch` getppid calls each, ns per call.
void time_calls(double* out, int samples, int64_t batch) {
  for (int s = 0; s < samples; ++s) {
    const double start = now_ns();
    for (int64_t i = 0; i < batch; ++i) raw_getppid();
    out[s] = (now_ns() - start) / static_cast<double>(batch);
  }
}

struct Experiment {
  oslab::Lab& lab;
  const std::vector<long>& rule_counts;
  std::vector<Fact> facts;
  std::vector<Case> cases;

  void observe(oslab::Report& report) {
    const std::string probe = oslab::helper_path("oslab-seccomp-probe");
    const int filters_before = filter_count();
    facts.push_back(deny_list());
    facts.push_back(allow_list());
    facts.push_back(trap());
    facts.push_back(kill_process());
    facts.push_back(inherited_by_fork());
    facts.push_back(inherited_by_exec(probe));
    facts.push_back(irreversible(filters_before));
    report.run_case("USER_NOTIF answered by a supervisor", [&] { facts.push_back(user_notif()); });
    for (const Fact& fact : facts) report.fact(fact.id, fact.claim, fact.holds, fact.evidence);
  }

  void measure(oslab::Report& report) {
    cases.push_back({Kind::none, 0, {}, 100});
    for (long rules : rule_counts) {
      if (rules == 0) continue;
      cases.push_back({Kind::other_calls, rules, rules_program(Kind::other_calls, rules), 100});
      cases.push_back({Kind::own_argument, rules, rules_program(Kind::own_argument, rules), 100});
    }
    const bool notify =
        std::any_of(facts.begin(), facts.end(), [](const Fact& f) { return f.id == "user-notif-answers"; });
    if (notify) cases.push_back({Kind::user_notif, 1, notify_getppid(), 5});
    oslab::SamplingPlan plan = lab.plan();
    oslab::SharedArray<double> samples(static_cast<size_t>(plan.max_samples) + 1);
    oslab::Interleaver interleaver(plan, cases.size());
    interleaver.run([&](size_t index, int count, oslab::Measurement& into) {
      const Case& c = cases[index];
      if (c.kind == Kind::user_notif) {
        Notified notified = start_notified([&] { time_calls(samples.data(), count, c.batch); });
        while (answer(notified.listener.get(), 5000, false)) {
        }
        notified.child.wait_success(kDeadline, "the USER_NOTIF child");
      } else {
        oslab::Child child = oslab::Child::fork([&] {
          if (c.kind != Kind::none && load(c.program) != 0) return 2;
          time_calls(samples.data(), count, c.batch);
          return 0;
        });
        child.wait_success(kDeadline, "the measuring child");
      }
      into.add_block(std::span<const double>(samples.data(), static_cast<size_t>(count)), {}, {}, c.batch);
    });
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      const std::string program = c.kind == Kind::none ? "no filter" : c.program.describe();
      report.add("getppid", {{"filter", c.filter()}, {"rules", c.rules}, {"bpf_instructions", c.program.code.size()}},
                 interleaver.measurements()[i],
                 {.what = fmt::format("syscall(SYS_getppid), per call (batches of {}), in a child under {} ({}){}",
                                      c.batch, c.filter(), program,
                                      c.kind == Kind::user_notif ? "; this lab is the supervisor, on any CPU" : ""),
                  .headline = c.kind == Kind::none || c.kind == Kind::user_notif ||
                              (c.rules == rule_counts.back() && c.kind == Kind::own_argument)});
    }
  }

  const oslab::Result* find(oslab::Report& report, Kind kind, long rules) const {
    for (const Case& c : cases)
      if (c.kind == kind && c.rules == rules)
        return report.find("getppid", {{"filter", c.filter()}, {"rules", c.rules}});
    return nullptr;
  }

  void tables_and_verdicts(oslab::Report& report) const {
    oslab::Table actions{"What a filtered call does", {"action", "what the program sees"}, {}, "", 1};
    for (const Fact& fact : facts)
      if (!fact.action.empty()) actions.rows.push_back({fact.action, fact.sees});
    actions.footnote =
        "A SIGSYS handler (TRAP) runs in the filtered process, which can replace it: a sandbox that must name "
        "what it stopped uses USER_NOTIF (or the audit log) instead.";
    report.table(actions);

    const oslab::Result& none = report.get("getppid", {{"filter", "none"}});
    oslab::Table costs{"getppid under a filter (median per call; ratio to no filter)",
                       {"filter", "rules", "BPF", "per call", "ratio"},
                       {},
                       "",
                       1};
    for (const Case& c : cases) {
      const oslab::Result& r = report.get("getppid", {{"filter", c.filter()}, {"rules", c.rules}});
      costs.rows.push_back({c.filter(), std::to_string(c.rules), std::to_string(c.program.code.size()),
                            oslab::format_duration(r.summary.p50),
                            oslab::format_number(r.summary.p50 / none.summary.p50) + "x"});
    }
    costs.footnote =
        "Since Linux 5.11 the kernel caches, per system call, an allow that does not depend on the arguments: "
        "getppid then skips the filter whatever rules other calls have.";
    report.table(costs);

    const long most = rule_counts.back();
    if (most >= 10) {
      const oslab::Result* own = find(report, Kind::own_argument, most);
      const oslab::Result* other = find(report, Kind::other_calls, most);
      if (own != nullptr)
        report.verdict("argument-rules-cost", fmt::format("{} rules on getppid's argument make getppid dearer", most),
                       oslab::ratio_of(own->summary, none.summary), oslab::Compare::above, 1.2,
                       fmt::format("{} vs {} with no filter", oslab::format_duration(own->summary.p50),
                                   oslab::format_duration(none.summary.p50)));
      if (other != nullptr)
        report.verdict("other-rules-cost-nothing",
                       fmt::format("{} rules on another call leave getppid as cheap as no filter (the kernel's "
                                   "action cache, Linux 5.11+)",
                                   most),
                       oslab::ratio_of(other->summary, none.summary), oslab::Compare::below, 1.5,
                       fmt::format("{} vs {} with no filter", oslab::format_duration(other->summary.p50),
                                   oslab::format_duration(none.summary.p50)));
    } else {
      report.note("the rule-count verdicts need a count of at least 10 in --rules");
    }
    if (const oslab::Result* notified = find(report, Kind::user_notif, 1))
      report.verdict("user-notif-costs-a-round-trip",
                     "A call answered by a supervisor (USER_NOTIF) costs more than 10x a null call",
                     oslab::ratio_of(notified->summary, none.summary), oslab::Compare::above, 10,
                     fmt::format("{} vs {}", oslab::format_duration(notified->summary.p50),
                                 oslab::format_duration(none.summary.p50)));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "seccomp",
      .purpose = "seccomp filters: EPERM, SIGSYS, kill; inherited and irreversible; the cost of rules and USER_NOTIF",
      .claim = "The notes: a process can restrict the system calls it (and every program it then runs) may make;\n"
               "a denied call fails, or the process is killed, and the restriction cannot be lifted. Sandboxes\n"
               "(browsers, containers, systemd services) rely on it. What does it cost a call that is allowed?",
      .explain = "seccomp(2) in filter mode attaches a classic BPF program to the calling thread (and, inherited,\n"
                 "to every child and every program exec'ed later). The kernel runs it at every system call\n"
                 "entry with the call's number, architecture and six arguments, and it returns an action:\n"
                 "ALLOW, ERRNO(n) (the call fails with errno n), TRAP (SIGSYS to the calling thread, whose siginfo\n"
                 "carries si_syscall and si_arch), KILL_PROCESS, LOG, or USER_NOTIF (the call waits while a\n"
                 "supervisor holding the filter's listener fd reads it and answers). libseccomp compiles rules\n"
                 "(\"getppid -> ERRNO(EPERM)\", \"openat if (flags & O_ACCMODE) == O_RDONLY\") into that program;\n"
                 "this lab exports it (seccomp_export_bpf) and loads it with one system call after fork.\n\n"
                 "Loading a filter needs no_new_privs (or CAP_SYS_ADMIN), so that a setuid program cannot be\n"
                 "made to misbehave. Filters stack: a new one runs in addition to the old, and the strictest\n"
                 "action wins; no_new_privs cannot be cleared. That is why a sandbox can load a filter and\n"
                 "then exec untrusted code: oslab-sandbox does, for the homework graders.\n\n"
                 "Cost: each case runs in its own child (a filter cannot be removed) and times getppid, a\n"
                 "null call, in batches. Rules on another call's argument leave getppid's cost alone: since\n"
                 "Linux 5.11 the kernel remembers, per call number, that the filter always allows it, and\n"
                 "skips the program. Rules on getppid's own argument cannot be cached: the program runs on\n"
                 "every call, and grows with the rules. A USER_NOTIF call costs a round trip to another\n"
                 "process: two context switches or wake-ups.\n\n"
                 "Questions: why can a filter check openat's flags but not its path? Why is a SIGSYS handler\n"
                 "a poor way for a sandbox to report what it stopped? What does a filter with 400 rules cost a\n"
                 "call it does not mention, on a kernel older than 5.11?",
  });
  const auto& rule_counts = lab.list_option("--rules", "Rule counts to measure (0: no filter, always measured)",
                                            {.full = {0, 1, 10, 100}, .quick = {0, 100}}, 0, 4000);
  lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 0.3, .quick = 0.05}, .warmup = 2});
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    std::vector<long> sorted = rule_counts;
    if (!std::is_sorted(sorted.begin(), sorted.end()))
      throw oslab::UsageError("--rules: give the counts in increasing order");
    uint32_t action = SECCOMP_RET_ERRNO;
    if (::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) != 0 && errno == ENOSYS)
      throw oslab::SkipError("this kernel has no seccomp (CONFIG_SECCOMP_FILTER)");
    experiment.emplace(Experiment{lab, rule_counts, {}, {}});
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->observe(report);
        experiment->measure(report);
        experiment->tables_and_verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
