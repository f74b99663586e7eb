// oslab-fork: what it costs to create a process or a thread, and how that cost grows with
// the memory the parent has touched.
//
// Try:     oslab-fork                       every method, parent memory 0, 64, 256, 1024 MiB
//          oslab-fork --rss 0,512 --methods fork,vfork --iterations 50
//          oslab-fork --huge-pages          the same with the parent's memory in 2 MiB pages
// Expect:  fork copies the parent's page tables and marks every page copy-on-write, so its
//          cost grows with the parent's memory; vfork and clone(CLONE_VM) share the parent's
//          memory and do not. vfork+exec beats fork+exec for the same reason. A thread is the
//          cheapest of all. In a virtual machine fork is many times slower than on bare metal.
// Compare: oslab-cow (what happens after fork when pages are written), oslab-clone-flags
//          (what each clone flag shares).

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
#include <functional>
#include <map>
#include <optional>

#include <fmt/format.h>

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

// The child stack for the clone methods (with CLONE_VM|CLONE_VFORK the parent is suspended
// while the child uses it, so one stack serves every operation).
alignas(64) char g_clone_stack[64 * 1024];
char* clone_stack_top() {
  return g_clone_stack + sizeof g_clone_stack;
}

// One operation of each method: create a task, let it end, reap it. Everything a child does
// between fork and _exit/exec is async-signal-safe. `exec_argv` is oslab-exec-target's.
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

// One way of creating a task.
struct Method {
  std::string key;    // for --methods
  std::string label;  // the result's name
  std::string what;   // what one sample includes
  void (*create_once)(char* const* exec_argv);
  bool execs = false;
};

const std::vector<Method> kMethods = {
    {"fork", "fork+exit+wait", "fork(); child _exit(0); parent waitpid()", fork_exit_wait},
    {"vfork", "vfork+exit+wait", "vfork(); child _exit(0); parent waitpid()", vfork_exit_wait},
    {"clone", "clone(SIGCHLD)+exit+wait", "clone(SIGCHLD) with a child stack; child returns; parent waitpid()",
     clone_exit_wait},
    {"clone-vm", "clone(CLONE_VM|CLONE_VFORK)+exit+wait",
     "clone(CLONE_VM|CLONE_VFORK|SIGCHLD); child returns; parent waitpid()", clone_vm_exit_wait},
    {"posix_spawn", "posix_spawn+wait", "posix_spawn() of oslab-exec-target (exits 0); parent waitpid()",
     posix_spawn_wait, true},
    {"fork-exec", "fork+exec+wait", "fork(); child execve(oslab-exec-target); it exits 0; parent waitpid()",
     fork_exec_wait, true},
    {"vfork-exec", "vfork+exec+wait", "vfork(); child execve(oslab-exec-target); it exits 0; parent waitpid()",
     vfork_exec_wait, true},
    {"pthread", "pthread_create+join", "pthread_create() of a thread that returns at once; pthread_join()",
     pthread_create_join},
};

const Method& method_of(const std::string& key) {
  return *std::find_if(kMethods.begin(), kMethods.end(), [&](const Method& m) { return m.key == key; });
}

double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  double size_pages = 0, resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * static_cast<double>(oslab::page_size()) / (1024.0 * 1024.0);
}

const oslab::Result* find(const std::vector<oslab::Result>& results, const std::string& label, long touched) {
  for (const auto& r : results)
    if (r.name == label && r.params.value("touched_mib", -1L) == touched) return &r;
  return nullptr;
}

std::vector<std::string> parse_methods(const std::string& text) {
  std::vector<std::string> keys;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string key = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    bool known = std::any_of(kMethods.begin(), kMethods.end(), [&](const Method& m) { return m.key == key; });
    if (!known) {
      std::string all;
      for (const auto& m : kMethods) all += (all.empty() ? "" : ",") + m.key;
      throw oslab::UsageError(fmt::format("--methods: unknown method '{}' (known: {})", key, all));
    }
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return keys;
}

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "fork",
      .purpose = "cost of fork, vfork, clone, posix_spawn, exec and pthread_create vs the parent's memory",
      .claim = "The notes: fork() copies a process lazily (copy-on-write), vfork() does not copy at all\n"
               "and suits vfork()+exec(), and threads are created faster than processes.\n"
               "Here each method creates a task that ends at once, and the parent reaps it; the parent\n"
               "first touches --rss MiB of private memory, so that there is something to copy.",
      .explain = "fork() does not copy the parent's memory, but it does copy its page tables: for every\n"
                 "4 KiB page the parent has touched, the kernel writes a page-table entry in the child\n"
                 "and write-protects the parent's (that is copy-on-write), and the child's exit tears\n"
                 "them down again. So fork+exit costs time in proportion to the parent's resident\n"
                 "memory. vfork() and clone(CLONE_VM|CLONE_VFORK) give the child the parent's address\n"
                 "space itself: nothing is copied, and the parent waits until the child execs or exits.\n"
                 "posix_spawn() in glibc is built on clone(CLONE_VM|CLONE_VFORK). pthread_create() makes a\n"
                 "task in the same process: a stack (cached by glibc) and a clone() with CLONE_THREAD.\n\n"
                 "Each sample is one whole operation (create, end, reap), timed with CLOCK_MONOTONIC;\n"
                 "faults and context switches come from getrusage: 'child' counts are those of the\n"
                 "reaped children (RUSAGE_CHILDREN), the others the parent's own. The parent's memory is\n"
                 "madvise(MADV_NOHUGEPAGE) unless --huge-pages: 2 MiB pages need 512x fewer entries, and\n"
                 "fork's growth nearly disappears.\n\n"
                 "Questions: why does fork+exec grow with memory even though exec throws the copy away?\n"
                 "Why is vfork+exec flat? How many page-table entries does 1 GiB need with 4 KiB pages?",
      .pins_cpus = true,
  });
  std::string rss_text = "0,64,256,1024";
  std::string methods_text = "fork,vfork,clone,clone-vm,posix_spawn,fork-exec,vfork-exec,pthread";
  bool huge_pages = false;
  double budget_s = 1.0;
  lab.cli().add_option("--rss", rss_text,
                       "Parent memory to touch before creating, MiB, comma-separated (--quick: 0,256)");
  lab.cli().add_option("--methods", methods_text, "Methods to measure, comma-separated");
  lab.cli().add_flag("--huge-pages", huge_pages, "Let the parent's memory use transparent huge pages");
  lab.cli()
      .add_option("--budget", budget_s, "Seconds to spend on each method and size at most (--quick: 0.15)")
      ->check(CLI::Range(0.01, 600.0));

  std::vector<long> sizes;
  std::vector<std::string> methods;
  std::string exec_target;
  std::vector<char*> exec_argv;
  oslab::SamplingPlan plan;
  auto prepare = [&](oslab::Report& report) {
    const bool quick = lab.options().quick;
    if (quick && !lab.cli().count("--rss")) rss_text = "0,256";
    if (quick && !lab.cli().count("--budget")) budget_s = 0.15;
    sizes = oslab::parse_number_list(rss_text, "--rss", 0, 1L << 20);
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    oslab::require_memory_mib(static_cast<double>(sizes.back()), fmt::format("--rss {}", sizes.back()));
    methods = parse_methods(methods_text);
    if (huge_pages && !oslab::machine().has("thp"))
      throw oslab::SkipError("--huge-pages: transparent huge pages are not available (" + oslab::machine().thp_mode +
                             ")");

    bool any_exec =
        std::any_of(methods.begin(), methods.end(), [](const std::string& key) { return method_of(key).execs; });
    if (any_exec) {
      exec_target = oslab::helper_path("oslab-exec-target");
      exec_argv = {exec_target.data(), nullptr};
    }

    plan.warmup = 2;
    plan.min_samples = 5;
    plan.max_samples = lab.iterations(200, 30);
    if (lab.options().iterations > 0) plan.min_samples = plan.max_samples;
    plan.budget = std::chrono::milliseconds(static_cast<long>(budget_s * 1000));
    report.params["rss_mib"] = sizes;
    report.params["methods"] = methods;
    report.params["huge_pages"] = huge_pages;
    report.params["max_samples"] = plan.max_samples;
    report.params["budget_s"] = budget_s;
  };

  return lab.main(argc, argv, prepare, [&](oslab::Report& report) {
    std::optional<oslab::ScopedAffinity> pinned;
    if (!lab.options().cpus.empty()) pinned.emplace(lab.options().cpus);

    for (long touched : sizes) {
      oslab::Mapping memory;
      if (touched > 0) {
        memory = oslab::Mapping::anonymous(static_cast<size_t>(touched) << 20);
        check_errno("madvise", ::madvise(memory.data(), memory.size(), huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE));
        oslab::touch_pages(memory.bytes());
      }
      const double rss = resident_mib();
      if (!lab.options().json)
        fmt::print(stderr, "measuring with {} MiB touched (resident {:.0f} MiB)...\n", touched, rss);
      for (const auto& key : methods) {
        const Method& method = method_of(key);
        char* const* args = exec_argv.data();
        oslab::Measurement m = oslab::measure(plan, [&](int64_t batch) {
          for (int64_t i = 0; i < batch; ++i) method.create_once(args);
        });
        oslab::Result& result = report.add(
            method.label, {{"touched_mib", touched}, {"parent_rss_mib", std::round(rss)}, {"huge_pages", huge_pages}},
            m, method.what);
        result.headline = (key == "fork" || key == "vfork") && (touched == sizes.front() || touched == sizes.back());
      }
    }

    // The story in two tables: median time, and the children's page faults.
    oslab::Table times{"Median time per operation (create, end, reap), by parent memory touched",
                       {"method"},
                       {},
                       "One operation = one task created and reaped; 95% CI of each median in --json."};
    oslab::Table faults{"Page faults per operation: parent + child (minor)", {"method"}, {}, ""};
    for (long touched : sizes) {
      times.header.push_back(fmt::format("{} MiB", touched));
      faults.header.push_back(fmt::format("{} MiB", touched));
    }
    for (const auto& key : methods) {
      const Method& method = method_of(key);
      std::vector<std::string> time_row{method.label}, fault_row{method.label};
      for (long touched : sizes) {
        const oslab::Result* r = find(report.results(), method.label, touched);
        time_row.push_back(oslab::format_duration(r->summary.p50));
        fault_row.push_back(fmt::format("{} + {}", oslab::format_number(r->counters.at("minor_faults")),
                                        oslab::format_number(r->counters.at("child_minor_faults"))));
      }
      times.rows.push_back(time_row);
      faults.rows.push_back(fault_row);
    }
    report.table(times);
    report.table(faults);
    report.show_results_table = false;

    const long smallest = sizes.front(), largest = sizes.back();
    auto p50 = [&](const std::string& key, long touched) -> double {
      const oslab::Result* r = find(report.results(), method_of(key).label, touched);
      return r ? r->summary.p50 : 0;
    };
    auto has = [&](const std::string& key) { return std::find(methods.begin(), methods.end(), key) != methods.end(); };

    const std::string growth_claim = "fork cost grows with the parent's memory; vfork and CLONE_VM do not";
    if (largest - smallest < 64 || !has("fork") || !has("vfork")) {
      report.skip(growth_claim, "needs fork and vfork, and --rss sizes at least 64 MiB apart");
    } else {
      // "Does not grow" means nothing proportional to memory is copied: the extra cost of the
      // sharing methods must be a small fraction (under 5%) of fork's extra cost.
      auto growth = [&](const std::string& key) { return p50(key, largest) / p50(key, smallest); };
      auto extra = [&](const std::string& key) { return p50(key, largest) - p50(key, smallest); };
      const double fork_extra = extra("fork");
      std::vector<std::string> sharing{"vfork"};
      if (has("clone-vm")) sharing.push_back("clone-vm");
      bool holds = growth("fork") >= 2.0;
      std::string others;
      for (const auto& key : sharing) {
        holds = holds && extra(key) < 0.05 * fork_extra;
        others += fmt::format(", {} {:.2f}x (+{}, {:.1f}% of fork's growth)", key, growth(key),
                              oslab::format_duration(std::max(0.0, extra(key))),
                              100.0 * std::max(0.0, extra(key)) / std::max(fork_extra, 1.0));
      }
      report.verdict(growth_claim, holds,
                     fmt::format("from {} to {} MiB touched, median fork+exit+wait grew {:.1f}x ({} -> {}){} "
                                 "(holds when fork grows at least 2x and the others by under 5% of fork's growth{})",
                                 smallest, largest, growth("fork"), oslab::format_duration(p50("fork", smallest)),
                                 oslab::format_duration(p50("fork", largest)), others,
                                 huge_pages ? "; with --huge-pages fork's growth is expected to be small" : ""));
    }
    const std::string exec_claim = "vfork+exec is cheaper than fork+exec";
    if (has("fork-exec") && has("vfork-exec")) {
      double at_largest = p50("fork-exec", largest) / p50("vfork-exec", largest);
      double at_smallest = p50("fork-exec", smallest) / p50("vfork-exec", smallest);
      report.verdict(exec_claim, at_largest > 1.0,
                     fmt::format("median fork+exec / vfork+exec = {:.2f}x at {} MiB touched{}", at_largest, largest,
                                 largest != smallest ? fmt::format(", {:.2f}x at {} MiB", at_smallest, smallest) : ""));
    } else {
      report.skip(exec_claim, "needs the fork-exec and vfork-exec methods");
    }
    const std::string thread_claim = "creating a thread is cheaper than creating a process";
    if (has("pthread") && has("fork")) {
      double factor = p50("fork", smallest) / p50("pthread", smallest);
      report.verdict(thread_claim, factor > 1.0,
                     fmt::format("at {} MiB touched, median fork+exit+wait is {:.1f}x pthread_create+join ({} vs {})",
                                 smallest, factor, oslab::format_duration(p50("fork", smallest)),
                                 oslab::format_duration(p50("pthread", smallest))));
    } else {
      report.skip(thread_claim, "needs the fork and pthread methods");
    }
    const auto& m = oslab::machine();
    if (m.is_virtual() && has("fork"))
      report.note(fmt::format(
          "this is a virtual machine ({}): a null system call costs {} and fork+exit+wait of a small process {}. "
          "On bare metal these are typically 50-150 ns and 50-150 us: page-table updates and exits to the "
          "hypervisor make process creation dear in a guest. Compare ratios, not absolute times, across machines.",
          m.virtualization, oslab::format_duration(m.null_syscall_ns), oslab::format_duration(p50("fork", smallest))));
    report.note(huge_pages
                    ? "the parent's memory was madvise(MADV_HUGEPAGE)d (transparent huge pages: " + m.thp_mode + ")"
                    : "the parent's memory was madvise(MADV_NOHUGEPAGE)d: 4 KiB pages, one page-table entry each");
  });
}
