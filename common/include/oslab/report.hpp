// What a lab found: results, verdicts and skips, printed as tables for a person or as the
// JSON result document of DESIGN.md ("schema": "oslab/1") for a program.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oslab/measure.hpp"
#include "oslab/stats.hpp"

namespace oslab {

struct Result {
  std::string name;                                  // "fork+exit+wait"
  nlohmann::json params = nlohmann::json::object();  // {"touched_mib": 256}
  std::string unit = "ns";
  std::string what;  // what one sample is: "one fork, child _exit, parent waitpid"
  Summary summary;
  std::vector<double> samples;             // every sample, in the order taken
  std::map<std::string, double> counters;  // per operation
  bool headline = false;                   // shown in the report's summary table
};

struct Verdict {
  std::string claim;
  bool holds = false;
  std::string evidence;
};

struct Skip {
  std::string what;
  std::string why;
};

// A table for the human output only (the JSON carries the same figures as results).
struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string footnote;
  size_t label_columns = 1;  // leading columns that are labels (left-aligned); numbers align right
};

// "1.23 ms", "850 ns": a duration in the unit that suits it.
std::string format_duration(double ns);
// A number with about three significant figures: 1234 -> "1234", 1.234 -> "1.23", 0.0123 -> "0.012".
std::string format_number(double value);
// Prints a table with aligned columns (numbers right-aligned).
void print_table(std::ostream& out, const Table& table);

class Report {
 public:
  Report(std::string lab, std::string cmdline);

  nlohmann::json params = nlohmann::json::object();

  // Adds a result from a measurement: summary, every sample, and counters per operation
  // (this process's as-is; reaped children's with the prefix "child_").
  Result& add(std::string name, nlohmann::json result_params, const Measurement& measurement, std::string what);
  Result& add(Result result);
  void verdict(std::string claim, bool holds, std::string evidence);
  void skip(std::string what, std::string why);
  void note(std::string text);
  void table(Table table);
  // Hide the generic results table when the lab prints its own tables of the same figures.
  bool show_results_table = true;
  // List only the verdicts that do not hold (with a count of the others), when a table
  // already shows them all.
  bool show_holding_verdicts = true;

  const std::vector<Result>& results() const { return results_; }
  const std::vector<Verdict>& verdicts() const { return verdicts_; }
  const std::vector<Skip>& skipped() const { return skipped_; }

  nlohmann::json to_json() const;
  void print_human(std::ostream& out) const;

 private:
  std::string lab_;
  std::string cmdline_;
  std::string started_;
  std::vector<Result> results_;
  std::vector<Verdict> verdicts_;
  std::vector<Skip> skipped_;
  std::vector<std::string> notes_;
  std::vector<Table> tables_;
};

}  // namespace oslab
