// oslab-oom: when memory runs out and nothing can be evicted, the kernel kills a process: which
// one, and why. Three processes share a memory cgroup of the lab's own whose limit they are
// made to exceed (anonymous memory, no swap); the kernel's OOM killer picks its victim by
// points (resident memory, page tables, swap) shifted by each one's oom_score_adj.
//
// Try:     oslab-oom                         a 128 MiB group: 64 MiB, 32 MiB, and one that grows
//          oslab-oom --limit 256
// Expect:  the process that asks for the page the group cannot have is not the one killed: the
//          largest is (SIGKILL), and the one that asked carries on. With oom_score_adj = 1000 a
//          smaller process volunteers and goes first. The group's oom_kill counter says 1 each
//          time; nothing outside the group is touched. Without a memory controller the lab only
//          shows the ranking (/proc/PID/oom_score) and says so.
// Compare: oslab-thrash (a limit that can be met by evicting file pages: thrashing, not killing).

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "cgroup.hpp"
#include "oslab/clock.hpp"
#include "oslab/error.hpp"
#include "oslab/format.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/process.hpp"
#include "oslab/shared.hpp"

namespace {

using oslab::memory::MemoryCgroup;

constexpr size_t kMiB = 1 << 20;
constexpr int kMaxSteps = 4096;

// ---- The three processes ------------------------------------------------------------------

enum Role { kLargest, kMiddle, kGrower, kRoles };
const char* role_name(int role) {
  return role == kLargest ? "holds the most" : role == kMiddle ? "holds less" : "grows 1 MiB at a time";
}

struct Control {
  std::atomic<int> ready[kRoles] = {};
  std::atomic<int> go{0};
  std::atomic<int> steps{0};  // the grower's 1 MiB steps done
  double step_ns[kMaxSteps] = {};
};

struct PartyArgs {
  const char* procs_file;  // nullptr: no cgroup
  int role;
  long hold_mib;  // touched at once (the grower: its first MiB)
  long grow_mib;  // the grower: how many MiB more after "go"
  int oom_score_adj;
  Control* control;
};

int64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

void touch_new(size_t bytes) noexcept {
  void* block = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) oslab::child_fail("mmap", errno);
  ::madvise(block, bytes, MADV_NOHUGEPAGE);
  for (size_t at = 0; at < bytes; at += oslab::page_size()) static_cast<volatile char*>(block)[at] = 1;
}

// A party's side: async-signal-safe only (the lab has threads when it forks).
int run_party(const PartyArgs& a) {
  if (a.procs_file != nullptr) oslab::memory::join_cgroup(a.procs_file);
  if (a.oom_score_adj != 0) {
    char text[16];
    int length = 0, value = a.oom_score_adj;
    if (value < 0) {
      text[length++] = '-';
      value = -value;
    }
    char digits[12];
    int n = 0;
    do digits[n++] = static_cast<char>('0' + value % 10);
    while ((value /= 10) > 0);
    while (n > 0) text[length++] = digits[--n];
    const int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, text, static_cast<size_t>(length)) != length)
      oslab::child_fail("write /proc/self/oom_score_adj", errno);
    ::close(fd);
  }
  touch_new(static_cast<size_t>(a.hold_mib) * kMiB);
  a.control->ready[a.role].store(1);
  if (a.role != kGrower) {
    for (;;) ::pause();  // until the OOM killer or the lab ends it
  }
  while (a.control->go.load() == 0) {
    timespec pause{0, 1'000'000};
    ::nanosleep(&pause, nullptr);
  }
  for (long step = 0; step < a.grow_mib && step < kMaxSteps; ++step) {
    const int64_t t0 = monotonic_ns();
    touch_new(kMiB);
    a.control->step_ns[step] = static_cast<double>(monotonic_ns() - t0);
    a.control->steps.store(static_cast<int>(step + 1));
  }
  return 0;
}

long read_number(const std::string& path) {
  const std::string text = oslab::read_first_line(path);
  return text.empty() ? -1 : std::stol(text);
}

// What the kernel log says about OOM kills from now on (/dev/kmsg, when this user may read it).
class KernelLog {
 public:
  KernelLog() : fd_(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {
    if (fd_.valid()) ::lseek(fd_.get(), 0, SEEK_END);
  }
  std::vector<std::string> oom_lines() {
    std::vector<std::string> lines;
    if (!fd_.valid()) return lines;
    char record[8192];
    for (;;) {
      const ssize_t got = ::read(fd_.get(), record, sizeof record - 1);
      if (got < 0 && errno == EPIPE) continue;  // overwritten records: go on
      if (got <= 0) break;
      std::string text(record, static_cast<size_t>(got));
      const size_t semicolon = text.find(';');
      if (semicolon != std::string::npos) text = text.substr(semicolon + 1);
      while (!text.empty() && text.back() == '\n') text.pop_back();
      if (text.find("Killed process") != std::string::npos || text.find("invoked oom-killer") != std::string::npos)
        lines.push_back(text);
    }
    return lines;
  }
  bool readable() const { return fd_.valid(); }

 private:
  oslab::UniqueFd fd_;
};

// ---- One scenario -------------------------------------------------------------------------

struct PartySeen {
  pid_t pid = 0;
  long rss_kib = 0, swap_kib = 0, page_tables_kib = 0, oom_score = 0, oom_score_adj = 0;
  std::string fate;  // "killed by SIGKILL", "survived", "exited with 0"
  bool killed = false;
};

struct Scenario {
  std::string name;
  int volunteer = -1;  // the role given oom_score_adj = 1000, or -1
  PartySeen parties[kRoles];
  std::vector<double> step_ns;
  long grew_mib = 0;
  uint64_t oom_kills = 0;
  std::vector<std::string> kernel_said;
  bool in_group = false;
};

struct Experiment {
  const oslab::Lab& lab;
  long limit_mib;
  bool use_cgroup;
  std::vector<Scenario> scenarios = {};

  long hold_of(int role) const { return role == kLargest ? limit_mib / 2 : role == kMiddle ? limit_mib / 4 : 1; }
  // The grower's growth: all three together need 9/8 of the limit, but once either other process
  // is gone the rest fit, and the grower never holds the most.
  long growth() const { return limit_mib * 3 / 8; }

  Scenario run(const std::string& name, int volunteer, bool in_group) {
    Scenario s;
    s.name = name;
    s.volunteer = volunteer;
    s.in_group = in_group;
    std::optional<MemoryCgroup> group;
    if (in_group) {
      group.emplace(MemoryCgroup::create("oom"));
      group->set_limit(static_cast<uint64_t>(limit_mib) * kMiB);
    }
    KernelLog log;
    oslab::Shared<Control> control;
    const char* procs = group ? group->procs_file().c_str() : nullptr;
    const long grow = growth();
    oslab::Child children[kRoles];
    for (int role = 0; role < kRoles; ++role) {
      PartyArgs args{procs,        role, hold_of(role), role == kGrower ? grow : 0, role == volunteer ? 1000 : 0,
                     control.get()};
      children[role] = oslab::Child::fork([args] { return run_party(args); });
      const int64_t deadline = oslab::now_ns() + 30'000'000'000LL;
      while (control->ready[role].load() == 0) {
        if (auto status = oslab::wait_for(children[role].pid(), std::chrono::milliseconds(0))) {
          children[role].release();
          throw std::runtime_error(
              fmt::format("the process that {} {} before it was ready", role_name(role), status->describe()));
        }
        if (oslab::now_ns() > deadline) throw std::runtime_error("a process did not get ready in 30 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    for (int role = 0; role < kRoles; ++role) {
      PartySeen& p = s.parties[role];
      p.pid = children[role].pid();
      p.oom_score = read_number(fmt::format("/proc/{}/oom_score", p.pid));
      p.oom_score_adj = read_number(fmt::format("/proc/{}/oom_score_adj", p.pid));
      std::ifstream status(fmt::format("/proc/{}/status", p.pid));
      std::string key;
      while (status >> key) {
        if (key == "VmRSS:") status >> p.rss_kib;
        if (key == "VmSwap:") status >> p.swap_kib;
        if (key == "VmPTE:") status >> p.page_tables_kib;
      }
    }
    control->go.store(1);
    const oslab::ExitStatus grower = children[kGrower].wait(std::chrono::seconds(60));
    s.parties[kGrower].fate = grower.describe();
    s.parties[kGrower].killed = !grower.exited;
    for (int role : {kLargest, kMiddle}) {
      // Give a victim a moment to be reaped, then see who is gone.
      std::optional<oslab::ExitStatus> ended =
          oslab::wait_for(children[role].pid(), std::chrono::milliseconds(s.parties[kGrower].killed ? 0 : 200));
      if (ended) {
        children[role].release();
        s.parties[role].fate = ended->describe();
        s.parties[role].killed = !ended->exited && ended->signal == SIGKILL;
      } else {
        s.parties[role].fate = "survived";
      }
    }
    s.grew_mib = control->steps.load();
    s.step_ns.assign(control->step_ns, control->step_ns + s.grew_mib);
    for (auto& child : children) child.kill();
    if (group) s.oom_kills = group->stats().oom_kills;
    s.kernel_said = log.oom_lines();
    return s;
  }

  void measure(oslab::Report& report) {
    bool in_group = use_cgroup;
    std::string why_not = "--cgroup none";
    if (in_group) {
      try {
        MemoryCgroup probe = MemoryCgroup::create("oom");
        report.params["cgroup"] = probe.describe();
      } catch (const oslab::SkipError& e) {
        in_group = false;
        why_not = e.what();
      }
    }
    if (!in_group) {
      report.skip("the OOM killer in a memory cgroup", why_not);
      report.note(
          "without a memory cgroup the lab does not run out of memory (it would be the whole machine's): "
          "it shows only how the kernel ranks the processes (/proc/PID/oom_score)");
    }
    scenarios.push_back(run("no adjustment", -1, in_group));
    scenarios.push_back(run("the middle one volunteers", kMiddle, in_group));
    for (const Scenario& s : scenarios)
      if (!s.step_ns.empty())
        report.add_samples("1 MiB of new memory", {{"scenario", s.name}, {"in_group", s.in_group}}, s.step_ns,
                           {.what = "the growing process maps 1 MiB and touches its 256 pages; the step that met the "
                                    "limit includes the OOM kill",
                            .counters = {{"oom_kills", static_cast<double>(s.oom_kills)}},
                            .headline = s.volunteer < 0});
  }

  // The pages the OOM killer weighs points against: the group's limit, or memory and swap.
  long total_pages(const Scenario& s) const {
    if (s.in_group) return limit_mib * static_cast<long>(kMiB / oslab::page_size());
    return static_cast<long>((oslab::meminfo_mib("MemTotal") + oslab::meminfo_mib("SwapTotal")) *
                             static_cast<double>(kMiB) / static_cast<double>(oslab::page_size()));
  }
  // oom_badness(): what the OOM killer compares.
  long points(const Scenario& s, const PartySeen& p) const {
    const long page_kib = static_cast<long>(oslab::page_size() / 1024);
    return (p.rss_kib + p.swap_kib + p.page_tables_kib) / page_kib + p.oom_score_adj * total_pages(s) / 1000;
  }

  void tables(oslab::Report& report) const {
    for (const Scenario& s : scenarios) {
      oslab::Table table{fmt::format("{}: {}", s.name,
                                     s.in_group ? fmt::format("three processes in a {} MiB group", limit_mib)
                                                : std::string("three processes, no group")),
                         {"process", "RSS", "oom_score_adj", "OOM points", "oom_score", "fate"},
                         {},
                         "",
                         1};
      for (int role = 0; role < kRoles; ++role) {
        const PartySeen& p = s.parties[role];
        table.rows.push_back({role_name(role), fmt::format("{:.1f} MiB", static_cast<double>(p.rss_kib) / 1024),
                              std::to_string(p.oom_score_adj), std::to_string(points(s, p)),
                              std::to_string(p.oom_score), p.fate});
      }
      table.footnote = fmt::format(
          "before the growth began (/proc/PID/status and oom_score): OOM points = resident + swapped pages + page "
          "tables in pages + oom_score_adj x {} / 1000, the pages the OOM killer weighs against ({}); oom_score "
          "shows the points scaled to the machine, (1000 + points x 1000 / its pages) x 2/3, so a small process "
          "scores 666 and oom_score_adj 1000 adds 666. The grower then asked for {} MiB more{}.",
          total_pages(s), s.in_group ? "the group's limit" : "the machine's memory and swap", s.grew_mib,
          s.in_group ? fmt::format("; the group's oom_kill counter: {}", s.oom_kills) : std::string());
      if (!s.kernel_said.empty()) table.footnote += " The kernel's log: " + s.kernel_said.back();
      report.table(table);
    }
  }

  void verdicts(oslab::Report& report) const {
    const Scenario& plain = scenarios[0];
    const Scenario& volunteered = scenarios[1];
    const auto& big = plain.parties[kLargest];
    const auto& middle = plain.parties[kMiddle];
    report.fact(
        "oom-score-ranks-memory",
        "the kernel ranks processes for killing by the memory they hold, and oom_score_adj moves one up "
        "(1000: first)",
        big.oom_score >= middle.oom_score && points(plain, big) > points(plain, middle) &&
            volunteered.parties[kMiddle].oom_score > volunteered.parties[kLargest].oom_score,
        fmt::format("the process with {:.1f} MiB resident: {} points, oom_score {}; with {:.1f} MiB: {} points, "
                    "oom_score {}; with oom_score_adj 1000 the second scores {} against the first's {}",
                    static_cast<double>(big.rss_kib) / 1024, points(plain, big), big.oom_score,
                    static_cast<double>(middle.rss_kib) / 1024, points(plain, middle), middle.oom_score,
                    volunteered.parties[kMiddle].oom_score, volunteered.parties[kLargest].oom_score));
    if (!plain.in_group) return;
    auto victims = [](const Scenario& s) {
      std::string names;
      for (int role = 0; role < kRoles; ++role)
        if (s.parties[role].killed) names += (names.empty() ? "" : ", ") + std::string(role_name(role));
      return names.empty() ? std::string("none") : names;
    };
    const long expected_growth = growth();
    report.fact(
        "oom-kills-the-largest-not-the-asker",
        "when a group's memory runs out and nothing can be evicted, the OOM killer kills the process with "
        "the most memory, not the one that asked for more, and that one carries on",
        plain.parties[kLargest].killed && !plain.parties[kMiddle].killed && !plain.parties[kGrower].killed &&
            plain.grew_mib == expected_growth && plain.oom_kills == 1,
        fmt::format("killed: {}; the grower {} after {} of {} MiB more; the group's oom_kill counter: {}{}",
                    victims(plain), plain.parties[kGrower].fate, plain.grew_mib, expected_growth, plain.oom_kills,
                    plain.kernel_said.empty() ? "" : "; the kernel: " + plain.kernel_said.back()));
    report.fact(
        "oom-score-adj-chooses-the-victim",
        "oom_score_adj = 1000 makes a process the OOM killer's first choice, though another holds more",
        volunteered.parties[kMiddle].killed && !volunteered.parties[kLargest].killed && volunteered.oom_kills >= 1,
        fmt::format("killed: {}; the group's oom_kill counter: {}{}", victims(volunteered), volunteered.oom_kills,
                    volunteered.kernel_said.empty() ? "" : "; the kernel: " + volunteered.kernel_said.back()));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "oom",
      .purpose = "the OOM killer in a memory cgroup of the lab's own: which process it kills, and why",
      .claim = "The notes on thrashing: \"The solution is often to start randomly killing processes using the\n"
               "most memory.\" Here three processes in a group with a memory limit and no swap ask for more\n"
               "than the limit, and the kernel picks one to kill.",
      .explain = "When a page must be allocated and none can be freed (no swap, so anonymous memory cannot be\n"
                 "evicted; no clean file pages left to drop), the kernel's out-of-memory killer ends a process\n"
                 "with SIGKILL to get its memory back. It is not random: each candidate gets points, its\n"
                 "resident memory plus its swap and page tables, in pages, plus oom_score_adj (-1000 .. 1000)\n"
                 "times the memory available / 1000; the most points loses. /proc/PID/oom_score shows the\n"
                 "same points scaled to the machine's memory and swap, (1000 + points x 1000 / its pages) x\n"
                 "2/3: 0..2000, a process holding almost nothing scores 666.\n\n"
                 "The lab makes a memory cgroup of its own under the cgroup it runs in, sets its limit\n"
                 "(--limit MiB, cgroup v2 memory.max or v1 memory.limit_in_bytes), and starts three processes\n"
                 "in it: one holding half the limit, one a quarter, and one that then grows 1 MiB at a time\n"
                 "by three eighths: together they need 9/8 of the limit. The grower's allocation is the one that fails "
                 "to find memory,\n"
                 "but the victim is the largest; the grower carries on. A second run gives the middle process\n"
                 "oom_score_adj = 1000 (any process may raise its own), and it goes first instead. Either\n"
                 "way one kill is enough, and the group's counter says so. Within a\n"
                 "group the OOM killer looks only at the group's processes, and its points are relative to the\n"
                 "group's limit: nothing outside is touched. The group's own counter (memory.oom_control or\n"
                 "memory.events oom_kill) and, when readable, the kernel log say what happened.\n\n"
                 "Without a memory controller, or as a user who may not make groups, the lab runs no OOM at\n"
                 "all (it would be the whole machine's) and shows only the ranking.\n\n"
                 "Questions: why does the kernel not kill the process whose allocation failed? What should a\n"
                 "database set its oom_score_adj to, and a batch job? What would swap change?",
  });
  const long& limit =
      lab.integer_option("--limit", "The group's memory limit, MiB", {.full = 128, .quick = 64}, 16, 4096);
  const auto& cgroup =
      lab.choice_option("--cgroup", "auto: use the memory controller if there is one; none: ranking only",
                        {"auto", "none"}, {.full = {"auto"}, .quick = {"auto"}});
  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    if (cgroup.size() != 1) throw oslab::UsageError("--cgroup: give one of auto, none");
    if (oslab::kThreadSanitizer)
      throw oslab::SkipError("built with ThreadSanitizer, whose shadow memory is charged to the group too");
    oslab::require_memory_mib(1.25 * static_cast<double>(limit), fmt::format("--limit {}", limit));
    experiment.emplace(Experiment{lab, limit, cgroup[0] == "auto"});
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        Experiment& e = *experiment;
        e.measure(report);
        e.tables(report);
        e.verdicts(report);
        report.show_results_table = false;
      },
      prepare);
}
