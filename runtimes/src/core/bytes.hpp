// Fixed-width little-endian values in and out of a byte string (x86 and ARM hosts are
// little-endian, so this is a plain copy): the runtime's own small binary files.
#pragma once
#include <cstring>
#include <string>

namespace es {

template <class T>
void put(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

// Reads a T at p and advances it; false (p unchanged) when fewer than sizeof(T) bytes are left.
template <class T>
bool get(const char *&p, const char *end, T &v) {
    if (static_cast<size_t>(end - p) < sizeof v) return false;
    std::memcpy(&v, p, sizeof v);
    p += sizeof v;
    return true;
}

}  // namespace es
