// FNV-1a, 64 bits: a fast fingerprint of bytes (cache keys and checksums; not a security boundary).
#pragma once
#include <cstddef>
#include <cstdint>

namespace es {

inline uint64_t fnv1a(const void *data, size_t n, uint64_t h = 1469598103934665603ull) {
    const auto *p = static_cast<const unsigned char *>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

}  // namespace es
