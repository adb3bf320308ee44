// Recursive-descent JSON parser (RFC 8259, UTF-8 in and out, \uXXXX with surrogate pairs).
#include "core/json.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace es::json {

static const Value &null_value() {
    static const Value v;
    return v;
}

const Value &Value::operator[](const std::string &key) const {
    if (kind != Object) return null_value();
    auto it = obj.find(key);
    return it == obj.end() ? null_value() : it->second;
}

const Value &Value::operator[](size_t i) const { return kind == Array && i < arr.size() ? arr[i] : null_value(); }

namespace {

struct Parser {
    const std::string &t;
    size_t i = 0;
    int depth = 0;

    [[noreturn]] void fail(const char *what) const { throw std::runtime_error(std::string(what) + " at offset " + std::to_string(i)); }
    void ws() {
        while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) ++i;
    }
    bool eat(char c) {
        ws();
        if (i < t.size() && t[i] == c) {
            ++i;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) fail((std::string("expected '") + c + "'").c_str());
    }
    void literal(const char *word) {
        for (const char *p = word; *p; ++p, ++i)
            if (i >= t.size() || t[i] != *p) fail("invalid literal");
    }
    static void put_utf8(std::string &out, uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }
    uint32_t hex4() {
        if (i + 4 > t.size()) fail("truncated \\u escape");
        uint32_t v = 0;
        for (int n = 0; n < 4; ++n, ++i) {
            char c = t[i];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= c - '0';
            else if (c >= 'a' && c <= 'f')
                v |= c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                v |= c - 'A' + 10;
            else
                fail("bad \\u escape");
        }
        return v;
    }
    std::string string() {
        expect('"');
        std::string out;
        while (true) {
            if (i >= t.size()) fail("unterminated string");
            char c = t[i++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i >= t.size()) fail("unterminated escape");
            char e = t[i++];
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < t.size() && t[i] == '\\' && t[i + 1] == 'u') {
                        i += 2;
                        uint32_t lo = hex4();
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    put_utf8(out, cp);
                    break;
                }
                default:
                    fail("bad escape");
            }
        }
    }
    Value value() {
        if (++depth > 200) fail("nesting too deep");
        ws();
        if (i >= t.size()) fail("unexpected end");
        Value v;
        char c = t[i];
        if (c == '{') {
            v.kind = Value::Object;
            ++i;
            if (!eat('}')) {
                do {
                    ws();
                    std::string key = string();
                    expect(':');
                    v.obj[key] = value();
                } while (eat(','));
                expect('}');
            }
        } else if (c == '[') {
            v.kind = Value::Array;
            ++i;
            if (!eat(']')) {
                do v.arr.push_back(value());
                while (eat(','));
                expect(']');
            }
        } else if (c == '"') {
            v.kind = Value::String;
            v.s = string();
        } else if (c == 't') {
            literal("true");
            v.kind = Value::Bool;
            v.b = true;
        } else if (c == 'f') {
            literal("false");
            v.kind = Value::Bool;
        } else if (c == 'n') {
            literal("null");
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const char *start = t.c_str() + i;
            char *end = nullptr;
            v.kind = Value::Number;
            v.num = std::strtod(start, &end);
            if (end == start) fail("bad number");
            i += static_cast<size_t>(end - start);
        } else {
            fail("unexpected character");
        }
        --depth;
        return v;
    }
};

}  // namespace

Value parse(const std::string &text) {
    Parser p{text};
    Value v = p.value();
    p.ws();
    if (p.i != text.size()) p.fail("trailing characters");
    return v;
}

std::string quote(const std::string &s) {
    std::string out = "\"";
    for (char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

}  // namespace es::json
