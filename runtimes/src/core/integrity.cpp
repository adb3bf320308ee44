// BLAKE2b (RFC 7693), unkeyed, 32-byte digest, and the chunked file check of integrity.hpp.
#include "core/integrity.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/error.hpp"

namespace es {

namespace {

constexpr uint64_t kIv[8] = {0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull, 0x3c6ef372fe94f82bull, 0xa54ff53a5f1d36f1ull,
                             0x510e527fade682d1ull, 0x9b05688c2b3e6c1full, 0x1f83d9abfb41bd6bull, 0x5be0cd19137e2179ull};

constexpr uint8_t kSigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0}};

inline uint64_t rotr(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

inline uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

class Blake2b {
public:
    Blake2b() {
        std::memcpy(h_, kIv, sizeof h_);
        h_[0] ^= 0x01010000ull ^ 32;  // no key, 32-byte digest
    }

    void update(const uint8_t *in, size_t n) {
        while (n > 0) {
            // The last block is compressed by final() (with the last-block flag): keep it buffered.
            if (fill_ == sizeof buf_) {
                count_ += sizeof buf_;
                compress(buf_, false);
                fill_ = 0;
            }
            const size_t take = std::min(n, sizeof buf_ - fill_);
            std::memcpy(buf_ + fill_, in, take);
            fill_ += take;
            in += take;
            n -= take;
        }
    }

    std::string hex() {
        count_ += fill_;
        std::memset(buf_ + fill_, 0, sizeof buf_ - fill_);
        compress(buf_, true);
        static const char *digits = "0123456789abcdef";
        std::string out;
        for (int i = 0; i < 32; ++i) {
            const uint8_t b = static_cast<uint8_t>(h_[i / 8] >> (8 * (i % 8)));
            out += digits[b >> 4];
            out += digits[b & 15];
        }
        return out;
    }

private:
    void compress(const uint8_t *block, bool last) {
        uint64_t m[16], v[16];
        for (int i = 0; i < 16; ++i) m[i] = load64(block + 8 * i);
        for (int i = 0; i < 8; ++i) v[i] = h_[i], v[i + 8] = kIv[i];
        v[12] ^= count_;  // the high half of the 128-bit counter stays 0 below 2^64 bytes
        if (last) v[14] = ~v[14];
        auto g = [&](int a, int b, int c, int d, uint64_t x, uint64_t y) {
            v[a] = v[a] + v[b] + x;
            v[d] = rotr(v[d] ^ v[a], 32);
            v[c] = v[c] + v[d];
            v[b] = rotr(v[b] ^ v[c], 24);
            v[a] = v[a] + v[b] + y;
            v[d] = rotr(v[d] ^ v[a], 16);
            v[c] = v[c] + v[d];
            v[b] = rotr(v[b] ^ v[c], 63);
        };
        for (int r = 0; r < 12; ++r) {
            const uint8_t *s = kSigma[r % 10];
            g(0, 4, 8, 12, m[s[0]], m[s[1]]);
            g(1, 5, 9, 13, m[s[2]], m[s[3]]);
            g(2, 6, 10, 14, m[s[4]], m[s[5]]);
            g(3, 7, 11, 15, m[s[6]], m[s[7]]);
            g(0, 5, 10, 15, m[s[8]], m[s[9]]);
            g(1, 6, 11, 12, m[s[10]], m[s[11]]);
            g(2, 7, 8, 13, m[s[12]], m[s[13]]);
            g(3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        for (int i = 0; i < 8; ++i) h_[i] ^= v[i] ^ v[i + 8];
    }

    uint64_t h_[8];
    uint64_t count_ = 0;
    uint8_t buf_[128];
    size_t fill_ = 0;
};

std::string mismatch(const FileDigest &f, const std::string &what) {
    return "The bundle file " + f.rel + " " + what +
           " than the manifest records (the file is corrupt or was changed after export); re-export the bundle.";
}

// Digest of chunk i of a file; "" when the file cannot be read.
std::string chunk_digest(const std::string &path, uint64_t offset, uint64_t length, std::vector<uint8_t> &buf) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return "";
    Blake2b h;
    uint64_t done = 0;
    bool ok = true;
    while (done < length) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
        const ssize_t got = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
        if (got <= 0) {
            ok = false;
            break;
        }
        h.update(buf.data(), static_cast<size_t>(got));
        done += static_cast<uint64_t>(got);
    }
    ::close(fd);
    return ok ? h.hex() : "";
}

}  // namespace

std::string blake2b_256_hex(const void *data, size_t n) {
    Blake2b h;
    h.update(static_cast<const uint8_t *>(data), n);
    return h.hex();
}

void verify_files(const std::vector<FileDigest> &files, bool hashes) {
    for (const auto &f : files) {
        struct stat st{};
        if (::stat(f.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
            throw Error(ES_ERR_BUNDLE, "The bundle is incomplete: " + f.rel + " is missing; re-export the bundle.");
        const uint64_t size = static_cast<uint64_t>(st.st_size);
        if (size != f.size)
            throw Error(ES_ERR_BUNDLE,
                        mismatch(f, size < f.size ? "is shorter (" + std::to_string(size) + " bytes, not " + std::to_string(f.size) + ")"
                                                  : "is longer (" + std::to_string(size) + " bytes, not " + std::to_string(f.size) + ")"));
        const uint64_t n_chunks = (f.size + kIntegrityChunkBytes - 1) / kIntegrityChunkBytes;
        if (f.chunks.size() != n_chunks)
            throw Error(ES_ERR_BUNDLE, "The bundle manifest records " + std::to_string(f.chunks.size()) + " digests for " + f.rel + " (" +
                                           std::to_string(f.size) + " bytes need " + std::to_string(n_chunks) + "); re-export the bundle.");
    }
    if (!hashes) return;
    struct Job {
        const FileDigest *file;
        size_t chunk;
    };
    std::vector<Job> jobs;
    for (const auto &f : files)
        for (size_t i = 0; i < f.chunks.size(); ++i) jobs.push_back({&f, i});
    std::atomic<size_t> next{0};
    std::vector<std::string> got(jobs.size());
    auto work = [&] {
        std::vector<uint8_t> buf(1 << 20);
        for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
            const FileDigest &f = *jobs[j].file;
            const uint64_t off = jobs[j].chunk * kIntegrityChunkBytes;
            got[j] = chunk_digest(f.path, off, std::min(kIntegrityChunkBytes, f.size - off), buf);
        }
    };
    const size_t n_threads = std::min<size_t>(jobs.size(), std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (size_t t = 1; t < n_threads; ++t) pool.emplace_back(work);
    work();
    for (auto &t : pool) t.join();
    for (size_t j = 0; j < jobs.size(); ++j)
        if (got[j] != jobs[j].file->chunks[jobs[j].chunk])
            throw Error(ES_ERR_BUNDLE, "The bundle file " + jobs[j].file->rel +
                                           " does not match the digest the manifest records (the file is corrupt or was changed after "
                                           "export); re-export the bundle.");
}

}  // namespace es
