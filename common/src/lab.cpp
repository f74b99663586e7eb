#include "oslab/lab.hpp"

#include <sys/random.h>

#include <charconv>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/machine.hpp"
#include "oslab/process.hpp"

namespace oslab {

Lab::Lab(LabInfo info) : info_(std::move(info)), app_(info_.purpose, "oslab-" + info_.name) {
  app_.option_defaults()->always_capture_default();
  app_.get_formatter()->column_width(34);
  app_.add_flag("--json", options_.json, "Print one JSON result document (schema oslab/1) instead of tables");
  app_.add_flag("--quick", options_.quick, "Run in seconds: fewer sizes and samples (for tests and reports)");
  app_.add_flag("--explain", explain_, "Print the longer explanation of the experiment and exit");
  app_.add_flag("--purpose", purpose_, "Print the one-line purpose of this lab and exit")->group("");
  app_.add_option("-i,--iterations", options_.iterations,
                  "Samples per measurement (0: the lab's default, which --quick lowers)")
      ->check(CLI::Range(0, 10'000'000))
      ->default_str("0");
  if (info_.pins_cpus) app_.add_option("-C,--cpus", cpus_text_, "CPUs to pin to, e.g. 0 or 0-1 (default: not pinned)");
  app_.add_option("-s,--seed", options_.seed, "Seed for everything random (default: drawn, then printed)")
      ->default_str("random");
  app_.add_option("--timeout", options_.timeout_s, "Watchdog: kill children and fail after this many seconds")
      ->check(CLI::Range(1, 86'400));
}

int Lab::iterations(int full_default, int quick_default) const {
  if (options_.iterations > 0) return options_.iterations;
  return options_.quick ? quick_default : full_default;
}

std::vector<long> parse_number_list(const std::string& text, const std::string& option, long min, long max) {
  std::vector<long> values;
  std::string_view rest = text;
  if (rest.empty()) throw UsageError(fmt::format("{}: empty list", option));
  while (true) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    long value = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size())
      throw UsageError(fmt::format("{}: '{}' is not a whole number", option, item));
    if (value < min || value > max)
      throw UsageError(fmt::format("{}: {} is outside [{}, {}]", option, value, min, max));
    values.push_back(value);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return values;
}

namespace {

std::string join_cmdline(int argc, char** argv) {
  std::string text;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) text += ' ';
    text += argv[i];
  }
  return text;
}

uint64_t draw_seed() {
  uint64_t seed = 0;
  if (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) seed = static_cast<uint64_t>(::getpid());
  return seed % 1'000'000'000;  // short enough to type back in
}

void print_header(const LabInfo& info, const StandardOptions& options, const Machine& m) {
  fmt::print("oslab-{}: {}\n\n", info.name, info.purpose);
  if (!info.claim.empty()) fmt::print("{}\n\n", info.claim);
  fmt::print("Machine: {}, {} CPUs (allowed {}), kernel {}, clock {}, {}\n", m.cpu_model, m.logical_cpus,
             m.allowed_cpus, m.kernel, m.clocksource,
             m.is_virtual() ? "virtual machine (" + m.virtualization + ")" : "bare metal");
  fmt::print("Timer: CLOCK_MONOTONIC, {:.0f} ns per read; a null system call costs {}{}\n", m.timer_overhead_ns,
             format_duration(m.null_syscall_ns),
             m.null_syscall_ns > 500 ? " (slow: typical bare metal is 50-150 ns)" : "");
  fmt::print("Run: seed {}{}{}\n\n", options.seed, options.seed_given ? "" : " (drawn; repeat with --seed)",
             options.quick ? ", --quick" : "");
  std::fflush(stdout);
}

// Other work on the machine puts time spent waiting for a CPU into every figure: say so.
void note_if_busy(Report& report, const CpuUse& before, const CpuUse& after) {
  const Contention c = contention_between(before, after);
  report.params["other_work_cpus"] = c.other_cpus;
  report.params["steal_cpus"] = c.steal_cpus;
  if (c.busy())
    report.note(
        fmt::format("the machine was busy during this run: other work used {:.2f} CPUs on average, and the "
                    "hypervisor stole {:.2f} (/proc/stat, less this lab's own CPU time). Figures include "
                    "time spent waiting for a CPU, and verdicts may not hold: rerun on an idle machine.",
                    c.other_cpus, c.steal_cpus));
}

}  // namespace

int Lab::main(int argc, char** argv, const std::function<void(Report&)>& prepare,
              const std::function<void(Report&)>& body) {
  set_program_name("oslab-" + info_.name);
  try {
    app_.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app_.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "{}: {} (see --help)\n", program_name(), e.what());
    return 2;
  }
  if (purpose_) {
    fmt::print("{}\n", info_.purpose);
    return 0;
  }
  if (explain_) {
    fmt::print("oslab-{}: {}\n\n{}\n\n{}\n", info_.name, info_.purpose, info_.claim, info_.explain);
    return 0;
  }
  try {
    options_.seed_given = app_.count("--seed") > 0;
    if (!options_.seed_given) options_.seed = draw_seed();
    if (!cpus_text_.empty()) {
      options_.cpus = parse_cpu_list(cpus_text_);
      require_allowed(options_.cpus);
    }
    cleanup::install(std::chrono::seconds(options_.timeout_s));

    Report report(info_.name, join_cmdline(argc, argv));
    report.params["seed"] = options_.seed;
    report.params["quick"] = options_.quick;
    report.params["cpus"] = options_.cpus.empty() ? "not pinned" : format_cpu_list(options_.cpus);
    report.params["inherited_affinity"] = format_cpu_list(get_affinity());
    const Machine& m = machine();
    if (prepare) prepare(report);
    const CpuUse cpu_before = CpuUse::now();
    if (!options_.json) print_header(info_, options_, m);
    body(report);
    note_if_busy(report, cpu_before, CpuUse::now());
    if (options_.json)
      std::cout << report.to_json().dump(2) << std::endl;
    else
      report.print_human(std::cout);
    return 0;
  } catch (const UsageError& e) {
    fmt::print(stderr, "{}: {}\n", program_name(), e.what());
    return 2;
  } catch (const SkipError& e) {
    fmt::print(stderr, "{}: skipped: {}\n", program_name(), e.what());
    return 77;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", program_name(), e.what());
    return 1;
  }
}

}  // namespace oslab
