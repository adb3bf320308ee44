#include "text/tokenizer.hpp"

#include <sys/stat.h>
#include <cstdlib>
#include <mutex>
#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#include "core/error.hpp"

namespace es {

static bool file_exists(const std::string &p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0;
}

static std::string find_tokenizers_extension(const std::string &explicit_path) {
    if (!explicit_path.empty()) {
        if (!file_exists(explicit_path))
            throw Error(ES_ERR_IO,
                        "The openvino-tokenizers extension " + explicit_path + " does not exist; pass the path of libopenvino_tokenizers.");
        return explicit_path;
    }
    if (const char *env = std::getenv("EDGESPEC_TOKENIZERS_EXTENSION"); env && *env) {
        if (!file_exists(env))
            throw Error(ES_ERR_IO,
                        std::string("EDGESPEC_TOKENIZERS_EXTENSION points to ") + env + ", which does not exist; fix or unset it.");
        return env;
    }
#if !defined(_WIN32)
    Dl_info info{};
    if (dladdr(reinterpret_cast<void *>(&ov::get_openvino_version), &info) && info.dli_fname) {
        std::string lib = info.dli_fname;
        std::string dir = lib.substr(0, lib.find_last_of('/'));
        for (const char *rel : {"/../../openvino_tokenizers/lib/libopenvino_tokenizers.so", "/libopenvino_tokenizers.so"}) {
            std::string cand = dir + rel;
            if (file_exists(cand)) return cand;
        }
    }
#endif
    throw Error(ES_ERR_IO,
                "The openvino-tokenizers extension (libopenvino_tokenizers) was not found; install the "
                "openvino-tokenizers package or set EDGESPEC_TOKENIZERS_EXTENSION to its path.");
}

void add_tokenizers_extension(ov::Core &core, const std::string &explicit_path) {
    static std::mutex mu;
    static std::string loaded;
    std::lock_guard<std::mutex> lock(mu);
    if (!loaded.empty()) return;
    std::string path = find_tokenizers_extension(explicit_path);
    try {
        core.add_extension(path);
    } catch (const std::exception &e) {
        throw Error(ES_ERR_IO, "Cannot load the openvino-tokenizers extension " + path + ": " + ov_reason(e.what()) + ".");
    }
    loaded = path;
}

Tokenizer::Tokenizer(ov::Core &core, const std::string &tokenizer_xml, const std::string &detokenizer_xml) {
    try {
        ov::CompiledModel enc = core.compile_model(tokenizer_xml, "CPU"), dec = core.compile_model(detokenizer_xml, "CPU");
        // The calls below assume these shapes: another model named here would fail at every
        // generation instead of at load.
        auto has_output = [](const ov::CompiledModel &m, const char *name) {
            for (const auto &o : m.outputs())
                if (o.get_names().count(name)) return true;
            return false;
        };
        if (enc.inputs().size() != 1 || enc.input().get_element_type() != ov::element::string || !has_output(enc, "input_ids"))
            throw Error(ES_ERR_BUNDLE, tokenizer_xml + " is not a tokenizer (one text input, an input_ids output); re-export the bundle.");
        if (dec.inputs().size() != 1 || !dec.input().get_element_type().is_integral() || dec.outputs().size() != 1 ||
            dec.output().get_element_type() != ov::element::string)
            throw Error(ES_ERR_BUNDLE, detokenizer_xml + " is not a detokenizer (one id input, one text output); re-export the bundle.");
        encoder_ = enc.create_infer_request();
        decoder_ = dec.create_infer_request();
    } catch (const Error &) {
        throw;
    } catch (const std::exception &e) {
        throw Error(ES_ERR_BUNDLE,
                    "Cannot load the tokenizer of the bundle (" + tokenizer_xml + "): " + ov_reason(e.what()) + "; re-export the bundle.");
    }
}

std::vector<int64_t> Tokenizer::encode(const std::string &text) {
    // openvino-tokenizers may crash on malformed UTF-8: refuse it here, where a message can say why.
    if (size_t ok = valid_utf8_prefix(text); ok < text.size())
        throw Error(ES_ERR_INVALID_ARGUMENT, "The text is not valid UTF-8 (at byte " + std::to_string(ok) + "); pass UTF-8 text.");
    ov::Tensor in(ov::element::string, {1});
    in.data<std::string>()[0] = text;
    encoder_.set_input_tensor(in);
    encoder_.infer();
    ov::Tensor ids = encoder_.get_tensor("input_ids");
    std::vector<int64_t> out(ids.get_size());
    if (ids.get_element_type() == ov::element::i64) {
        const int64_t *p = ids.data<const int64_t>();
        out.assign(p, p + ids.get_size());
    } else {
        const int32_t *p = ids.data<const int32_t>();
        for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
    }
    return out;
}

std::string Tokenizer::decode(const int64_t *ids, size_t n) {
    if (n == 0) return {};
    scratch_.assign(ids, ids + n);
    decoder_.set_input_tensor(ov::Tensor(ov::element::i64, {1, n}, scratch_.data()));
    decoder_.infer();
    return decoder_.get_output_tensor().data<std::string>()[0];
}

size_t valid_utf8_prefix(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 4;
        if (n == 4 || i + n >= s.size()) break;  // not a lead byte, or cut short
        // the second byte's range excludes overlong forms, surrogates and code points past U+10FFFF
        const unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        bool ok = true;
        for (size_t j = 1; j <= n && ok; ++j) {
            const unsigned char b = static_cast<unsigned char>(s[i + j]);
            ok = j == 1 ? b >= lo && b <= hi : (b & 0xC0) == 0x80;
        }
        if (!ok) break;
        i += n + 1;
    }
    return i;
}

size_t complete_utf8_prefix(const std::string &s) {
    size_t end = s.size();
    // Drop a trailing U+FFFD (EF BF BD): a detokenizer's stand-in for a partial sequence.
    while (end >= 3 && static_cast<unsigned char>(s[end - 3]) == 0xEF && static_cast<unsigned char>(s[end - 2]) == 0xBF &&
           static_cast<unsigned char>(s[end - 1]) == 0xBD)
        end -= 3;
    // Drop a trailing incomplete multi-byte sequence.
    size_t i = end, cont = 0;
    while (i > 0 && cont < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
        --i;
        ++cont;
    }
    if (i > 0) {
        unsigned char lead = static_cast<unsigned char>(s[i - 1]);
        size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
        if (lead >= 0xC0 && cont < need) return i - 1;
    }
    return end;
}

}  // namespace es
