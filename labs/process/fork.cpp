// oslab-fork: what it costs to create a process or a thread, and how that cost grows with
// the memory the parent has touched.
//
// Try:     oslab-fork                       every method, parent memory 0, 64, 256, 1024 MiB
//          oslab-fork --rss 0,512 --methods fork,vfork --iterations 50
//          oslab-fork --huge-pages          the same with the parent's memory in 2 MiB pages
//          oslab-fork --placement unpinned  let the scheduler place parent and child
// Expect:  fork copies the parent's page tables and marks every page copy-on-write, so its
//          cost grows with the parent's memory; vfork and clone(CLONE_VM) share the parent's
//          memory and do not. vfork+exec beats fork+exec for the same reason. A thread is the
//          cheapest of all. Forking the lab's own C++ process costs more than forking a small
//          C program: fork copies every mapping the parent has.
// Compare: oslab-cow (what happens after fork when pages are written), oslab-clone-flags
//          (what each clone flag shares).
//
// The parent that creates the tasks is a small static C program (oslab-fork-driver, about
// ten mappings) that this lab starts and drives over a pipe, one per memory size; the same
// methods from this lab's own process are a second, named row ("parent=lab").

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "fork_driver.h"
#include "fork_driver_client.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/measure.hpp"
#include "oslab/process.hpp"

extern char** environ;

namespace {

using oslab::check_errno;
using oslab::check_errnum;

// ---- The same operations from this lab's own process (the "parent=lab" rows) ----------

void expect_clean_exit(pid_t pid, const char* method) {
  int wait_status = 0;
  pid_t rc;
  do rc = ::waitpid(pid, &wait_status, 0);  // bounded by the lab's watchdog (--timeout)
  while (rc == -1 && errno == EINTR);
  check_errno("waitpid", rc);
  auto status = oslab::ExitStatus::decode(wait_status);
  if (!status.success()) throw std::runtime_error(fmt::format("{}: child {}", method, status.describe()));
}

int child_returns(void*) {
  return 0;
}
void* thread_returns(void*) {
  return nullptr;
}

// With CLONE_VM|CLONE_VFORK the parent is suspended while the child uses this stack, so one
// stack serves every operation.
alignas(64) char g_clone_stack[64 * 1024];
char* clone_stack_top() {
  return g_clone_stack + sizeof g_clone_stack;
}

// Each creates a task that ends at once and reaps it. A child does only async-signal-safe
// things between fork and _exit/exec. vfork is called where it returns, never through a
// template or a pointer that could lose its returns-twice semantics.
void fork_exit_wait(char* const*) {
  pid_t pid = check_errno("fork", ::fork());
  if (pid == 0) _exit(0);
  expect_clean_exit(pid, "fork");
}
void vfork_exit_wait(char* const*) {
  pid_t pid = check_errno("vfork", ::vfork());
  if (pid == 0) _exit(0);
  expect_clean_exit(pid, "vfork");
}
void clone_exit_wait(char* const*) {
  pid_t pid = check_errno("clone", ::clone(child_returns, clone_stack_top(), SIGCHLD, nullptr));
  expect_clean_exit(pid, "clone(SIGCHLD)");
}
void clone_vm_exit_wait(char* const*) {
  pid_t pid =
      check_errno("clone", ::clone(child_returns, clone_stack_top(), CLONE_VM | CLONE_VFORK | SIGCHLD, nullptr));
  expect_clean_exit(pid, "clone(CLONE_VM|CLONE_VFORK)");
}
void posix_spawn_wait(char* const* exec_argv) {
  pid_t pid = 0;
  check_errnum("posix_spawn", ::posix_spawn(&pid, exec_argv[0], nullptr, nullptr, exec_argv, environ));
  expect_clean_exit(pid, "posix_spawn");
}
void fork_exec_wait(char* const* exec_argv) {
  pid_t pid = check_errno("fork", ::fork());
  if (pid == 0) {
    ::execve(exec_argv[0], exec_argv, environ);
    oslab::child_fail("execve", errno);
  }
  expect_clean_exit(pid, "fork+exec");
}
void vfork_exec_wait(char* const* exec_argv) {
  pid_t pid = check_errno("vfork", ::vfork());
  if (pid == 0) {
    ::execve(exec_argv[0], exec_argv, environ);
    oslab::child_fail("execve", errno);
  }
  expect_clean_exit(pid, "vfork+exec");
}
void pthread_create_join(char* const*) {
  pthread_t thread;
  check_errnum("pthread_create", ::pthread_create(&thread, nullptr, thread_returns, nullptr));
  check_errnum("pthread_join", ::pthread_join(thread, nullptr));
}

// ---- The methods ------------------------------------------------------------------------

struct Method {
  std::string key;    // for --methods
  std::string label;  // the result's name
  std::string what;   // what one sample includes ("{target}": the exec target)
  void (*in_lab)(char* const* exec_argv);
  int driver_static, driver_dynamic;  // the driver's method numbers (dynamic: exec methods only)
  bool execs = false;
};

const std::vector<Method> kMethods = {
    {"fork", "fork+exit+wait", "fork(); child _exit(0); parent waitpid()", fork_exit_wait, M_FORK, -1},
    {"vfork", "vfork+exit+wait", "vfork(); child _exit(0); parent waitpid()", vfork_exit_wait, M_VFORK, -1},
    {"clone", "clone(SIGCHLD)+exit+wait", "clone(SIGCHLD) with a child stack; child returns 0; parent waitpid()",
     clone_exit_wait, M_CLONE, -1},
    {"clone-vm", "clone(CLONE_VM|CLONE_VFORK)+exit+wait",
     "clone(CLONE_VM|CLONE_VFORK|SIGCHLD); child returns 0; parent waitpid()", clone_vm_exit_wait, M_CLONE_VM, -1},
    {"posix_spawn", "posix_spawn+wait", "posix_spawn() of {target}, which exits 0; parent waitpid()", posix_spawn_wait,
     M_POSIX_SPAWN, M_POSIX_SPAWN_DYNAMIC, true},
    {"fork-exec", "fork+exec+wait", "fork(); child execve({target}), which exits 0; parent waitpid()", fork_exec_wait,
     M_FORK_EXEC, M_FORK_EXEC_DYNAMIC, true},
    {"vfork-exec", "vfork+exec+wait", "vfork(); child execve({target}), which exits 0; parent waitpid()",
     vfork_exec_wait, M_VFORK_EXEC, M_VFORK_EXEC_DYNAMIC, true},
    {"pthread", "pthread_create+join", "pthread_create() of a thread that returns at once; pthread_join()",
     pthread_create_join, M_PTHREAD, -1},
};

const Method& method_of(const std::string& key) {
  return *std::find_if(kMethods.begin(), kMethods.end(), [&](const Method& m) { return m.key == key; });
}

std::vector<std::string> method_keys() {
  std::vector<std::string> keys;
  for (const auto& m : kMethods) keys.push_back(m.key);
  return keys;
}

int count_mappings() {
  std::ifstream maps("/proc/self/maps");
  return static_cast<int>(std::count(std::istreambuf_iterator<char>(maps), {}, '\n'));
}

// ---- The lean parent: fork_driver_client.hpp (oslab-threads uses it too) ----------------

using Driver = oslab::ForkDriver;

// ---- The experiment ---------------------------------------------------------------------

struct Options {
  std::vector<long> sizes;
  std::vector<std::string> methods, targets, parents;
  bool huge_pages = false;
};

// One measured cell: a method, from a parent, at a memory size, in a placement.
struct Case {
  const Method* method;
  std::string target;  // "static" or "dynamic" for exec methods, "" otherwise
  long touched;
  oslab::Placement placement;
  bool lab_parent;
};

std::string what_of(const Case& c) {
  std::string what = c.method->what;
  auto at = what.find("{target}");
  if (at != std::string::npos)
    what.replace(at, 8, c.target == "static" ? "oslab-exec-target (static)" : "oslab-exec-target-dynamic (dynamic)");
  return what + (c.lab_parent ? "; from oslab-fork's own process" : "; from oslab-fork-driver, a small static program");
}

struct Experiment {
  const oslab::Lab& lab;
  Options options;
  std::string static_target, dynamic_target;
  std::vector<Case> cases;
  std::map<long, double> resident_mib;  // of the lean parent, per size
  int lean_mappings = 0, lab_mappings = 0;

  std::vector<int> cpus_of(oslab::Placement placement) const {
    return oslab::assign_cpus(placement, 1, lab.options().cpus).party_cpus.front();
  }

  void plan_cases() {
    for (oslab::Placement placement : lab.options().placements)
      for (const auto& parent : options.parents)
        for (long touched : options.sizes) {
          if (parent == "lab" && touched != options.sizes.front()) continue;
          for (const auto& key : options.methods) {
            const Method& m = method_of(key);
            for (const auto& target : m.execs ? options.targets : std::vector<std::string>{""})
              cases.push_back({&m, target, touched, placement, parent == "lab"});
          }
        }
  }

  // Takes every case's samples in rotation, block by block (measure.hpp).
  void measure(oslab::Report& report) {
    // One lean parent per size for processes, and one for threads: a process that has made a
    // thread keeps its stack mapped, and fork would then copy that too.
    std::map<std::pair<long, bool>, std::unique_ptr<Driver>> drivers;
    const std::string driver_path = oslab::helper_path("oslab-fork-driver");
    for (const Case& c : cases) {
      if (c.lab_parent) continue;
      auto key = std::pair{c.touched, c.method->key == "pthread"};
      if (drivers.count(key)) continue;
      auto driver = std::make_unique<Driver>(driver_path, static_target, dynamic_target);
      if (!lab.options().json)
        fmt::print(stderr, "touching {} MiB in a lean parent{}...\n", c.touched, key.second ? " (for threads)" : "");
      auto [resident, mappings] = driver->touch(c.touched, options.huge_pages);
      resident_mib[c.touched] = resident;
      if (!key.second && c.touched == options.sizes.front()) lean_mappings = mappings;
      drivers[key] = std::move(driver);
    }
    lab_mappings = count_mappings();
    report.params["lean_parent_mappings"] = lean_mappings;
    report.params["lab_parent_mappings"] = lab_mappings;

    std::vector<char*> exec_argv(2, nullptr);
    oslab::Interleaver interleaver(lab.plan(), cases.size());
    interleaver.run([&](size_t index, int samples, oslab::Measurement& into) {
      const Case& c = cases[index];
      const std::vector<int> cpus = cpus_of(c.placement);
      if (c.lab_parent) {
        oslab::ScopedAffinity pinned(cpus);
        exec_argv[0] = (c.target == "dynamic" ? dynamic_target : static_target).data();
        oslab::measure_block(
            [&](int64_t batch) {
              for (int64_t i = 0; i < batch; ++i) c.method->in_lab(exec_argv.data());
            },
            samples, 1, oslab::Usage::process, into);
        return;
      }
      Driver& driver = *drivers.at({c.touched, c.method->key == "pthread"});
      oslab::set_affinity(cpus, driver.pid());  // between blocks: never inside a timed operation
      driver.block(c.target == "dynamic" ? c.method->driver_dynamic : c.method->driver_static, samples, into);
    });

    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      nlohmann::json params = {{"touched_mib", c.touched},
                               {"parent", c.lab_parent ? "lab" : "lean"},
                               {"parent_mappings", c.lab_parent ? lab_mappings : lean_mappings},
                               {"huge_pages", options.huge_pages}};
      if (!c.lab_parent) params["parent_rss_mib"] = std::round(resident_mib[c.touched]);
      if (!c.target.empty()) params["exec_target"] = c.target;
      params.update(oslab::assign_cpus(c.placement, 1, lab.options().cpus).to_json());
      const bool headline = !c.lab_parent && c.placement == lab.options().placements.front() &&
                            (c.method->key == "fork" || c.method->key == "vfork" || c.method->key == "pthread" ||
                             (c.method->key == "posix_spawn" && c.target == "static")) &&
                            (c.touched == options.sizes.front() || c.touched == options.sizes.back());
      report.add(c.method->label, params, interleaver.measurements()[i], {.what = what_of(c), .headline = headline});
    }
  }

  std::string row_label(const Method& m, const std::string& target) const {
    return target.empty() ? m.label : fmt::format("{} ({})", m.label, target);
  }

  nlohmann::json selector(const std::string& target, long touched, oslab::Placement placement,
                          const std::string& parent = "lean") const {
    nlohmann::json s = {{"touched_mib", touched}, {"placement", oslab::to_string(placement)}, {"parent", parent}};
    if (!target.empty()) s["exec_target"] = target;
    return s;
  }

  void tables(oslab::Report& report) const {
    for (oslab::Placement placement : lab.options().placements) {
      oslab::Table times{
          fmt::format("Median time per operation (create, end, reap) from the lean parent, {}",
                      oslab::assign_cpus(placement, 1, lab.options().cpus).describe()),
          {"method"},
          {},
          fmt::format("The lean parent has {} mappings; 95% intervals of each median in --json.", lean_mappings)};
      oslab::Table faults{fmt::format("Minor page faults per operation, parent + children, {}", to_string(placement)),
                          {"method"},
                          {},
                          ""};
      for (long touched : options.sizes) {
        times.header.push_back(fmt::format("{} MiB", touched));
        faults.header.push_back(fmt::format("{} MiB", touched));
      }
      for (const auto& key : options.methods) {
        const Method& m = method_of(key);
        for (const auto& target : m.execs ? options.targets : std::vector<std::string>{""}) {
          std::vector<std::string> time_row{row_label(m, target)}, fault_row{row_label(m, target)};
          for (long touched : options.sizes) {
            const oslab::Result& r = report.get(m.label, selector(target, touched, placement));
            time_row.push_back(oslab::format_duration(r.summary.p50));
            fault_row.push_back(fmt::format("{} + {}", oslab::format_number(r.counters.at("minor_faults")),
                                            oslab::format_number(r.counters.at("child_minor_faults"))));
          }
          times.rows.push_back(time_row);
          faults.rows.push_back(fault_row);
        }
      }
      report.table(times);
      if (placement == lab.options().placements.front()) report.table(faults);
    }
    if (std::find(options.parents.begin(), options.parents.end(), "lab") == options.parents.end()) return;
    oslab::Table parents{fmt::format("The parent matters: the lean parent ({} mappings) vs oslab-fork itself ({} "
                                     "mappings), {} MiB touched",
                                     lean_mappings, lab_mappings, options.sizes.front()),
                         {"method", "placement", "lean parent", "oslab-fork", "ratio"},
                         {},
                         "fork copies every mapping of the parent: a C++ program with its libraries costs more to "
                         "fork than a small C program."};
    for (oslab::Placement placement : lab.options().placements)
      for (const auto& key : options.methods) {
        const Method& m = method_of(key);
        for (const auto& target : m.execs ? options.targets : std::vector<std::string>{""}) {
          const auto& lean = report.get(m.label, selector(target, options.sizes.front(), placement));
          const auto& own = report.get(m.label, selector(target, options.sizes.front(), placement, "lab"));
          parents.rows.push_back({row_label(m, target), to_string(placement), oslab::format_duration(lean.summary.p50),
                                  oslab::format_duration(own.summary.p50),
                                  fmt::format("{:.2f}x", own.summary.p50 / lean.summary.p50)});
        }
      }
    report.table(parents);
  }

  void plots(oslab::Report& report) const {
    const nlohmann::json lean_pinned = {{"parent", "lean"},
                                        {"placement", oslab::to_string(lab.options().placements.front())}};
    report.plot({.id = "create-vs-memory",
                 .title = "Creating a task vs the parent's memory (lean parent, " +
                          std::string(oslab::to_string(lab.options().placements.front())) + ")",
                 .x_param = "touched_mib",
                 .x_label = "parent memory touched (MiB)",
                 .y_label = "median time per operation",
                 .where = lean_pinned,
                 .names = {"fork+exit+wait", "vfork+exit+wait", "clone(SIGCHLD)+exit+wait",
                           "clone(CLONE_VM|CLONE_VFORK)+exit+wait", "pthread_create+join"},
                 .log_y = true});
    nlohmann::json exec_where = lean_pinned;
    exec_where["exec_target"] = options.targets.front();
    report.plot({.id = "exec-vs-memory",
                 .title = "Starting a program vs the parent's memory (" + options.targets.front() + " target)",
                 .x_param = "touched_mib",
                 .x_label = "parent memory touched (MiB)",
                 .y_label = "median time per operation",
                 .where = exec_where,
                 .names = {"posix_spawn+wait", "fork+exec+wait", "vfork+exec+wait"},
                 .log_y = true});
    report.plot({.id = "fork-distribution",
                 .title = fmt::format("fork+exit+wait at {} MiB: pinned vs unpinned", options.sizes.front()),
                 .kind = "cdf",
                 .x_label = "time per operation",
                 .y_label = "fraction of samples",
                 .series = "placement",
                 .where = {{"parent", "lean"}, {"touched_mib", options.sizes.front()}},
                 .names = {"fork+exit+wait"},
                 .log_x = true});
  }

  bool has(const std::string& key) const {
    return std::find(options.methods.begin(), options.methods.end(), key) != options.methods.end();
  }

  void verdicts(oslab::Report& report) const {
    const oslab::Placement placement = lab.options().placements.front();
    const long smallest = options.sizes.front(), largest = options.sizes.back();
    const std::string where = fmt::format("lean parent, {}", to_string(placement));
    const std::string first_target = options.targets.front();
    auto result = [&](const std::string& key, long touched) -> const oslab::Summary& {
      const Method& m = method_of(key);
      return report.get(m.label, selector(m.execs ? first_target : "", touched, placement)).summary;
    };

    const std::string growth_id = options.huge_pages ? "fork-barely-grows-with-huge-pages" : "fork-grows-with-rss";
    const std::string growth_claim =
        options.huge_pages ? "with 2 MiB pages, fork's cost barely grows with the parent's memory (512x fewer "
                             "page-table entries to copy than with 4 KiB pages)"
                           : "fork's cost grows with the parent's memory; vfork's and clone(CLONE_VM)'s do not";
    if (largest - smallest < 64 || !has("fork") || !has("vfork")) {
      report.skip(growth_claim, "needs the fork and vfork methods, and --rss sizes at least 64 MiB apart");
    } else if (options.huge_pages) {
      // 1 GiB in 2 MiB pages is 512 entries: fork at the largest size stays within 2x of the smallest.
      const oslab::Estimate growth = oslab::ratio_of(result("fork", largest), result("fork", smallest));
      report.verdict(growth_id, growth_claim, growth, oslab::Compare::below, 2.0,
                     fmt::format("{}: from {} to {} MiB touched, fork+exit+wait went from {} to {}", where, smallest,
                                 largest, oslab::format_duration(result("fork", smallest).p50),
                                 oslab::format_duration(result("fork", largest).p50)));
    } else {
      // "Does not grow" means nothing proportional to memory is copied: the sharing methods'
      // extra cost must be a small fraction (under 5%) of fork's.
      const oslab::Estimate growth = oslab::ratio_of(result("fork", largest), result("fork", smallest));
      const oslab::Estimate fork_extra = oslab::difference_of(result("fork", largest), result("fork", smallest));
      std::vector<oslab::VerdictState> states{oslab::decide(growth, oslab::Compare::above, 2.0)};
      std::string others;
      std::vector<std::string> sharing{"vfork"};
      if (has("clone-vm")) sharing.emplace_back("clone-vm");
      for (const auto& key : sharing) {
        const oslab::Estimate extra = oslab::difference_of(result(key, largest), result(key, smallest));
        const oslab::Estimate share{extra.value / fork_extra.value, extra.low / std::max(fork_extra.high, 1.0),
                                    extra.high / std::max(fork_extra.low, 1.0)};
        states.push_back(oslab::decide(share, oslab::Compare::below, 0.05));
        others += fmt::format("; {} {} ({:.1f}% of fork's growth, interval {:.1f}% .. {:.1f}%)", key,
                              oslab::format_signed_duration(extra.value), 100 * share.value, 100 * share.low,
                              100 * share.high);
      }
      report.verdict(
          growth_id, growth_claim, oslab::all_of(states),
          fmt::format("{}: from {} to {} MiB touched, fork+exit+wait grew {:.1f}x ({} -> {}, interval "
                      "{:.1f}x .. {:.1f}x){} (holds when fork grows over 2x and each other method by "
                      "under 5% of fork's growth, interval included)",
                      where, smallest, largest, growth.value, oslab::format_duration(result("fork", smallest).p50),
                      oslab::format_duration(result("fork", largest).p50), growth.low, growth.high, others));
    }

    const std::string exec_claim = "vfork+exec is cheaper than fork+exec";
    if (has("fork-exec") && has("vfork-exec")) {
      const oslab::Estimate at_largest = oslab::ratio_of(result("fork-exec", largest), result("vfork-exec", largest));
      const oslab::Estimate at_smallest =
          oslab::ratio_of(result("fork-exec", smallest), result("vfork-exec", smallest));
      report.verdict(
          "vfork-exec-cheaper", exec_claim, at_largest, oslab::Compare::above, 1.0,
          fmt::format("{}, {} exec target: median fork+exec / vfork+exec = {:.2f}x at {} MiB touched{}", where,
                      first_target, at_largest.value, largest,
                      largest != smallest ? fmt::format(", {:.2f}x at {} MiB", at_smallest.value, smallest) : ""));
    } else {
      report.skip(exec_claim, "needs the fork-exec and vfork-exec methods");
    }

    for (const std::string process : {"fork", "vfork"}) {
      const std::string claim = fmt::format("creating a thread is cheaper than creating a process with {}", process);
      if (!has("pthread") || !has(process)) {
        report.skip(claim, fmt::format("needs the pthread and {} methods", process));
        continue;
      }
      const oslab::Estimate factor = oslab::ratio_of(result(process, smallest), result("pthread", smallest));
      report.verdict(fmt::format("thread-cheaper-than-{}", process), claim, factor, oslab::Compare::above, 1.0,
                     fmt::format("{}, {} MiB touched: {}+exit+wait is {:.2f}x pthread_create+join ({} vs {})", where,
                                 smallest, process, factor.value, oslab::format_duration(result(process, smallest).p50),
                                 oslab::format_duration(result("pthread", smallest).p50)));
    }
  }

  void notes(oslab::Report& report) const {
    const auto& m = oslab::machine();
    if (m.is_virtual())
      report.note(
          fmt::format("this is a virtual machine ({}); {}. Absolute costs of system calls and process "
                      "creation differ several-fold between machines and hypervisors: compare ratios, not "
                      "absolute times, across machines.",
                      m.virtualization, m.syscall_note()));
    report.note(options.huge_pages
                    ? "the parent's memory was madvise(MADV_HUGEPAGE)d (transparent huge pages: " + m.thp_mode + ")"
                    : "the parent's memory was madvise(MADV_NOHUGEPAGE)d: 4 KiB pages, one page-table entry each");
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "fork",
      .purpose = "cost of fork, vfork, clone, posix_spawn, exec and pthread_create vs the parent's memory",
      .claim = "The notes: fork() copies a process lazily (copy-on-write); vfork() does not copy the parent's\n"
               "memory and suits vfork()+exec(); threads are created faster than processes.\n"
               "Here a small parent process creates a task that ends at once and reaps it, after first\n"
               "touching --rss MiB of private memory, so that there is something to copy.",
      .explain = "fork() does not copy the parent's memory, but it does copy its page tables: for every\n"
                 "4 KiB page the parent has touched, the kernel writes a page-table entry in the child\n"
                 "and write-protects the parent's (that is copy-on-write), and the child's exit tears\n"
                 "them down again. So fork+exit costs time in proportion to the parent's resident\n"
                 "memory, and to its number of mappings. vfork() and clone(CLONE_VM|CLONE_VFORK) give\n"
                 "the child the parent's address space itself: no memory and no page table is copied\n"
                 "(the fd table, the filesystem context and the signal handlers still are), and the\n"
                 "parent waits until the child execs or exits. posix_spawn() in glibc is built on\n"
                 "clone(CLONE_VM|CLONE_VFORK). pthread_create() makes a task in the same process: a\n"
                 "stack (cached by glibc) and a clone() with CLONE_THREAD.\n\n"
                 "The parent is oslab-fork-driver, a small static C program (about ten mappings), one\n"
                 "per memory size, that this lab drives over a pipe: forking the lab's own C++ process\n"
                 "would measure the lab, and the 'parent=lab' rows show by how much. The exec methods run\n"
                 "a program that exits at once, linked statically and dynamically (a dynamic program,\n"
                 "like most real ones, also maps its libraries). Each placement is its own row: pinned\n"
                 "to one CPU (the child inherits the parent's CPU and runs there) and unpinned (the\n"
                 "scheduler may wake the child on another CPU; runs can differ from each other).\n\n"
                 "Each sample is one whole operation (create, end, reap), timed with CLOCK_MONOTONIC\n"
                 "by the parent; all cases are measured in rotation, a block of samples at a time, and\n"
                 "the interval of each median comes from its blocks. Faults and context switches come\n"
                 "from getrusage: 'child' counts are those of the reaped children (RUSAGE_CHILDREN), the\n"
                 "others the parent's own. The parent's memory is madvise(MADV_NOHUGEPAGE) unless\n"
                 "--huge-pages: 2 MiB pages need 512x fewer entries, and fork's growth nearly disappears.\n\n"
                 "Questions: why does fork+exec grow with memory even though exec throws the copy away?\n"
                 "Why is vfork+exec flat? How many page-table entries does 1 GiB need with 4 KiB pages?\n"
                 "Why does forking oslab-fork itself cost more than forking the small driver?",
      .placements = {oslab::Placement::same_cpu, oslab::Placement::unpinned},
      .default_placements = {oslab::Placement::same_cpu, oslab::Placement::unpinned},
  });
  const auto& sizes = lab.list_option("--rss", "Parent memory to touch before creating, MiB, comma-separated",
                                      {.full = {0, 64, 256, 1024}, .quick = {0, 256}}, 0, 1L << 20);
  const auto& methods = lab.choice_option("--methods", "Methods to measure", method_keys(),
                                          {.full = method_keys(), .quick = method_keys()});
  const auto& targets = lab.choice_option("--exec-target", "Programs the exec methods run", {"static", "dynamic"},
                                          {.full = {"static", "dynamic"}, .quick = {"static"}});
  const auto& parents = lab.choice_option("--parents", "Which process creates the tasks", {"lean", "lab"},
                                          {.full = {"lean", "lab"}, .quick = {"lean"}});
  const bool& huge_pages = lab.flag("--huge-pages", "Let the parent's memory use transparent huge pages");
  lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 0.2, .quick = 0.04}, .warmup = 2});

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report&) {
    experiment.emplace(Experiment{lab, {}, {}, {}, {}, {}});
    Options& o = experiment->options;
    o.sizes = sizes;
    std::sort(o.sizes.begin(), o.sizes.end());
    o.sizes.erase(std::unique(o.sizes.begin(), o.sizes.end()), o.sizes.end());
    o.methods = methods;
    o.targets = targets;
    o.parents = parents;
    o.huge_pages = huge_pages;
    long total = 0;
    for (long size : o.sizes)
      total += size * (std::find(methods.begin(), methods.end(), "pthread") != methods.end() ? 2 : 1);
    oslab::require_memory_mib(static_cast<double>(total), fmt::format("--rss {}", oslab::format_param(sizes)));
    if (huge_pages && !oslab::machine().has("thp"))
      throw oslab::SkipError("--huge-pages: transparent huge pages are not available (" + oslab::thp_mode() + ")");
    experiment->static_target = oslab::helper_path("oslab-exec-target");
    experiment->dynamic_target = oslab::helper_path("oslab-exec-target-dynamic");
    experiment->plan_cases();
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->measure(report);
        experiment->tables(report);
        experiment->verdicts(report);
        experiment->plots(report);
        experiment->notes(report);
        report.show_results_table = false;
      },
      prepare);
}
