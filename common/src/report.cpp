#include "oslab/report.hpp"

#include <time.h>

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "oslab/contention.hpp"
#include "oslab/error.hpp"
#include "oslab/histogram.hpp"
#include "oslab/machine.hpp"
#include "oslab/version.hpp"

namespace oslab {

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
  (void)std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

bool params_include(const nlohmann::json& params, const nlohmann::json& subset) {
  for (const auto& [key, value] : subset.items())
    if (!params.contains(key) || params[key] != value) return false;
  return true;
}

std::string state_label(VerdictState state) {
  switch (state) {
    case VerdictState::holds: return "holds";
    case VerdictState::does_not_hold: return "DOES NOT HOLD";
    case VerdictState::inconclusive: return "inconclusive";
  }
  return "?";
}

}  // namespace

const char* to_string(VerdictState state) {
  switch (state) {
    case VerdictState::holds: return "holds";
    case VerdictState::does_not_hold: return "does-not-hold";
    case VerdictState::inconclusive: return "inconclusive";
  }
  return "inconclusive";
}

VerdictState decide(const Estimate& estimate, Compare compare, double threshold) {
  const bool low_above = estimate.low > threshold, high_above = estimate.high > threshold;
  if (compare == Compare::above) {
    if (low_above) return VerdictState::holds;
    if (!high_above) return VerdictState::does_not_hold;
  } else {
    if (estimate.high < threshold) return VerdictState::holds;
    if (estimate.low >= threshold) return VerdictState::does_not_hold;
  }
  return VerdictState::inconclusive;
}

VerdictState all_of(const std::vector<VerdictState>& states) {
  bool inconclusive = false;
  for (VerdictState state : states) {
    if (state == VerdictState::does_not_hold) return state;
    inconclusive = inconclusive || state == VerdictState::inconclusive;
  }
  return inconclusive ? VerdictState::inconclusive : VerdictState::holds;
}

VerdictState all_of(std::initializer_list<VerdictState> states) {
  return all_of(std::vector<VerdictState>(states));
}

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

const Result& Report::add(std::string name, nlohmann::json result_params, const Measurement& measurement,
                          ResultInfo info) {
  auto counters = measurement.self_per_op.to_map();
  for (auto& [key, value] : measurement.children_per_op.to_map("child_")) counters[key] = value;
  for (auto& [key, value] : info.counters) counters[key] = value;
  info.counters = std::move(counters);
  return add_samples(std::move(name), std::move(result_params), measurement.samples_ns, std::move(info),
                     measurement.blocks);
}

const Result& Report::add_samples(std::string name, nlohmann::json result_params, std::vector<double> samples,
                                  ResultInfo info, std::vector<size_t> blocks) {
  Result result;
  result.name = std::move(name);
  result.params = result_params.is_null() ? nlohmann::json::object() : std::move(result_params);
  result.unit = std::move(info.unit);
  result.what = std::move(info.what);
  result.summary = blocks.empty() ? summarize(samples) : summarize_blocks(samples, blocks);
  result.samples = std::move(samples);
  result.blocks = std::move(blocks);
  result.counters = std::move(info.counters);
  result.headline = info.headline;
  results_.push_back(std::move(result));
  return results_.back();
}

const Result& Report::add_histogram(std::string name, nlohmann::json result_params, const LogHistogram& histogram,
                                    ResultInfo info) {
  Result result;
  result.name = std::move(name);
  result.params = result_params.is_null() ? nlohmann::json::object() : std::move(result_params);
  result.unit = std::move(info.unit);
  result.what = std::move(info.what);
  result.summary = histogram.summary();
  result.histogram = nlohmann::json::array();
  for (const auto& [lower, count] : histogram.buckets()) result.histogram.push_back({lower, count});
  result.counters = std::move(info.counters);
  result.headline = info.headline;
  results_.push_back(std::move(result));
  return results_.back();
}

const Result* Report::find(std::string_view name, const nlohmann::json& params_subset) const {
  for (const auto& result : results_)
    if (result.name == name && params_include(result.params, params_subset)) return &result;
  return nullptr;
}

const Result& Report::get(std::string_view name, const nlohmann::json& params_subset) const {
  if (const Result* result = find(name, params_subset)) return *result;
  throw std::logic_error(fmt::format("no result '{}' with {}", name, params_subset.dump()));
}

void Report::fact(std::string id, std::string claim, bool holds, std::string evidence) {
  verdicts_.push_back({std::move(id), std::move(claim), state_of(holds), std::move(evidence), false});
}

void Report::verdict(std::string id, std::string claim, VerdictState state, std::string evidence) {
  verdicts_.push_back({std::move(id), std::move(claim), state, std::move(evidence), true});
}

void Report::verdict(std::string id, std::string claim, const Estimate& estimate, Compare compare, double threshold,
                     std::string evidence, const std::string& unit) {
  auto show = [&](double value) {
    if (unit == "ns") return format_duration(value);
    if (unit == "x") return fmt::format("{:.2f}x", value);
    return format_number(value) + (unit.empty() ? "" : " " + unit);
  };
  const VerdictState state = decide(estimate, compare, threshold);
  evidence +=
      fmt::format(" (holds when {} {} {}; 95% interval {} .. {}{})", show(estimate.value),
                  compare == Compare::above ? ">" : "<", show(threshold), show(estimate.low), show(estimate.high),
                  state == VerdictState::inconclusive ? ", which straddles the threshold" : "");
  verdict(std::move(id), std::move(claim), state, std::move(evidence));
}

const Verdict* Report::find_verdict(std::string_view id) const {
  for (const auto& v : verdicts_)
    if (v.id == id) return &v;
  return nullptr;
}

bool Report::run_case(const std::string& what, const std::function<void()>& body) {
  try {
    body();
    return true;
  } catch (const SkipError& e) {
    skip(what, e.what());
  } catch (const UsageError&) {
    throw;  // bad input is the whole run's
  } catch (const std::exception& e) {
    fail(what, e.what());
  }
  return false;
}

void Report::skip(std::string what, std::string why) {
  skipped_.push_back({std::move(what), std::move(why)});
}
void Report::fail(std::string what, std::string why) {
  failed_.push_back({std::move(what), std::move(why)});
}
void Report::note(std::string text) {
  notes_.push_back(std::move(text));
}
void Report::table(Table table) {
  tables_.push_back(std::move(table));
}
void Report::plot(Plot plot) {
  plots_.push_back(std::move(plot));
}

void Report::machine_was_busy(const Contention& c) {
  const std::string why =
      fmt::format("other work used {:.2f} CPUs on average and the hypervisor stole {:.2f} while this lab measured",
                  c.other_cpus, c.steal_cpus);
  int downgraded = 0;
  for (auto& v : verdicts_) {
    if (!v.from_timing || v.state == VerdictState::inconclusive) continue;
    v.evidence += fmt::format(" [would be '{}', but {}]", to_string(v.state), why);
    v.state = VerdictState::inconclusive;
    ++downgraded;
  }
  note(
      fmt::format("the machine was busy during this run: {} (/proc/stat, less this lab's own CPU time). Figures "
                  "include time spent waiting for a CPU{}: rerun on an idle machine.",
                  why, downgraded ? fmt::format(", and {} measured verdict(s) are inconclusive", downgraded) : ""));
}

nlohmann::json result_to_json(const Result& r) {
  const Summary& s = r.summary;
  nlohmann::json json = {{"name", r.name},
                         {"params", r.params},
                         {"unit", r.unit},
                         {"what", r.what},
                         {"n", s.n},
                         {"min", s.min},
                         {"p50", s.p50},
                         {"p90", s.p90},
                         {"p99", s.p99},
                         {"p99_9", s.p999},
                         {"max", s.max},
                         {"mean", s.mean},
                         {"stddev", s.stddev},
                         {"p50_ci95", {s.p50_ci_low, s.p50_ci_high}},
                         {"ci_coverage", s.ci_coverage},
                         {"ci_basis", s.ci_basis},
                         {"counters", r.counters},
                         {"headline", r.headline},
                         {"samples", r.samples}};
  if (!r.blocks.empty()) {
    json["blocks"] = r.blocks;
    json["block_spread"] = s.block_spread;
  }
  if (!r.histogram.is_null()) json["histogram"] = r.histogram;
  if (s.modes.multimodal)
    json["modes"] = {{"low_p50", s.modes.low_p50},
                     {"high_p50", s.modes.high_p50},
                     {"low_fraction", s.modes.low_fraction},
                     {"separation", s.modes.separation},
                     {"persistence", s.modes.persistence}};
  return json;
}

nlohmann::json Report::to_json() const {
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : results_) results.push_back(result_to_json(r));
  nlohmann::json verdicts = nlohmann::json::array();
  for (const auto& v : verdicts_)
    verdicts.push_back({{"id", v.id},
                        {"claim", v.claim},
                        {"state", to_string(v.state)},
                        {"holds", v.holds()},
                        {"evidence", v.evidence},
                        {"measured", v.from_timing}});
  auto skips = [](const std::vector<Skip>& list) {
    nlohmann::json json = nlohmann::json::array();
    for (const auto& s : list) json.push_back({{"what", s.what}, {"why", s.why}});
    return json;
  };
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& t : tables_)
    tables.push_back({{"title", t.title}, {"header", t.header}, {"rows", t.rows}, {"footnote", t.footnote}});
  nlohmann::json plots = nlohmann::json::array();
  for (const auto& p : plots_)
    plots.push_back({{"id", p.id},
                     {"title", p.title},
                     {"kind", p.kind},
                     {"x_param", p.x_param},
                     {"x_label", p.x_label},
                     {"y_label", p.y_label},
                     {"series", p.series},
                     {"where", p.where},
                     {"names", p.names},
                     {"log_x", p.log_x},
                     {"log_y", p.log_y}});
  return {{"schema", "oslab/1"}, {"version", kVersion},        {"lab", lab_},
          {"cmdline", cmdline_}, {"started", started_},        {"machine", machine().to_json()},
          {"params", params},    {"results", results},         {"verdicts", verdicts},
          {"tables", tables},
          {"plots", plots},    {"skipped", skips(skipped_)}, {"failed", skips(failed_)},
          {"notes", notes_}};
}

nlohmann::json Report::varying_params(const nlohmann::json& of) const {
  nlohmann::json shown = nlohmann::json::object();
  for (const auto& item : of.items()) {
    const std::string& key = item.key();
    const nlohmann::json& value = item.value();
    const bool varies = std::any_of(results_.begin(), results_.end(), [&](const Result& other) {
      return !other.params.contains(key) || other.params[key] != value;
    });
    if (varies) shown[key] = value;
  }
  return shown;
}

void Report::print_human(std::ostream& out) const {
  if (show_results_table && !results_.empty()) {
    Table table{
        "Results (time per operation; counters per operation)",
        {"result", "params", "n", "p50", "p90", "p99", "min", "max", "p50 95% CI", "minflt", "vol.sw", "invol.sw"},
        {},
        "",
        2};
    for (const auto& r : results_) {
      const Summary& s = r.summary;
      auto counter = [&](const char* key) {
        auto it = r.counters.find(key);
        return it == r.counters.end() ? std::string("-") : format_number(it->second);
      };
      auto value = [&](double v) { return format_value(v, r.unit); };
      table.rows.push_back({r.name, format_params(varying_params(r.params)), std::to_string(s.n), value(s.p50),
                            value(s.p90), value(s.p99), value(s.min), value(s.max),
                            value(s.p50_ci_low) + " .. " + value(s.p50_ci_high), counter("minor_faults"),
                            counter("voluntary_switches"), counter("involuntary_switches")});
    }
    print_table(out, table);
  }
  for (const auto& table : tables_) print_table(out, table);

  // Results with two modes: the headline ones named, the others counted (all are in --json).
  std::vector<std::string> two_modes;
  size_t other_two_modes = 0;
  for (const auto& r : results_) {
    const Modes& m = r.summary.modes;
    if (!m.multimodal) continue;
    if (!r.headline) {
      ++other_two_modes;
      continue;
    }
    two_modes.push_back(fmt::format("{} ({}): {} ({:.0f}% of samples) and {} ({:.0f}%){}", r.name,
                                    format_params(varying_params(r.params)), format_value(m.low_p50, r.unit),
                                    100 * m.low_fraction, format_value(m.high_p50, r.unit), 100 * (1 - m.low_fraction),
                                    m.persistence > 0.9 ? ", each persisting for long stretches" : ""));
  }
  if (!two_modes.empty() || other_two_modes > 0) {
    out << "Two modes: the samples of these results fall into two groups (another placement, a cache or\n"
           "frequency state); the median sits in one of them, and a rerun may land in the other\n";
    for (const auto& line : two_modes) out << "  " << line << "\n";
    if (other_two_modes > 0)
      out << fmt::format("  {}{} result(s) (\"modes\" in --json)\n", two_modes.empty() ? "" : "and ", other_two_modes);
    out << "\n";
  }

  if (!verdicts_.empty()) {
    auto count = [&](VerdictState state) {
      return std::count_if(verdicts_.begin(), verdicts_.end(), [&](const Verdict& v) { return v.state == state; });
    };
    const auto inconclusive = count(VerdictState::inconclusive);
    out << fmt::format("Verdicts ({} of {} hold{})\n", count(VerdictState::holds), verdicts_.size(),
                       inconclusive ? fmt::format(", {} inconclusive", inconclusive) : "");
    for (const auto& v : verdicts_)
      if (show_holding_verdicts || !v.holds())
        out << fmt::format("  [{}] {}\n      {}\n", state_label(v.state), v.claim, v.evidence);
    out << "\n";
  }
  if (!skipped_.empty()) {
    out << "Skipped\n";
    for (const auto& s : skipped_) out << fmt::format("  {}: {}\n", s.what, s.why);
    out << "\n";
  }
  if (!failed_.empty()) {
    out << "FAILED\n";
    for (const auto& s : failed_) out << fmt::format("  {}: {}\n", s.what, s.why);
    out << "\n";
  }
  for (const auto& n : notes_) out << "Note: " << n << "\n";
  if (!notes_.empty()) out << "\n";
}

}  // namespace oslab
