#include "oslab/format.hpp"

#include <cmath>

#include <fmt/format.h>

namespace oslab {

std::string format_number(double value) {
  if (!std::isfinite(value)) return value != value ? "nan" : (value > 0 ? "inf" : "-inf");
  const double magnitude = std::fabs(value);
  if (magnitude >= 100 || value == std::floor(value)) return fmt::format("{:.0f}", value);
  if (magnitude >= 10) return fmt::format("{:.1f}", value);
  if (magnitude >= 1) return fmt::format("{:.2f}", value);
  if (magnitude >= 0.01) return fmt::format("{:.3f}", value);
  return fmt::format("{:.2g}", value);
}

std::string format_duration(double ns) {
  const double magnitude = std::fabs(ns);
  if (magnitude >= 1e9) return format_number(ns / 1e9) + " s";
  if (magnitude >= 1e6) return format_number(ns / 1e6) + " ms";
  if (magnitude >= 1e3) return format_number(ns / 1e3) + " us";
  return format_number(ns) + " ns";
}

std::string format_signed_duration(double ns) {
  return fmt::format("{}{}", ns < 0 ? '-' : '+', format_duration(std::fabs(ns)));
}

std::string format_value(double value, const std::string& unit) {
  if (unit == "ns") return format_duration(value);
  return format_number(value) + " " + unit;
}

std::string format_percent(double fraction) {
  return format_number(100.0 * fraction) + "%";
}

std::string format_param(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  if (value.is_number()) return format_number(value.get<double>());
  if (value.is_array()) {
    std::string text;
    for (const auto& item : value) {
      if (!text.empty()) text += ',';
      text += format_param(item);
    }
    return text;
  }
  return value.dump();
}

std::string format_params(const nlohmann::json& params) {
  std::string text;
  for (const auto& [key, value] : params.items()) {
    if (!text.empty()) text += ", ";
    text += key + "=" + format_param(value);
  }
  return text;
}

}  // namespace oslab
