// What a lab found: results, verdicts, tables, skipped and failed cases, printed as tables
// for a person or as the JSON result document of DESIGN.md ("schema": "oslab/1", described
// by docs/schema/oslab-1.json) for a program.
#pragma once

#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "oslab/format.hpp"
#include "oslab/measure.hpp"
#include "oslab/stats.hpp"

namespace oslab {

class LogHistogram;
struct Contention;

// What a result is, besides its samples.
struct ResultInfo {
  std::string what;                             // what one sample is: "fork(); child _exit(0); parent waitpid()"
  std::string unit = "ns";                      // of the samples
  std::map<std::string, double> counters = {};  // per operation, unless the name says otherwise
  bool headline = false;                        // shown in the report's summary table
};

struct Result {
  std::string name;                                  // "fork+exit+wait"
  nlohmann::json params = nlohmann::json::object();  // {"touched_mib": 256}
  std::string unit = "ns";
  std::string what;
  Summary summary;
  std::vector<double> samples;             // every sample, in the order taken (empty for a histogram)
  std::vector<size_t> blocks;              // sizes of the blocks the samples were taken in
  nlohmann::json histogram;                // [[lower bound, count], ...] when samples were bucketed
  std::map<std::string, double> counters;  // per operation
  bool headline = false;
};

enum class VerdictState { holds, does_not_hold, inconclusive };
// "holds", "does-not-hold", "inconclusive": the JSON spelling.
const char* to_string(VerdictState state);

// Which side of a threshold a claim puts a measured figure on.
enum class Compare { above, below };

// Holds when the whole interval is on the claim's side of the threshold, does not hold when
// the whole interval is on the other side, and is inconclusive when the interval straddles it:
// a finding must never be an artefact of noise.
VerdictState decide(const Estimate& estimate, Compare compare, double threshold);

// Several conditions that must all hold: does not hold if any does not, else inconclusive if
// any is, else holds.
VerdictState all_of(std::initializer_list<VerdictState> states);
VerdictState all_of(const std::vector<VerdictState>& states);
inline VerdictState state_of(bool holds) {
  return holds ? VerdictState::holds : VerdictState::does_not_hold;
}

struct Verdict {
  std::string id;  // stable, for tests and comparisons: "fork-grows-with-rss"
  std::string claim;
  VerdictState state = VerdictState::inconclusive;
  std::string evidence;
  bool from_timing = false;  // decided by measured times: inconclusive when the machine was busy
  bool holds() const { return state == VerdictState::holds; }
};

struct Skip {
  std::string what;
  std::string why;
};

// A table for people; it goes into the JSON and the report too.
struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string footnote;
  size_t label_columns = 1;  // leading columns that are labels (left-aligned); numbers align right
};

// A plot the report draws from this lab's results (scripts/report.py, with matplotlib).
struct Plot {
  std::string id;     // file name within the report: "<lab>-<id>.png" / ".svg"
  std::string title;
  std::string kind = "line";  // "line": each result's p50 against a param; "cdf": the distribution of its samples
  std::string x_param = {};   // line: the param on the x axis ("touched_mib")
  std::string x_label = {}, y_label = {};
  std::string series = "name";  // what tells the lines apart: "name" or a param
  nlohmann::json where = nlohmann::json::object();  // only results whose params include these
  std::vector<std::string> names = {};               // only results with these names (empty: all)
  bool log_x = false, log_y = false;
};

// Prints a table with aligned columns (numbers right-aligned).
void print_table(std::ostream& out, const Table& table);

class Report {
 public:
  Report(std::string lab, std::string cmdline);

  nlohmann::json params = nlohmann::json::object();

  // Results. The references stay valid as more results are added.
  // From a measurement: summary (interval over its blocks), every sample, and counters per
  // operation (this process's as-is; reaped children's with the prefix "child_"), to which
  // info.counters are added.
  const Result& add(std::string name, nlohmann::json result_params, const Measurement& measurement, ResultInfo info);
  // From samples measured any way.
  const Result& add_samples(std::string name, nlohmann::json result_params, std::vector<double> samples,
                            ResultInfo info, std::vector<size_t> blocks = {});
  // From a histogram, for runs of millions of samples.
  const Result& add_histogram(std::string name, nlohmann::json result_params, const LogHistogram& histogram,
                              ResultInfo info);
  // The first result with this name whose params include every key/value of `params_subset`.
  const Result* find(std::string_view name, const nlohmann::json& params_subset = nlohmann::json::object()) const;
  // The same, but a missing result is a bug in the lab: throws std::logic_error.
  const Result& get(std::string_view name, const nlohmann::json& params_subset = nlohmann::json::object()) const;

  // Verdicts. A fact is decided by the kernel's semantics (what is shared, how many faults):
  // it holds or it does not, whatever the load. A measured verdict is decided by times and
  // becomes inconclusive when the run cannot decide it.
  void fact(std::string id, std::string claim, bool holds, std::string evidence);
  void verdict(std::string id, std::string claim, VerdictState state, std::string evidence);
  // Decides on `estimate` against `threshold` (see decide()) and appends the rule and the
  // interval to the evidence; `unit` is "x" for a ratio, "ns" for a time, or any word.
  void verdict(std::string id, std::string claim, const Estimate& estimate, Compare compare, double threshold,
               std::string evidence, const std::string& unit = "x");
  const Verdict* find_verdict(std::string_view id) const;

  // Runs one case of the experiment: a missing feature (SkipError) becomes a skip row and any
  // other failure a failed case, and the other cases carry on. Returns true when it succeeded.
  bool run_case(const std::string& what, const std::function<void()>& body);
  void skip(std::string what, std::string why);
  void fail(std::string what, std::string why);
  void note(std::string text);
  void table(Table table);
  void plot(Plot plot);

  // Other work ran during the measurement: every measured verdict that was decided becomes
  // inconclusive, saying why, and a note says so.
  void machine_was_busy(const Contention& contention);

  // Hide the generic results table when the lab prints its own tables of the same figures.
  bool show_results_table = true;
  // List only the verdicts that do not hold (with a count of the others), when a table
  // already shows them all.
  bool show_holding_verdicts = true;

  const std::deque<Result>& results() const { return results_; }
  const std::vector<Verdict>& verdicts() const { return verdicts_; }
  const std::vector<Skip>& skipped() const { return skipped_; }
  const std::vector<Skip>& failed() const { return failed_; }
  const std::vector<Table>& tables() const { return tables_; }

  nlohmann::json to_json() const;
  void print_human(std::ostream& out) const;

 private:
  // The params that tell this result from the others (those all results share are left out).
  nlohmann::json varying_params(const nlohmann::json& of) const;

  std::string lab_;
  std::string cmdline_;
  std::string started_;
  std::deque<Result> results_;
  std::vector<Verdict> verdicts_;
  std::vector<Skip> skipped_;
  std::vector<Skip> failed_;
  std::vector<std::string> notes_;
  std::vector<Table> tables_;
  std::vector<Plot> plots_;
};

// The JSON of one result (as in the document's "results" array).
nlohmann::json result_to_json(const Result& result);

}  // namespace oslab
