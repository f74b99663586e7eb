// The frame every lab runs in: the standard command line, the header a student reads
// first, the watchdog and clean-up, and the mapping of failures to exit codes
// (0 ok, 1 failure, 2 usage, 77 skipped).
//
//   int main(int argc, char** argv) {
//     oslab::Lab lab({.name = "fork", .purpose = "...", .claim = "...", .explain = "..."});
//     lab.cli().add_option("--rss", rss_list, "...");
//     return lab.main(argc, argv, [&](oslab::Report& report) { check options },
//                     [&](oslab::Report& report) { the experiment });
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

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
  std::string explain = {};  // the longer teaching text of --explain
  bool pins_cpus = false;    // accepts -C/--cpus
};

// The options every lab understands (STYLE.md, "Command line").
struct StandardOptions {
  bool json = false;
  bool quick = false;
  int iterations = 0;     // 0: the lab's default (see its --help)
  std::vector<int> cpus;  // empty: not pinned
  uint64_t seed = 0;      // always set: given with --seed, or drawn and printed
  bool seed_given = false;
  int timeout_s = 600;  // watchdog for the whole run
};

class Lab {
 public:
  explicit Lab(LabInfo info);

  CLI::App& cli() { return app_; }
  const StandardOptions& options() const { return options_; }
  const LabInfo& info() const { return info_; }

  // The lab's sample count: --iterations when given, else `quick_default` or `full_default`.
  int iterations(int full_default, int quick_default) const;

  // Parses the command line; runs `prepare`, which checks and derives the lab's own options
  // (throwing UsageError or SkipError) before anything is printed; prints the header; runs
  // `body`, the experiment; prints the report.
  int main(int argc, char** argv, const std::function<void(Report&)>& prepare,
           const std::function<void(Report&)>& body);
  int main(int argc, char** argv, const std::function<void(Report&)>& body) { return main(argc, argv, {}, body); }

 private:
  LabInfo info_;
  StandardOptions options_;
  CLI::App app_;
  std::string cpus_text_;
  bool purpose_ = false;
  bool explain_ = false;
};

// Parses a comma-separated list of whole numbers: "0,64,256" -> {0, 64, 256}. Throws UsageError naming `option` on bad
// input or values outside [min, max].
std::vector<long> parse_number_list(const std::string& text, const std::string& option, long min, long max);

}  // namespace oslab
