// Bundle integrity: the size and BLAKE2b digests of every file, recorded by `edgespec export` in
// edgespec.json ("integrity") and checked here before a file is handed to OpenVINO, so a flipped
// byte or a truncated copy fails the load with a sentence instead of crashing the host (the
// tokenizer extension trusts the offsets in its .bin) or generating garbage silently.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace es {

// Digests are BLAKE2b-256 of each kIntegrityChunkBytes piece of a file (the last one shorter), so
// a large weights file hashes on every core at once; edgespec/bundle.py writes the same.
constexpr uint64_t kIntegrityChunkBytes = 64ull << 20;
constexpr const char *kIntegrityAlgorithm = "blake2b-256-chunked";

// What the manifest records for one file.
struct FileDigest {
    std::string rel;   // path relative to the bundle directory, as in the manifest
    std::string path;  // the confined full path
    uint64_t size = 0;
    std::vector<std::string> chunks;  // lower-case hex, one per chunk
};

// BLAKE2b with a 32-byte digest of data[0..n), as lower-case hex (hashlib.blake2b(digest_size=32)).
std::string blake2b_256_hex(const void *data, size_t n);

// Throws es::Error(ES_ERR_BUNDLE) naming the file when its size differs from the manifest's; with
// hashes set, also when a chunk's digest differs. Chunks of all files are hashed on up to
// hardware_concurrency threads.
void verify_files(const std::vector<FileDigest> &files, bool hashes);

}  // namespace es
