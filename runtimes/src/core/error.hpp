// Error plumbing shared by every C entry point: a thread-local last-error message and a guard
// that turns any C++ exception into a status code, so nothing ever unwinds into the host.
#pragma once
#include "edgespec.h"

#include <cstring>
#include <exception>
#include <new>
#include <string>

#ifndef EDGESPEC_VERSION_STRING
#define EDGESPEC_VERSION_STRING "0.1.0"
#endif

namespace es {

// A user-facing failure with the status code it maps to.
struct Error : std::exception {
    es_status status;
    std::string message;
    Error(es_status s, std::string m) : status(s), message(std::move(m)) {}
    const char *what() const noexcept override { return message.c_str(); }
};

inline std::string &last_error() {
    static thread_local std::string message;
    return message;
}

// s with control characters escaped (\n, \xNN): a message stays one line whatever names or
// paths a caller quoted into it.
inline std::string printable(const std::string &s) {
    std::string out;
    for (char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (c == '\n')
            out += "\\n";
        else if (c < 0x20 || c == 0x7f) {
            static const char *hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else
            out += ch;
    }
    return out;
}

inline es_status fail(es_status status, const std::string &message) {
    last_error() = printable(message);
    return status;
}

// The sentence in an OpenVINO exception text: its first line that is not a source location
// ("Exception from src/...cpp:97:", "Check '...' failed at ...") and not empty, at most 300 bytes.
inline std::string ov_reason(const std::string &what) {
    size_t at = 0;
    std::string first;
    while (at <= what.size()) {
        size_t end = what.find('\n', at);
        if (end == std::string::npos) end = what.size();
        std::string line = what.substr(at, end - at);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == ':' || line.back() == '.')) line.pop_back();
        while (!line.empty() && line.front() == ' ') line.erase(0, 1);
        if (first.empty()) first = line;
        if (!line.empty() && line.rfind("Exception from ", 0) != 0 && line.rfind("Check '", 0) != 0 &&
            line.find(".cpp:") == std::string::npos)
            return line.substr(0, 300);
        at = end + 1;
    }
    return first.substr(0, 300);
}

// Runs f() and maps exceptions to status codes + last_error.
template <class F>
es_status guard(F &&f) noexcept {
    try {
        return f();
    } catch (const Error &e) {
        return fail(e.status, e.message);
    } catch (const std::bad_alloc &) {
        return fail(ES_ERR_INTERNAL, "out of memory");
    } catch (const std::exception &e) {
        return fail(ES_ERR_INTERNAL, ov_reason(e.what()) + " (an internal error of the runtime; please report it).");
    } catch (...) {
        return fail(ES_ERR_INTERNAL, "unknown native error");
    }
}

// Two-call size query helper: copies s (with NUL) into buf if it fits.
inline es_status copy_out(const std::string &s, char *buf, size_t *size) {
    size_t need = s.size() + 1;
    if (!buf) {
        *size = need;
        return ES_OK;
    }
    if (*size < need) {
        *size = need;
        return fail(ES_ERR_BUFFER_TOO_SMALL, "buffer too small: " + std::to_string(need) + " bytes needed");
    }
    std::memcpy(buf, s.c_str(), need);
    *size = need;
    return ES_OK;
}

}  // namespace es
