// oslab-syscall: the price of entering the kernel. A raw null system call, the clock read
// through the vDSO against the same clock through a real system call, one byte read from and
// written to /dev/null and through a pipe, beside a plain function call; the timer's own cost
// and resolution; the CPU-vulnerability mitigations that add work to every kernel entry.
//
// Try:     oslab-syscall
//          oslab-syscall --cpus 1 --iterations 500
//          oslab-syscall --json | jq '.results[] | {name, p50}'
// Expect:  a function call costs about a nanosecond; a null system call tens to hundreds of
//          nanoseconds (more with page-table isolation or in some virtual machines); the vDSO
//          clock read a few times less than the same read through syscall(); a pipe write+read
//          more than two null calls, since the kernel does real work for them.
// Compare: oslab-ctxswitch (a round trip that also switches tasks), perf bench syscall basic
//          (the same getppid loop).

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/lab.hpp"
#include "oslab/machine.hpp"
#include "oslab/syscalls.hpp"

namespace {

using oslab::check_errno;

// ---- The operations: each runs `batch` times, the measured loop free of dispatch --------

// The file descriptors the I/O operations use, opened once.
struct Files {
  oslab::UniqueFd dev_null;
  oslab::Pipe pipe;
};
Files* g_files = nullptr;

[[gnu::noinline]] int plain_function(int value) {
  asm volatile("" : "+r"(value));  // a real call with a real argument, never folded away
  return value + 1;
}

void function_calls(int64_t batch) {
  int value = 0;
  for (int64_t i = 0; i < batch; ++i) value = plain_function(value);
  asm volatile("" ::"r"(value));
}
void vdso_clock(int64_t batch) {
  timespec ts;
  for (int64_t i = 0; i < batch; ++i) ::clock_gettime(CLOCK_MONOTONIC, &ts);
}
void syscall_clock(int64_t batch) {
  timespec ts;
  for (int64_t i = 0; i < batch; ++i) check_errno("clock_gettime", ::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts));
}
void null_syscall(int64_t batch) {
  for (int64_t i = 0; i < batch; ++i) ::syscall(SYS_getppid);  // glibc's getppid() is the same call, never cached
}
void read_dev_null(int64_t batch) {
  char byte;
  for (int64_t i = 0; i < batch; ++i)
    if (check_errno("read(/dev/null)", ::read(g_files->dev_null.get(), &byte, 1)) != 0)
      throw std::runtime_error("read(/dev/null) returned data");
}
void write_dev_null(int64_t batch) {
  const char byte = 'x';
  for (int64_t i = 0; i < batch; ++i)
    if (check_errno("write(/dev/null)", ::write(g_files->dev_null.get(), &byte, 1)) != 1)
      throw std::runtime_error("write(/dev/null): short write");
}
void pipe_write_read(int64_t batch) {
  char byte = 'x';
  for (int64_t i = 0; i < batch; ++i) {
    if (check_errno("write(pipe)", ::write(g_files->pipe.write_end.get(), &byte, 1)) != 1)
      throw std::runtime_error("write(pipe): short write");
    if (check_errno("read(pipe)", ::read(g_files->pipe.read_end.get(), &byte, 1)) != 1)
      throw std::runtime_error("read(pipe): short read");
  }
}

struct Method {
  std::string key;    // for --methods
  std::string label;  // the result's name
  std::string what;   // what one operation is
  void (*op)(int64_t batch);
  int calls;  // system calls one operation must make (the vDSO's 0 is a claim the lab checks)
};

const std::vector<Method> kMethods = {
    {"function", "function call", "a call of a non-inlined function that returns its argument + 1", function_calls, 0},
    {"vdso-clock", "clock_gettime (vDSO)",
     "clock_gettime(CLOCK_MONOTONIC) through glibc, which reads the clock "
     "in the vDSO without entering the kernel",
     vdso_clock, 0},
    {"syscall-clock", "clock_gettime (system call)",
     "syscall(SYS_clock_gettime, CLOCK_MONOTONIC): the same clock "
     "read by the kernel",
     syscall_clock, 1},
    {"null", "null system call", "syscall(SYS_getppid): enter the kernel, read one field, return", null_syscall, 1},
    {"read-dev-null", "read /dev/null", "read(fd of /dev/null, 1 byte): returns 0 (end of file)", read_dev_null, 1},
    {"write-dev-null", "write /dev/null", "write(fd of /dev/null, 1 byte): the byte is discarded", write_dev_null, 1},
    {"pipe", "pipe write+read",
     "write(pipe, 1 byte) then read(pipe, 1 byte) by one thread: never blocks; per "
     "pair of calls",
     pipe_write_read, 2},
};

std::vector<std::string> method_keys() {
  std::vector<std::string> keys;
  for (const auto& m : kMethods) keys.push_back(m.key);
  return keys;
}

const Method& method_of(const std::string& key) {
  return *std::find_if(kMethods.begin(), kMethods.end(), [&](const Method& m) { return m.key == key; });
}

// ---- The experiment ---------------------------------------------------------------------

struct Experiment {
  const oslab::Lab& lab;
  std::vector<const Method*> methods;
  Files files;
  int cpu = 0;
  std::vector<int64_t> batches;

  bool has(const std::string& key) const {
    return std::any_of(methods.begin(), methods.end(), [&](const Method* m) { return m->key == key; });
  }

  // Each method in batches long enough that the clock's own cost is under 0.1% of a sample;
  // the methods in rotation, a block at a time, on one CPU.
  void measure(oslab::Report& report) {
    oslab::ScopedAffinity pinned({cpu});
    const double timer_ns = oslab::timer_info().overhead_ns;
    for (const Method* m : methods) batches.push_back(oslab::calibrate_batch(m->op, timer_ns, 1000));
    oslab::Interleaver interleaver(lab.plan(), methods.size());
    interleaver.run([&](size_t index, int samples, oslab::Measurement& into) {
      oslab::measure_block(methods[index]->op, samples, batches[index], oslab::Usage::thread, into);
    });
    const nlohmann::json placement = {{"placement", "same-cpu"}, {"cpus", std::to_string(cpu)}};
    for (size_t i = 0; i < methods.size(); ++i) {
      const Method& m = *methods[i];
      nlohmann::json params = placement;
      params["batch"] = batches[i];
      report.add(m.label, params, interleaver.measurements()[i],
                 {.what = fmt::format("{}; one sample is the mean of a batch of {} back to back, on CPU {}", m.what,
                                      batches[i], cpu),
                  .headline = m.key == "null" || m.key == "vdso-clock"});
    }
  }

  // The kernel's own count of each method's calls: the vDSO's "no system call" is a claim.
  void count_calls(oslab::Report& report) {
    constexpr int kOperations = 1000;
    oslab::Table table{
        "System calls per operation, counted by the kernel", {"operation", "expected", "counted", "by"}, {}, ""};
    for (const Method* m : methods) {
      report.run_case(fmt::format("counting the system calls of {}", m->label), [&] {
        const oslab::SyscallCounts counts = oslab::count_syscalls([&] { m->op(kOperations); });
        const double per_op = static_cast<double>(counts.total) / kOperations;
        table.rows.push_back({m->label, std::to_string(m->calls), oslab::format_number(per_op), counts.method});
        const std::string claim =
            m->key == "vdso-clock"
                ? "clock_gettime(CLOCK_MONOTONIC) through the vDSO makes no system call"
                : fmt::format("{} makes {} system call{} per operation", m->label, m->calls, m->calls == 1 ? "" : "s");
        std::string evidence = fmt::format("{} operations made {}", kOperations, counts.describe());
        if (m->key == "vdso-clock")
          evidence += fmt::format(
              "; the clock source is {} (the vDSO can read tsc, kvm-clock and hyperv_clocksource_"
              "tsc_page itself; with others glibc falls back to the system call)",
              oslab::machine().clocksource);
        report.fact(fmt::format("calls/{}", m->key), claim, std::abs(per_op - m->calls) < 0.01, evidence);
      });
    }
    if (!table.rows.empty()) report.table(table);
  }

  void tables(oslab::Report& report) const {
    oslab::Table costs{fmt::format("Cost per operation, pinned to CPU {} (each sample the mean of a batch)", cpu),
                       {"operation", "p50", "p90", "p99", "p99.9", "max", "vs null call"},
                       {},
                       ""};
    const oslab::Result* null_call = has("null") ? &report.get("null system call") : nullptr;
    for (const Method* m : methods) {
      const oslab::Summary& s = report.get(m->label).summary;
      costs.rows.push_back({m->label, oslab::format_duration(s.p50), oslab::format_duration(s.p90),
                            oslab::format_duration(s.p99), oslab::format_duration(s.p999),
                            oslab::format_duration(s.max),
                            null_call ? fmt::format("{:.2f}x", s.p50 / null_call->summary.p50) : "-"});
    }
    costs.footnote =
        "Percentiles are of batch means (a batch lasts at least 1000x the clock's cost), so they show how the "
        "machine varied between batches, not the spread of single calls.";
    report.table(costs);

    const oslab::TimerInfo& timer = oslab::timer_info();
    report.table({"The clock every figure comes from (CLOCK_MONOTONIC)",
                  {"property", "value"},
                  {{"cost of one read (median, back to back)", oslab::format_duration(timer.overhead_ns)},
                   {"resolution (clock_getres)", oslab::format_duration(timer.resolution_ns)},
                   {"smallest step seen between two reads", oslab::format_duration(timer.smallest_step_ns)},
                   {"clock source", oslab::machine().clocksource}},
                  "A single call shorter than about 100 reads of the clock cannot be timed on its own: that is "
                  "why every figure here is a batch mean."});

    const oslab::Machine& machine = oslab::machine();
    const std::vector<std::string> entry = machine.entry_mitigations();
    oslab::Table mitigations{
        "CPU vulnerabilities this kernel mitigates or reports (/sys/devices/system/cpu/vulnerabilities)",
        {"vulnerability", "status", "work on every kernel entry or exit"},
        {},
        ""};
    int not_affected = 0;
    for (const auto& [name, status] : machine.mitigations) {
      if (status == "Not affected") {
        ++not_affected;
        continue;
      }
      const std::string prefix = name + ":";
      const bool on_entry =
          std::any_of(entry.begin(), entry.end(), [&](const std::string& e) { return e.starts_with(prefix); });
      mitigations.rows.push_back({name, status, on_entry ? "yes" : ""});
    }
    mitigations.footnote = fmt::format(
        "{} other(s): not affected. Page-table isolation (PTI, for Meltdown) switches page tables on every entry "
        "and exit; buffer clearing (MDS: VERW), IBRS and return stuffing add their own work: any of them can "
        "multiply a null call's cost. {} of them active here.",
        not_affected, entry.empty() ? "None" : std::to_string(entry.size()));
    if (!mitigations.rows.empty()) report.table(mitigations);
  }

  void verdicts(oslab::Report& report) const {
    auto summary = [&](const std::string& key) -> const oslab::Summary& {
      return report.get(method_of(key).label).summary;
    };
    const std::string where = fmt::format("pinned to CPU {}, medians of batch means", cpu);
    if (has("vdso-clock") && has("syscall-clock")) {
      const oslab::Estimate ratio = oslab::ratio_of(summary("syscall-clock"), summary("vdso-clock"));
      report.verdict("vdso-cheaper-than-syscall",
                     "reading the clock through the vDSO costs a fraction (under half) of the same read through a "
                     "system call",
                     ratio, oslab::Compare::above, 2.0,
                     fmt::format("{}: the system call costs {:.1f}x the vDSO read ({} vs {})", where, ratio.value,
                                 oslab::format_duration(summary("syscall-clock").p50),
                                 oslab::format_duration(summary("vdso-clock").p50)));
    } else {
      report.skip("the vDSO against the system call", "needs the vdso-clock and syscall-clock methods");
    }
    if (has("null") && has("function")) {
      const oslab::Estimate ratio = oslab::ratio_of(summary("null"), summary("function"));
      report.verdict(
          "syscall-costs-more-than-a-call", "entering the kernel costs far more than a function call (over 10x)", ratio,
          oslab::Compare::above, 10.0,
          fmt::format("{}: a null system call costs {:.0f}x a function call ({} vs {})", where, ratio.value,
                      oslab::format_duration(summary("null").p50), oslab::format_duration(summary("function").p50)));
    } else {
      report.skip("a system call against a function call", "needs the null and function methods");
    }
    if (has("null") && has("pipe")) {
      const oslab::Summary& pipe = summary("pipe");
      const oslab::Summary& null_call = summary("null");
      const oslab::Estimate ratio{pipe.p50 / (2 * null_call.p50), pipe.p50_ci_low / (2 * null_call.p50_ci_high),
                                  pipe.p50_ci_high / (2 * null_call.p50_ci_low)};
      report.verdict("work-inside-the-kernel-counts",
                     "a system call costs more than the entry and exit: a pipe write+read costs more than two null "
                     "calls",
                     ratio, oslab::Compare::above, 1.0,
                     fmt::format("{}: a pipe write+read (2 calls) costs {:.1f}x two null calls ({} vs 2 x {})", where,
                                 ratio.value, oslab::format_duration(pipe.p50), oslab::format_duration(null_call.p50)));
    }
  }

  void notes(oslab::Report& report) const {
    const oslab::Machine& machine = oslab::machine();
    const std::vector<std::string> entry = machine.entry_mitigations();
    if (std::any_of(entry.begin(), entry.end(), [](const std::string& e) { return e.ends_with("PTI"); }))
      report.note(
          "page-table isolation (PTI) is on: every kernel entry and exit switches page tables, and a null system "
          "call costs several times what it costs without it.");
    if (machine.is_virtual())
      report.note(fmt::format(
          "this is a virtual machine ({}). A system call itself does not leave the guest, but the host's own "
          "mitigations and the hypervisor's handling of timers and interrupts can make every figure here differ "
          "from the same CPU on bare metal, several-fold in some set-ups: compare ratios, not absolute times, "
          "across machines.",
          machine.virtualization));
  }
};

}  // namespace

int main(int argc, char** argv) {
  oslab::Lab lab({
      .name = "syscall",
      .purpose = "the price of entering the kernel: null system call, vDSO, /dev/null and pipe I/O, the timer",
      .claim = "The notes: message passing 'uses system calls to send / receive a message, which is slow';\n"
               "shared memory avoids them. How slow is a system call? Here: a raw null call (getppid), the\n"
               "clock through the vDSO and through a real call, one byte on /dev/null and through a pipe,\n"
               "beside a plain function call.",
      .explain = "A system call is a deliberate trap into the kernel: the CPU switches to kernel mode (the\n"
                 "syscall instruction on x86-64), the kernel saves the user registers, runs the handler, and\n"
                 "returns with sysret. syscall(SYS_getppid) does nearly nothing inside, so its cost is the\n"
                 "entry and exit themselves: the 'null system call'. Mitigations for CPU vulnerabilities\n"
                 "add to every entry and exit: page-table isolation (Meltdown) switches page tables, buffer\n"
                 "clearing (MDS) runs VERW, return stuffing and IBRS protect against Spectre-style attacks.\n"
                 "The table lists what this kernel reports.\n\n"
                 "Some calls need not enter the kernel at all. The vDSO is a small shared library the kernel\n"
                 "maps into every process; clock_gettime() in glibc calls into it, and it reads the clock\n"
                 "from a page the kernel keeps up to date and the CPU's time-stamp counter, all in user\n"
                 "mode. The lab counts the system calls of each operation by the kernel's own count (perf's\n"
                 "raw_syscalls tracepoint, or ptrace), so 'the vDSO makes no system call' is checked, not\n"
                 "assumed; with a clock source the vDSO cannot read, glibc falls back to the real call.\n\n"
                 "Reading /dev/null returns end of file at once; writing to it discards the byte; a pipe\n"
                 "write followed by a read copies the byte into the pipe's buffer and out again, with the\n"
                 "pipe's lock taken twice: the work inside the kernel shows beside the bare entry.\n\n"
                 "Each operation is timed in batches (a batch lasts at least 1000 reads of the clock), on\n"
                 "one CPU, all operations in rotation, a block of samples at a time: the percentiles are of\n"
                 "batch means. The timer's own cost and resolution are shown, since they bound what a single\n"
                 "measurement can see.\n\n"
                 "Questions: why is the vDSO read cheaper than a null call, though it does more work? What\n"
                 "would a system call cost with page-table isolation on? Why can a single 40 ns call not be\n"
                 "timed on its own with this clock?",
  });
  const auto& methods = lab.choice_option("--methods", "Operations to measure", method_keys(),
                                          {.full = method_keys(), .quick = method_keys()});
  lab.sampling({.samples = {.full = 1000, .quick = 100}, .budget_s = {.full = 0.6, .quick = 0.06}, .warmup = 3});

  std::optional<Experiment> experiment;
  auto prepare = [&](oslab::Report& report) {
    experiment.emplace(Experiment{lab, {}, {}, lab.options().cpus.front(), {}});
    for (const auto& key : methods) experiment->methods.push_back(&method_of(key));
    experiment->files.dev_null.reset(check_errno("open /dev/null", ::open("/dev/null", O_RDWR | O_CLOEXEC)));
    experiment->files.pipe = oslab::Pipe::create();
    g_files = &experiment->files;
    report.params["cpu"] = experiment->cpu;
  };
  return lab.run(
      argc, argv,
      [&](oslab::Report& report) {
        experiment->measure(report);
        experiment->count_calls(report);
        experiment->tables(report);
        experiment->verdicts(report);
        experiment->notes(report);
        report.show_results_table = false;
      },
      prepare);
}
