#include "oslab/lab.hpp"

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>

#include <fmt/format.h>

#include "oslab/cleanup.hpp"
#include "oslab/contention.hpp"
#include "oslab/cpu.hpp"
#include "oslab/error.hpp"
#include "oslab/machine.hpp"
#include "oslab/process.hpp"
#include "oslab/version.hpp"

namespace oslab {

// One of the lab's own options: the text as given, and the value it resolves to.
struct Lab::Option {
  std::string long_flag;  // "--rss"
  std::string text;       // as given on the command line
  bool given = false;
  std::vector<long> longs;
  std::vector<std::string> strings;
  double real = 0;
  long integer = 0;
  bool boolean = false;
  std::function<void(Option&, bool quick)> resolve;  // sets the value from text or the default
  std::function<nlohmann::json(const Option&)> to_json;
};

namespace {

std::string long_flag_of(const std::string& flags) {
  auto at = flags.find("--");
  if (at == std::string::npos) return flags;
  auto end = flags.find(',', at);
  return flags.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

std::string param_key(const std::string& long_flag) {
  std::string key = long_flag.substr(long_flag.find_first_not_of('-'));
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

std::string join(const std::vector<long>& values) {
  std::string text;
  for (long v : values) text += (text.empty() ? "" : ",") + std::to_string(v);
  return text;
}

std::string join(const std::vector<std::string>& values) {
  std::string text;
  for (const auto& v : values) text += (text.empty() ? "" : ",") + v;
  return text;
}

std::string defaults_text(const std::string& full, const std::string& quick) {
  return full == quick ? fmt::format(" (default: {})", full) : fmt::format(" (default: {}; --quick: {})", full, quick);
}

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

}  // namespace

long parse_integer(const std::string& text, const std::string& option, long min, long max) {
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || end != text.data() + text.size() || (ec != std::errc() && ec != std::errc::result_out_of_range))
    throw UsageError(fmt::format("{}: '{}' is not a whole number", option, text));
  if (ec == std::errc::result_out_of_range || value < min || value > max)
    throw UsageError(fmt::format("{}: {} is outside [{}, {}]", option, text, min, max));
  return value;
}

double parse_real(const std::string& text, const std::string& option, double min, double max) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value))
    throw UsageError(fmt::format("{}: '{}' is not a number", option, text));
  if (value < min || value > max)
    throw UsageError(fmt::format("{}: {} is outside [{}, {}]", option, text, format_number(min), format_number(max)));
  return value;
}

uint64_t parse_seed(const std::string& text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || end != text.data() + text.size() || ec == std::errc::invalid_argument)
    throw UsageError(fmt::format("--seed: '{}' is not a whole number", text));
  if (ec == std::errc::result_out_of_range)
    throw UsageError(fmt::format("--seed: {} is outside [0, 18446744073709551615]", text));
  return value;
}

std::vector<long> parse_number_list(const std::string& text, const std::string& option, long min, long max) {
  std::vector<long> values;
  if (text.empty()) throw UsageError(fmt::format("{}: empty list", option));
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    values.push_back(parse_integer(item, option, min, max));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return values;
}

Lab::Lab(LabInfo info) : info_(std::move(info)), app_(info_.purpose, "oslab-" + info_.name) {
  app_.get_formatter()->column_width(30);
  app_.add_flag("--json", options_.json, "Print one JSON result document (schema oslab/1) instead of tables");
  app_.add_flag("--quick", options_.quick, "Run in seconds: fewer sizes and samples (for tests and reports)");
  app_.add_flag("--explain", explain_, "Print the longer explanation of the experiment and exit");
  app_.add_flag("--version", version_, "Print the version and exit");
  app_.add_flag("--purpose", purpose_, "Print the one-line purpose of this lab and exit")->group("");
  app_.add_option("-i,--iterations", iterations_text_, "Samples per measurement (default: the lab's own)");
  app_.add_option("-C,--cpus", cpus_text_,
                  info_.placements.empty() ? "CPUs the run may use, e.g. 0 or 0-1 (default: those it inherited)"
                                           : "CPUs the placements choose from, e.g. 0-3 (default: those it inherited)");
  if (!info_.placements.empty()) {
    std::vector<std::string> all, defaults;
    for (Placement p : info_.placements) all.emplace_back(to_string(p));
    for (Placement p : info_.default_placements) defaults.emplace_back(to_string(p));
    app_.add_option("--placement", placement_text_,
                    fmt::format("Where the parties run: {} (default: {})", join(all), join(defaults)));
  }
  if (info_.threads_switch)
    app_.add_flag("-T,--threads", options_.threads, "Run the parties as threads of one process, not as processes");
  app_.add_option("-s,--seed", seed_text_, "Seed for everything random (default: drawn, then printed)");
  app_.add_option("--timeout", timeout_text_,
                  "Watchdog: kill children, remove IPC objects and fail after this many seconds (default: 600)");
}

Lab::~Lab() = default;

void Lab::add(std::unique_ptr<Option> option) {
  options_list_.push_back(std::move(option));
}

const std::vector<long>& Lab::list_option(const std::string& flags, const std::string& help,
                                          const Defaults<std::vector<long>>& defaults, long min, long max) {
  auto option = std::make_unique<Option>();
  option->long_flag = long_flag_of(flags);
  app_.add_option(flags, option->text, help + defaults_text(join(defaults.full), join(defaults.quick)));
  option->resolve = [defaults, min, max](Option& o, bool quick) {
    o.longs = o.given ? parse_number_list(o.text, o.long_flag, min, max) : (quick ? defaults.quick : defaults.full);
  };
  option->to_json = [](const Option& o) { return nlohmann::json(o.longs); };
  const auto& value = option->longs;
  add(std::move(option));
  return value;
}

const std::vector<std::string>& Lab::choice_option(const std::string& flags, const std::string& help,
                                                   const std::vector<std::string>& known,
                                                   const Defaults<std::vector<std::string>>& defaults) {
  auto option = std::make_unique<Option>();
  option->long_flag = long_flag_of(flags);
  app_.add_option(flags, option->text,
                  fmt::format("{}, comma-separated: {}{}", help, join(known),
                              defaults_text(join(defaults.full), join(defaults.quick))));
  option->resolve = [known, defaults](Option& o, bool quick) {
    if (!o.given) {
      o.strings = quick ? defaults.quick : defaults.full;
      return;
    }
    o.strings.clear();
    if (o.text.empty()) throw UsageError(fmt::format("{}: empty list", o.long_flag));
    size_t start = 0;
    while (true) {
      const size_t comma = o.text.find(',', start);
      const std::string item = o.text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (std::find(known.begin(), known.end(), item) == known.end())
        throw UsageError(fmt::format("{}: unknown value '{}' (known: {})", o.long_flag, item, join(known)));
      if (std::find(o.strings.begin(), o.strings.end(), item) == o.strings.end()) o.strings.push_back(item);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  };
  option->to_json = [](const Option& o) { return nlohmann::json(o.strings); };
  const auto& value = option->strings;
  add(std::move(option));
  return value;
}

const double& Lab::number_option(const std::string& flags, const std::string& help, Defaults<double> defaults,
                                 double min, double max) {
  auto option = std::make_unique<Option>();
  option->long_flag = long_flag_of(flags);
  app_.add_option(flags, option->text,
                  help + defaults_text(format_number(defaults.full), format_number(defaults.quick)));
  option->resolve = [defaults, min, max](Option& o, bool quick) {
    o.real = o.given ? parse_real(o.text, o.long_flag, min, max) : (quick ? defaults.quick : defaults.full);
  };
  option->to_json = [](const Option& o) { return nlohmann::json(o.real); };
  const auto& value = option->real;
  add(std::move(option));
  return value;
}

const long& Lab::integer_option(const std::string& flags, const std::string& help, Defaults<long> defaults, long min,
                                long max) {
  auto option = std::make_unique<Option>();
  option->long_flag = long_flag_of(flags);
  app_.add_option(flags, option->text,
                  help + defaults_text(std::to_string(defaults.full), std::to_string(defaults.quick)));
  option->resolve = [defaults, min, max](Option& o, bool quick) {
    o.integer = o.given ? parse_integer(o.text, o.long_flag, min, max) : (quick ? defaults.quick : defaults.full);
  };
  option->to_json = [](const Option& o) { return nlohmann::json(o.integer); };
  const auto& value = option->integer;
  add(std::move(option));
  return value;
}

const bool& Lab::flag(const std::string& flags, const std::string& help) {
  auto option = std::make_unique<Option>();
  option->long_flag = long_flag_of(flags);
  app_.add_flag(flags, option->boolean, help);
  option->resolve = [](Option&, bool) {};
  option->to_json = [](const Option& o) { return nlohmann::json(o.boolean); };
  const auto& value = option->boolean;
  add(std::move(option));
  return value;
}

void Lab::sampling(SamplingDefaults defaults) {
  has_sampling_ = true;
  sampling_ = defaults;
  if (auto* iterations = app_.get_option_no_throw("--iterations"))
    iterations->description(
        fmt::format("Samples per measurement{}; with --budget, whichever comes first",
                    defaults_text(std::to_string(defaults.samples.full), std::to_string(defaults.samples.quick))));
  app_.add_option(
      "--budget", budget_text_,
      fmt::format("Seconds per measurement at most{}; with --iterations, whichever comes first",
                  defaults_text(format_number(defaults.budget_s.full), format_number(defaults.budget_s.quick))));
}

SamplingPlan Lab::plan() const {
  SamplingPlan plan;
  plan.warmup = sampling_.warmup;
  const bool iterations_given = options_.iterations > 0;
  plan.max_samples =
      iterations_given ? options_.iterations : (options_.quick ? sampling_.samples.quick : sampling_.samples.full);
  plan.min_samples = std::min(sampling_.min_samples, plan.max_samples);
  if (iterations_given && !budget_given_) {
    plan.min_samples = plan.max_samples;
    plan.budget = std::chrono::hours(24 * 365);
  } else {
    plan.budget = std::chrono::milliseconds(static_cast<long>(std::llround(budget_s_ * 1000)));
  }
  return plan;
}

int Lab::iterations(int full_default, int quick_default) const {
  if (options_.iterations > 0) return options_.iterations;
  return options_.quick ? quick_default : full_default;
}

bool Lab::given(const std::string& long_flag) const {
  const CLI::Option* option = app_.get_option_no_throw(long_flag);
  return option != nullptr && option->count() > 0;
}

void Lab::resolve_standard() {
  options_.seed_given = !seed_text_.empty() || given("--seed");
  options_.seed = options_.seed_given ? parse_seed(seed_text_) : draw_seed();
  if (given("--iterations"))
    options_.iterations = static_cast<int>(parse_integer(iterations_text_, "--iterations", 1, 10'000'000));
  if (given("--timeout")) options_.timeout_s = static_cast<int>(parse_integer(timeout_text_, "--timeout", 1, 86'400));
  budget_given_ = given("--budget");
  if (has_sampling_)
    budget_s_ = budget_given_ ? parse_real(budget_text_, "--budget", 0.001, 86'400)
                              : (options_.quick ? sampling_.budget_s.quick : sampling_.budget_s.full);
  options_.cpus_given = given("--cpus");
  if (options_.cpus_given) {
    try {
      options_.cpus = parse_cpu_list(cpus_text_);
      require_allowed(options_.cpus);
    } catch (const UsageError& e) {
      throw UsageError(std::string("--cpus: ") + e.what());
    }
  } else {
    options_.cpus = get_affinity();
  }
  if (!info_.placements.empty()) {
    options_.placements = given("--placement") ? parse_placements(placement_text_) : info_.default_placements;
    for (Placement p : options_.placements)
      if (std::find(info_.placements.begin(), info_.placements.end(), p) == info_.placements.end())
        throw UsageError(fmt::format("--placement: {} does not apply to this lab", to_string(p)));
  }
}

void Lab::resolve_options() {
  for (auto& option : options_list_) {
    option->given = given(option->long_flag);
    option->resolve(*option, options_.quick);
  }
}

void Lab::record_params(Report& report) const {
  report.params["seed"] = options_.seed;
  report.params["quick"] = options_.quick;
  report.params["cpus"] = format_cpu_list(options_.cpus);
  report.params["cpus_given"] = options_.cpus_given;
  if (!info_.placements.empty()) {
    std::vector<std::string> names;
    for (Placement p : options_.placements) names.emplace_back(to_string(p));
    report.params["placements"] = names;
  }
  if (info_.threads_switch) report.params["threads"] = options_.threads;
  if (has_sampling_) {
    const SamplingPlan p = plan();
    report.params["max_samples"] = p.max_samples;
    report.params["min_samples"] = p.min_samples;
    report.params["budget_s"] =
        options_.iterations > 0 && !budget_given_ ? nlohmann::json(nullptr) : nlohmann::json(budget_s_);
    report.params["warmup"] = p.warmup;
  } else if (options_.iterations > 0) {
    report.params["iterations"] = options_.iterations;
  }
  for (const auto& option : options_list_) report.params[param_key(option->long_flag)] = option->to_json(*option);
}

namespace {

void print_header(const LabInfo& info, const StandardOptions& options, const Machine& m) {
  fmt::print("oslab-{}: {}\n\n", info.name, info.purpose);
  if (!info.claim.empty()) fmt::print("{}\n\n", info.claim);
  fmt::print("Machine: {}, {} CPUs (this run may use {}), kernel {}, clock {}, {}\n", m.cpu_model, m.logical_cpus,
             format_cpu_list(options.cpus), m.kernel, m.clocksource,
             m.is_virtual() ? "virtual machine (" + m.virtualization + ")" : "bare metal");
  fmt::print("Timer: CLOCK_MONOTONIC, {:.0f} ns per read. Kernel entry: {}.\n", m.timer_overhead_ns, m.syscall_note());
  std::string placements;
  for (Placement p : options.placements) placements += (placements.empty() ? "" : ", ") + std::string(to_string(p));
  fmt::print("Run: seed {}{}{}{}{}\n\n", options.seed,
             options.seed_given ? "" : fmt::format(" (drawn; repeat with --seed {})", options.seed),
             options.quick ? ", --quick" : "", placements.empty() ? "" : ", placements " + placements,
             info.threads_switch ? (options.threads ? ", parties are threads" : ", parties are processes") : "");
  (void)std::fflush(stdout);
}

void print_explain(const LabInfo& info, bool json) {
  if (json) {
    std::cout << nlohmann::json{{"lab", info.name},
                                {"purpose", info.purpose},
                                {"claim", info.claim},
                                {"explain", info.explain}}
                     .dump(2)
              << std::endl;
    return;
  }
  fmt::print("oslab-{}: {}\n\n{}\n\n{}\n", info.name, info.purpose, info.claim, info.explain);
}

// stdout closed, a full disk, a broken pipe: the output was lost, and that is a failure.
int check_output(int code) {
  std::cout.flush();
  if (!std::cout.good() || std::fflush(stdout) != 0 || std::ferror(stdout)) {
    fmt::print(stderr, "{}: could not write the output: {}\n", program_name(), describe_errno(errno));
    return 1;
  }
  return code;
}

}  // namespace

int Lab::run(int argc, char** argv, const std::function<void(Report&)>& body,
             const std::function<void(Report&)>& prepare) {
  set_program_name("oslab-" + info_.name);
  try {
    app_.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return check_output(app_.exit(e));
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "{}: {} (see --help)\n", program_name(), e.what());
    return 2;
  }
  if (version_) {
    fmt::print("oslab-{} (oslab) {}\n", info_.name, kVersion);
    return check_output(0);
  }
  if (purpose_) {
    fmt::print("{}\n", info_.purpose);
    return check_output(0);
  }
  if (explain_) {
    print_explain(info_, options_.json);
    return check_output(0);
  }

  std::optional<Report> report;
  try {
    resolve_standard();
    resolve_options();
    report.emplace(info_.name, join_cmdline(argc, argv));
    if (prepare) prepare(*report);
    record_params(*report);
    set_affinity(options_.cpus);  // the whole run stays on the CPUs it was given
    cleanup::install(std::chrono::seconds(options_.timeout_s));
    const Machine& m = machine();
    const CpuUse cpu_before = CpuUse::now();
    if (!options_.json) print_header(info_, options_, m);
    try {
      body(*report);
    } catch (const UsageError&) {
      throw;
    } catch (const SkipError&) {
      throw;
    } catch (const std::exception& e) {
      // Whatever was measured before the failure is still printed, with the failure.
      report->fail("the experiment", e.what());
    }
    const Contention contention = contention_between(cpu_before, CpuUse::now());
    report->params["other_work_cpus"] = std::round(contention.other_cpus * 1000) / 1000;
    report->params["steal_cpus"] = std::round(contention.steal_cpus * 1000) / 1000;
    if (contention.busy()) report->machine_was_busy(contention);
    if (options_.json)
      std::cout << report->to_json().dump(2) << std::endl;
    else
      report->print_human(std::cout);
    if (!report->failed().empty()) {
      for (const auto& f : report->failed()) fmt::print(stderr, "{}: {}: {}\n", program_name(), f.what, f.why);
      return check_output(1);
    }
    return check_output(0);
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
