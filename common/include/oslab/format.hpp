// How numbers are written for people, in one place (scripts/oslab_format.py is the same
// for the report): about three significant figures, a unit that suits the value.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace oslab {

// A number with about three significant figures: 1234 -> "1234", 1.234 -> "1.23", 0.0123 -> "0.012".
std::string format_number(double value);
// "1.23 ms", "850 ns": a duration in the unit that suits it.
std::string format_duration(double ns);
// The same with its sign always shown: "+1.2 us", "-300 ns", "+0 ns".
std::string format_signed_duration(double ns);
// A value in a result's unit: a duration when the unit is "ns", otherwise "<number> <unit>".
std::string format_value(double value, const std::string& unit);
// "12.5%"
std::string format_percent(double fraction);
// A JSON parameter value for people: strings bare, booleans yes/no, numbers by format_number,
// lists comma-separated.
std::string format_param(const nlohmann::json& value);
// "touched_mib=256, placement=same-cpu"
std::string format_params(const nlohmann::json& params);

}  // namespace oslab
