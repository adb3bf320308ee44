// A small JSON reader, enough for edgespec.json, and quote() for the few strings the runtime writes. Values are a tagged tree; lookups
// of missing keys return a shared null value so chains like v["a"]["b"].str("x") never throw.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace es::json {

struct Value {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool b = false;
    double num = 0;
    std::string s;
    std::vector<Value> arr;
    std::map<std::string, Value> obj;

    bool is_null() const { return kind == Null; }
    bool has(const std::string &key) const { return kind == Object && obj.count(key); }
    const Value &operator[](const std::string &key) const;
    const Value &operator[](size_t i) const;
    size_t size() const { return kind == Array ? arr.size() : kind == Object ? obj.size() : 0; }
    // Typed reads with a fallback when the value is absent or of another kind.
    std::string str(const std::string &fallback = "") const { return kind == String ? s : fallback; }
    // Whole numbers within int64 only: casting 1e300, 0.5 or NaN would be undefined or silently wrong.
    int64_t integer(int64_t fallback = 0) const {
        return kind == Number && num == std::floor(num) && num >= -9.2e18 && num <= 9.2e18 ? static_cast<int64_t>(num) : fallback;
    }
};

// Parses text; throws std::runtime_error("... at offset N") on malformed input.
Value parse(const std::string &text);

// s as a JSON string literal (quotes, backslashes and control characters escaped; other bytes
// as they are, so UTF-8 stays UTF-8).
std::string quote(const std::string &s);

}  // namespace es::json
