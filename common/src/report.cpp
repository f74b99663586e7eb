#include "oslab/report.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "oslab/clock.hpp"
#include "oslab/machine.hpp"

namespace oslab {

std::string format_number(double value) {
  double magnitude = std::fabs(value);
  if (magnitude >= 100 || value == std::floor(value)) return fmt::format("{:.0f}", value);
  if (magnitude >= 10) return fmt::format("{:.1f}", value);
  if (magnitude >= 1) return fmt::format("{:.2f}", value);
  if (magnitude >= 0.01) return fmt::format("{:.3f}", value);
  return fmt::format("{:.2g}", value);
}

std::string format_duration(double ns) {
  double magnitude = std::fabs(ns);
  if (magnitude >= 1e9) return format_number(ns / 1e9) + " s";
  if (magnitude >= 1e6) return format_number(ns / 1e6) + " ms";
  if (magnitude >= 1e3) return format_number(ns / 1e3) + " us";
  return format_number(ns) + " ns";
}

namespace {

bool looks_numeric(const std::string& cell) {
  if (cell.empty()) return false;
  char first = cell.front();
  return (first >= '0' && first <= '9') || first == '-' || first == '+' || first == '.';
}

std::string iso8601_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);  // a date for people, never used for timing
  tm utc{};
  ::gmtime_r(&ts.tv_sec, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string format_params(const nlohmann::json& params) {
  std::string text;
  for (const auto& [key, value] : params.items()) {
    if (!text.empty()) text += ", ";
    text += key + "=" + (value.is_string() ? value.get<std::string>() : value.dump());
  }
  return text;
}

}  // namespace

void print_table(std::ostream& out, const Table& table) {
  if (!table.title.empty()) out << table.title << "\n";
  std::vector<size_t> widths(table.header.size(), 0);
  for (size_t c = 0; c < table.header.size(); ++c) widths[c] = table.header[c].size();
  for (const auto& row : table.rows)
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  auto print_row = [&](const std::vector<std::string>& row, bool header) {
    std::string line = " ";
    for (size_t c = 0; c < widths.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      bool right = !header && c >= table.label_columns && looks_numeric(cell);
      line += "  ";
      line += right ? fmt::format("{:>{}}", cell, widths[c]) : fmt::format("{:<{}}", cell, widths[c]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  print_row(table.header, true);
  std::string rule = " ";
  for (size_t width : widths) rule += "  " + std::string(width, '-');
  out << rule << "\n";
  for (const auto& row : table.rows) print_row(row, false);
  if (!table.footnote.empty()) out << table.footnote << "\n";
  out << "\n";
}

Report::Report(std::string lab, std::string cmdline)
    : lab_(std::move(lab)), cmdline_(std::move(cmdline)), started_(iso8601_now()) {}

Result& Report::add(std::string name, nlohmann::json result_params, const Measurement& measurement, std::string what) {
  Result result;
  result.name = std::move(name);
  result.params = std::move(result_params);
  result.what = std::move(what);
  result.summary = summarize(measurement.samples_ns);
  result.samples = measurement.samples_ns;
  result.counters = measurement.self_per_op.to_map();
  for (auto& [key, value] : measurement.children_per_op.to_map("child_")) result.counters[key] = value;
  return add(std::move(result));
}

Result& Report::add(Result result) {
  results_.push_back(std::move(result));
  return results_.back();
}

void Report::verdict(std::string claim, bool holds, std::string evidence) {
  verdicts_.push_back({std::move(claim), holds, std::move(evidence)});
}

void Report::skip(std::string what, std::string why) {
  skipped_.push_back({std::move(what), std::move(why)});
}
void Report::note(std::string text) {
  notes_.push_back(std::move(text));
}
void Report::table(Table table) {
  tables_.push_back(std::move(table));
}

nlohmann::json Report::to_json() const {
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : results_) {
    const Summary& s = r.summary;
    results.push_back({{"name", r.name},
                       {"params", r.params},
                       {"unit", r.unit},
                       {"what", r.what},
                       {"n", s.n},
                       {"min", s.min},
                       {"p50", s.p50},
                       {"p90", s.p90},
                       {"p99", s.p99},
                       {"max", s.max},
                       {"mean", s.mean},
                       {"stddev", s.stddev},
                       {"p50_ci95", {s.p50_ci_low, s.p50_ci_high}},
                       {"counters", r.counters},
                       {"headline", r.headline},
                       {"samples", r.samples}});
  }
  nlohmann::json verdicts = nlohmann::json::array();
  for (const auto& v : verdicts_)
    verdicts.push_back({{"claim", v.claim}, {"holds", v.holds}, {"evidence", v.evidence}});
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& s : skipped_) skipped.push_back({{"what", s.what}, {"why", s.why}});
  return {{"schema", "oslab/1"},
          {"lab", lab_},
          {"cmdline", cmdline_},
          {"started", started_},
          {"machine", machine().to_json()},
          {"params", params},
          {"results", results},
          {"verdicts", verdicts},
          {"skipped", skipped},
          {"notes", notes_}};
}

void Report::print_human(std::ostream& out) const {
  if (show_results_table && !results_.empty()) {
    Table table{
        "Results (time per operation; counters per operation)",
        {"what", "params", "n", "p50", "p90", "p99", "min", "max", "p50 95% CI", "minflt", "vol.sw", "invol.sw"},
        {},
        "",
        2};
    for (const auto& r : results_) {
      const Summary& s = r.summary;
      auto counter = [&](const char* key) {
        auto it = r.counters.find(key);
        return it == r.counters.end() ? std::string("-") : format_number(it->second);
      };
      auto value = [&](double v) { return r.unit == "ns" ? format_duration(v) : format_number(v) + " " + r.unit; };
      table.rows.push_back({r.name, format_params(r.params), std::to_string(s.n), value(s.p50), value(s.p90),
                            value(s.p99), value(s.min), value(s.max),
                            value(s.p50_ci_low) + " .. " + value(s.p50_ci_high), counter("minor_faults"),
                            counter("voluntary_switches"), counter("involuntary_switches")});
    }
    print_table(out, table);
  }
  for (const auto& table : tables_) print_table(out, table);
  if (!verdicts_.empty()) {
    const auto holding = std::count_if(verdicts_.begin(), verdicts_.end(), [](const Verdict& v) { return v.holds; });
    out << fmt::format("Verdicts ({} of {} hold)\n", holding, verdicts_.size());
    for (const auto& v : verdicts_)
      if (show_holding_verdicts || !v.holds)
        out << fmt::format("  [{}] {}\n      {}\n", v.holds ? "holds" : "DOES NOT HOLD", v.claim, v.evidence);
    out << "\n";
  }
  if (!skipped_.empty()) {
    out << "Skipped\n";
    for (const auto& s : skipped_) out << fmt::format("  {}: {}\n", s.what, s.why);
    out << "\n";
  }
  for (const auto& n : notes_) out << "Note: " << n << "\n";
  if (!notes_.empty()) out << "\n";
}

}  // namespace oslab
