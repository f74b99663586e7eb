#include "schema_check.hpp"

#include <fstream>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

namespace oslab::test {
namespace {

bool has_type(const nlohmann::json& value, const std::string& type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "integer") return value.is_number_integer() || value.is_number_unsigned();
  if (type == "number") return value.is_number();
  throw std::invalid_argument("unknown type in schema: " + type);
}

class Checker {
 public:
  explicit Checker(const nlohmann::json& root) : root_(root) {}

  void check(const nlohmann::json& value, const nlohmann::json& schema, const std::string& path) {
    static const std::set<std::string> known = {
        "$schema", "$id",      "title",      "description",          "$defs", "type",     "const",
        "enum",    "required", "properties", "additionalProperties", "items", "minItems", "maxItems",
        "minimum", "$ref"};
    for (const auto& [keyword, ignored] : schema.items())
      if (!known.count(keyword)) throw std::invalid_argument("schema keyword not implemented: " + keyword);
    if (schema.contains("$ref")) {
      const std::string ref = schema["$ref"];
      const std::string prefix = "#/$defs/";
      if (!ref.starts_with(prefix)) throw std::invalid_argument("unsupported $ref " + ref);
      check(value, root_.at("$defs").at(ref.substr(prefix.size())), path);
    }
    if (schema.contains("type")) {
      std::vector<std::string> types;
      if (schema["type"].is_array())
        for (const auto& t : schema["type"]) types.push_back(t);
      else
        types.push_back(schema["type"]);
      bool any = false;
      for (const auto& t : types) any = any || has_type(value, t);
      if (!any) {
        error(path, fmt::format("expected {}, got {}", schema["type"].dump(), value.type_name()));
        return;
      }
    }
    if (schema.contains("const") && value != schema["const"])
      error(path, fmt::format("expected {}, got {}", schema["const"].dump(), value.dump()));
    if (schema.contains("enum")) {
      bool found = false;
      for (const auto& option : schema["enum"]) found = found || option == value;
      if (!found) error(path, fmt::format("{} is not one of {}", value.dump(), schema["enum"].dump()));
    }
    if (schema.contains("minimum") && value.is_number() && value.get<double>() < schema["minimum"].get<double>())
      error(path, fmt::format("{} is below the minimum {}", value.dump(), schema["minimum"].dump()));
    if (value.is_object()) {
      if (schema.contains("required"))
        for (const auto& key : schema["required"])
          if (!value.contains(key.get<std::string>())) error(path, "missing " + key.get<std::string>());
      const nlohmann::json properties = schema.value("properties", nlohmann::json::object());
      for (const auto& [key, member] : value.items()) {
        if (properties.contains(key))
          check(member, properties[key], path + "/" += key);
        else if (schema.contains("additionalProperties")) {
          const auto& extra = schema["additionalProperties"];
          if (extra.is_boolean() && !extra.get<bool>()) error(path, "unexpected " + key);
          if (extra.is_object()) check(member, extra, path + "/" += key);
        }
      }
    }
    if (value.is_array()) {
      if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>())
        error(path, fmt::format("{} items, fewer than {}", value.size(), schema["minItems"].dump()));
      if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>())
        error(path, fmt::format("{} items, more than {}", value.size(), schema["maxItems"].dump()));
      if (schema.contains("items"))
        for (size_t i = 0; i < value.size(); ++i) check(value[i], schema["items"], fmt::format("{}/{}", path, i));
    }
  }

  std::vector<std::string> errors;

 private:
  void error(const std::string& path, const std::string& what) {
    if (errors.size() < 50) errors.push_back((path.empty() ? "/" : path) + ": " + what);
  }
  const nlohmann::json& root_;
};

}  // namespace

std::vector<std::string> schema_errors(const nlohmann::json& document, const nlohmann::json& schema) {
  Checker checker(schema);
  checker.check(document, schema, "");
  return checker.errors;
}

const nlohmann::json& oslab_schema() {
  static const nlohmann::json schema = [] {
    std::ifstream in(std::string(OSLAB_SOURCE_DIR) + "/docs/schema/oslab-1.json");
    if (!in) throw std::runtime_error("cannot read docs/schema/oslab-1.json");
    return nlohmann::json::parse(in);
  }();
  return schema;
}

}  // namespace oslab::test
