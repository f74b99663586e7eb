// Checks a JSON document against a JSON Schema: the subset of keywords docs/schema/oslab-1.json
// uses (type, const, enum, required, properties, additionalProperties, items, minItems,
// maxItems, minimum, $ref to "#/$defs/..."). An unknown keyword is an error, so the schema
// cannot silently ask for more than is checked.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace oslab::test {

// Every place `document` breaks `schema`, as "/results/3/p50: expected number"; empty when it conforms.
std::vector<std::string> schema_errors(const nlohmann::json& document, const nlohmann::json& schema);

// docs/schema/oslab-1.json, read from the source tree.
const nlohmann::json& oslab_schema();

}  // namespace oslab::test
