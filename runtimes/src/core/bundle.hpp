// The bundle as the runtime needs it: edgespec.json parsed and checked (see edgespec/bundle.py
// for the full schema; this reader validates only what the native runtime relies on).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/integrity.hpp"

namespace es {

constexpr int64_t kBundleSchemaVersion = 1;

struct ModelSpec {
    std::string name;
    std::string role;                                          // "target" | "draft"
    std::string dir;                                           // absolute-or-bundle-relative directory of the model
    std::string format;                                        // "openvino" | "onnx"
    std::string model_file, tokenizer_file, detokenizer_file;  // full paths
    int64_t vocab_size = 0;
    int64_t context_length = 0;
    std::vector<int64_t> eos;
    int64_t bos = -1;
    std::string relation;                    // drafts: "same_vocab" | "trimmed" | "cross_vocab" | "eagle3"
    std::string id_map_file;                 // trimmed: full path of the little-endian int32 draft->target map;
                                             // eagle3: of the little-endian int64 one
    std::vector<int32_t> target_layers;      // eagle3: the target decoder layers whose outputs the head reads
    int64_t draft_vocab_size = 0;            // eagle3: rows of the head's LM head
    int64_t input_fallback = 0;              // trimmed: draft id fed for a target id the trim did not keep
    std::string token_bytes_file;            // optional (files.token_bytes): byte strings of the tokens, for
                                             // cross-vocabulary drafting; "" when the bundle has none
    std::vector<std::string> external_data;  // onnx: full paths of the external-data files the model reads
};

// Model and file counts a manifest may claim (a corrupt number fails the load instead of sizing
// an allocation).
constexpr int64_t kMaxVocab = 1ll << 24;
constexpr int64_t kMaxContext = 1ll << 24;

struct BundleSpec {
    std::string dir;  // the canonical (symlink-free) path of the bundle directory
    ModelSpec target;
    std::vector<ModelSpec> drafts;
    bool has_integrity = false;         // the manifest records sizes and digests (exports since ABI 5)
    std::vector<FileDigest> integrity;  // every file it records, paths confined to dir
};

// Reads <dir>/edgespec.json; throws es::Error (ES_ERR_IO / ES_ERR_BUNDLE) with a sentence. Every
// path the manifest names must stay inside the bundle: absolute paths, '..' and symbolic links
// that lead out of it are refused (ES_ERR_BUNDLE), so a bundle from elsewhere cannot make the
// runtime read other files of this machine.
BundleSpec read_bundle(const std::string &dir);

// Checks the files the runtime reads for the given models (null entries skipped) against the manifest's integrity table
// (nothing when the bundle has none): sizes always, digests too when hashes is set. Throws
// es::Error(ES_ERR_BUNDLE) naming the first file that differs or that the table does not list.
void verify_bundle(const BundleSpec &bundle, const std::vector<const ModelSpec *> &models, bool hashes);

// Reads a whole file; throws es::Error(ES_ERR_IO).
std::string read_file(const std::string &path);

}  // namespace es
