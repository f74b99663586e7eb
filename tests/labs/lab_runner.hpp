// Runs a lab binary as a test would: arguments, a deadline, stdout and stderr captured, and
// a snapshot of the IPC objects and child processes it might leave behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oslab/process.hpp"

namespace oslab::test {

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string out, err;
  nlohmann::json json() const;  // parses `out`; fails the test if it is not JSON
};

std::string bin_dir();

// The first directory on the way to `path` that other users may not search (e.g. /root, mode
// 0700), or "" when an unprivileged user can reach it: a lab or program run as nobody cannot
// run from a checkout behind such a directory.
std::string private_ancestor(const std::string& path);

// `oslab-<lab> --quick --json extra...`, expected to exit 0; its document (an empty object if not).
nlohmann::json quick_json(const std::string& lab, std::vector<std::string> extra = {});
// The verdict with this id, or nullptr.
const nlohmann::json* find_verdict(const nlohmann::json& doc, const std::string& id);
// Its state ("holds", "does-not-hold", "inconclusive"), or "missing".
std::string verdict_state(const nlohmann::json& doc, const std::string& id);
// Whether the lab skipped something whose "what" contains `what_part`.
bool skipped(const nlohmann::json& doc, const std::string& what_part);
// A fact (decided from counts, never from timings): it holds. Fails when the verdict is
// missing, does not hold, or is a timing.
void expect_holds(const nlohmann::json& doc, const std::string& id);
// A claim that may not show itself in one run. Decided from timings ("measured": true), its
// state belongs to the machine, never to the test: a busy CI machine can refute any speed-up,
// so only its form is checked (a state, evidence). Decided from counts or a race ("measured":
// false), it holds or is inconclusive, never refuted. Fails when the verdict is missing.
void expect_not_refuted(const nlohmann::json& doc, const std::string& id);
// Bad input: exit code 2, one line on stderr, nothing on stdout.
void expect_usage_error(const std::string& lab, const std::vector<std::string>& args);

std::string lab_path(const std::string& lab);  // "fork" -> <bin>/oslab-fork
std::vector<std::string> all_labs();           // every oslab-* in the bin dir, as "fork", ...

// Runs <bin>/oslab-<lab> with `args` for at most `timeout`; on timeout kills its group.
RunResult run_lab(const std::string& lab, const std::vector<std::string>& args,
                  std::chrono::seconds timeout = std::chrono::seconds(120));

// Runs any command (argv[0] a full path) the same way.
RunResult run_command(const std::vector<std::string>& argv, std::chrono::seconds timeout = std::chrono::seconds(120));

// Starts the lab, lets it run for `after`, sends `signo` to it (only it, not its children),
// and reaps it (SIGKILLing it if it has not ended 10 s later).
oslab::ExitStatus run_and_signal(const std::string& lab, const std::vector<std::string>& args,
                                 std::chrono::milliseconds after, int signo);

// What a run could leave behind: System V objects, /dev/shm and /dev/mqueue entries.
struct IpcSnapshot {
  std::set<std::string> objects;  // "shm 1234", "/dev/shm/oslab.x", ...
  static IpcSnapshot take();
  std::set<std::string> added_since(const IpcSnapshot& before) const;
};

// Makes this process the subreaper of every descendant, so that orphans of a killed lab
// come to us; then reaps_orphans() reaps them, giving the count still running after `grace`.
void become_subreaper();
int orphans_still_running(std::chrono::milliseconds grace);

}  // namespace oslab::test
