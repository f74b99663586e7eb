// The frame every lab runs in: the standard command line, the lab's own options with their
// full and --quick defaults, the sampling plan, the CPUs and placements, the header a student
// reads first, the watchdog and clean-up, and the mapping of failures to exit codes
// (0 ok, 1 failure, 2 usage, 77 skipped). docs/writing-a-lab.md shows a whole lab.
//
//   int main(int argc, char** argv) {
//     oslab::Lab lab({.name = "fork", .purpose = "...", .claim = "...", .explain = "..."});
//     const auto& sizes = lab.list_option("--rss", "MiB to touch", {.full = {0, 256}, .quick = {0}}, 0, 1 << 20);
//     lab.sampling({.samples = {.full = 200, .quick = 30}, .budget_s = {.full = 1, .quick = 0.15}});
//     return lab.run(argc, argv, [&](oslab::Report& report) { measure(...); tables(...); verdicts(...); });
//   }
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "oslab/measure.hpp"
#include "oslab/placement.hpp"
#include "oslab/report.hpp"

namespace oslab {

// Built with ThreadSanitizer? Its shadow memory adds page faults, and its interceptors cannot
// run in a raw clone(CLONE_VM) child: labs that depend on either skip under it.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

struct LabInfo {
  std::string name;          // "fork": the binary is oslab-fork
  std::string purpose;       // one line, shown by `oslab list`
  std::string claim = {};    // what the course notes claim, a few lines
  std::string explain = {};  // the longer teaching text of --explain (docs/ include it)
  // The placements this lab's measurements can take (--placement), and those taken by
  // default. Empty: the lab has no placements; -C/--cpus then only restricts the whole run.
  std::vector<Placement> placements = {};
  std::vector<Placement> default_placements = {};
  bool threads_switch = false;  // -T/--threads: the same worker as threads instead of processes
};

// An option's default in a full run and under --quick.
template <typename T>
struct Defaults {
  T full;
  T quick;
};

// The options every lab understands (STYLE.md, "Command line"), once parsed.
struct StandardOptions {
  bool json = false;
  bool quick = false;
  int iterations = 0;     // 0: not given (the lab's default applies)
  std::vector<int> cpus;  // the CPUs the run may use: -C/--cpus, else the inherited affinity
  bool cpus_given = false;
  std::vector<Placement> placements;  // --placement, else the lab's defaults
  bool threads = false;               // -T/--threads
  uint64_t seed = 0;                  // always set: given with --seed, or drawn and printed
  bool seed_given = false;
  int timeout_s = 600;  // watchdog for the whole run
};

struct SamplingDefaults {
  Defaults<int> samples = {200, 30};        // samples per measurement
  Defaults<double> budget_s = {1.0, 0.15};  // seconds per measurement at most
  int warmup = 3;
  int min_samples = 5;
};

class Lab {
 public:
  explicit Lab(LabInfo info);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // The lab's own options. Each returns a reference that holds the value once run() has parsed
  // the command line (the quick default under --quick when the option was not given). Bad
  // values end the run with one line and exit 2, naming the option.
  const std::vector<long>& list_option(const std::string& flags, const std::string& help,
                                       const Defaults<std::vector<long>>& defaults, long min, long max);
  const std::vector<std::string>& choice_option(const std::string& flags, const std::string& help,
                                                const std::vector<std::string>& known,
                                                const Defaults<std::vector<std::string>>& defaults);
  const double& number_option(const std::string& flags, const std::string& help, Defaults<double> defaults, double min,
                              double max);
  const long& integer_option(const std::string& flags, const std::string& help, Defaults<long> defaults, long min,
                             long max);
  const bool& flag(const std::string& flags, const std::string& help);

  // Declares that the lab samples with a budget: adds --budget, documents --iterations.
  void sampling(SamplingDefaults defaults);
  // The sampling plan from --iterations, --budget and the defaults: with only --iterations,
  // exactly that many samples; with only --budget, up to the default count within the budget;
  // with both, whichever comes first (at least min_samples).
  SamplingPlan plan() const;
  // For labs without sampling(): --iterations if given, else the full or quick default.
  int iterations(int full_default, int quick_default) const;

  const LabInfo& info() const { return info_; }
  const StandardOptions& options() const { return options_; }
  bool quick() const { return options_.quick; }
  // Was this option given on the command line? ("--rss")
  bool given(const std::string& long_flag) const;
  CLI::App& cli() { return app_; }

  // Parses the command line; runs `prepare`, which checks what the options alone cannot
  // (throwing UsageError or SkipError) before anything is printed; applies --cpus; prints
  // the header; runs `body`, the experiment; prints the report.
  int run(int argc, char** argv, const std::function<void(Report&)>& body,
          const std::function<void(Report&)>& prepare = {});

 private:
  struct Option;
  void add(std::unique_ptr<Option> option);
  void resolve_options();
  void resolve_standard();
  void record_params(Report& report) const;

  LabInfo info_;
  StandardOptions options_;
  CLI::App app_;
  std::deque<std::unique_ptr<Option>> options_list_;
  bool has_sampling_ = false;
  SamplingDefaults sampling_;
  double budget_s_ = 0;
  bool budget_given_ = false;
  std::string iterations_text_, budget_text_, cpus_text_, placement_text_, seed_text_, timeout_text_;
  bool purpose_ = false, explain_ = false, version_ = false;
};

// Parses a comma-separated list of whole numbers: "0,64,256" -> {0, 64, 256}. Throws
// UsageError naming `option` on bad input or values outside [min, max].
std::vector<long> parse_number_list(const std::string& text, const std::string& option, long min, long max);
// One whole number in [min, max], or UsageError: "--iterations: 'many' is not a whole number".
long parse_integer(const std::string& text, const std::string& option, long min, long max);
// One finite number in [min, max], or UsageError.
double parse_real(const std::string& text, const std::string& option, double min, double max);
// A seed: a whole number in [0, 2^64 - 1], or UsageError.
uint64_t parse_seed(const std::string& text);

}  // namespace oslab
