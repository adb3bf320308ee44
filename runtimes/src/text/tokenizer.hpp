// Tokenizing and detokenizing in native code: the bundle's openvino-tokenizers IR compiled on
// CPU by a core that has the openvino-tokenizers extension loaded.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <openvino/openvino.hpp>

namespace es {

// Adds the openvino-tokenizers extension to core (once per process). Search order: explicit
// path, $EDGESPEC_TOKENIZERS_EXTENSION, then libopenvino_tokenizers beside libopenvino as the
// Python wheels lay them out (site-packages/openvino/libs -> site-packages/openvino_tokenizers/lib).
void add_tokenizers_extension(ov::Core &core, const std::string &explicit_path);

class Tokenizer {
public:
    Tokenizer(ov::Core &core, const std::string &tokenizer_xml, const std::string &detokenizer_xml);
    // Ids of text; throws ES_ERR_INVALID_ARGUMENT for text that is not valid UTF-8.
    std::vector<int64_t> encode(const std::string &text);
    std::string decode(const int64_t *ids, size_t n);

private:
    ov::InferRequest encoder_, decoder_;
    std::vector<int64_t> scratch_;
};

// Length of the longest prefix of s that is well-formed UTF-8 (no stray, overlong or truncated
// sequences, no surrogates).
size_t valid_utf8_prefix(std::string_view s);

// Length of the longest prefix of s that is complete UTF-8 and does not end in U+FFFD (what a
// detokenizer emits for a partial byte sequence).
size_t complete_utf8_prefix(const std::string &s);

}  // namespace es
