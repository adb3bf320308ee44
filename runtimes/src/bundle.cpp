// Manifest reading: every failure names the file and says to re-export.
#include "bundle.hpp"

#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "error.hpp"
#include "json.hpp"

namespace es {

static bool is_file(const std::string &p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const std::string &p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string read_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(ES_ERR_IO, "Cannot read " + path + ": the file is missing or unreadable.");
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

static ModelSpec parse_model(const json::Value &m, const std::string &bundle_dir, size_t index) {
    auto bad = [&](const std::string &what) {
        return Error(ES_ERR_BUNDLE, "The bundle manifest is invalid at models/" + std::to_string(index) + ": " + what +
                                        "; re-export the bundle.");
    };
    ModelSpec s;
    s.name = m["name"].str();
    s.role = m["role"].str();
    s.format = m["format"].str();
    if (s.name.empty()) throw bad("no name");
    if (s.role != "target" && s.role != "draft") throw bad("role must be target or draft");
    if (s.format != "openvino" && s.format != "onnx") throw bad("format must be openvino or onnx");
    s.dir = bundle_dir + "/" + m["path"].str(s.name);
    const auto &files = m["files"];
    s.model_file = s.dir + "/" + files["model"].str();
    s.tokenizer_file = s.dir + "/" + files["tokenizer"].str("openvino_tokenizer.xml");
    s.detokenizer_file = s.dir + "/" + files["detokenizer"].str("openvino_detokenizer.xml");
    if (!files["token_bytes"].str().empty()) s.token_bytes_file = s.dir + "/" + files["token_bytes"].str();
    s.vocab_size = m["vocab_size"].integer(0);
    s.context_length = m["context_length"].integer(0);
    if (s.vocab_size < 1) throw bad("vocab_size must be a positive integer");
    if (s.context_length < 1) throw bad("context_length must be a positive integer");
    const auto &eos = m["special_tokens"]["eos"];
    for (size_t i = 0; i < eos.size(); ++i) s.eos.push_back(eos[i].integer(-1));
    if (m["special_tokens"]["eos"].kind == json::Value::Number) s.eos.push_back(eos.integer(-1));
    s.bos = m["special_tokens"]["bos"].integer(-1);
    if (s.role == "draft") {
        s.relation = m["relation"]["kind"].str();
        if (s.relation.empty()) throw bad("drafter '" + s.name + "' has no relation to the target");
        if (s.relation == "trimmed") {
            std::string map = m["relation"]["id_map"].str("trim_id_map.i32");
            s.id_map_file = s.dir + "/" + map;
            s.input_fallback = m["relation"]["input_fallback"].integer(0);
        } else if (s.relation == "eagle3") {
            const auto &rel = m["relation"];
            s.id_map_file = s.dir + "/" + rel["id_map"].str("eagle3_id_map.i64");
            s.draft_vocab_size = rel["draft_vocab_size"].integer(0);
            const auto &layers = rel["target_layers"];
            for (size_t i = 0; i < layers.size(); ++i) s.target_layers.push_back(static_cast<int32_t>(layers[i].integer(-1)));
            if (s.target_layers.size() != 3 || s.draft_vocab_size < 1)
                throw bad("EAGLE-3 head '" + s.name + "' needs three target_layers and a draft_vocab_size");
            for (int32_t l : s.target_layers)
                if (l < 0) throw bad("EAGLE-3 head '" + s.name + "' names a negative target layer");
        }
    }
    for (const auto *f : {&s.model_file, &s.tokenizer_file, &s.detokenizer_file})
        if (!is_file(*f)) throw Error(ES_ERR_BUNDLE, "The bundle is incomplete: " + *f + " is missing; re-export the bundle.");
    for (const auto *f : {&s.id_map_file, &s.token_bytes_file})
        if (!f->empty() && !is_file(*f)) throw Error(ES_ERR_BUNDLE, "The bundle is incomplete: " + *f + " is missing; re-export the bundle.");
    return s;
}

BundleSpec read_bundle(const std::string &dir) {
    if (!is_dir(dir)) {
        if (is_file(dir))
            throw Error(ES_ERR_IO, dir + " is a file, not a bundle directory; pass the directory `edgespec export` wrote.");
        throw Error(ES_ERR_IO, "No bundle at " + dir + ": the path does not exist; pass the directory `edgespec export` wrote.");
    }
    std::string manifest = dir + "/edgespec.json";
    if (!is_file(manifest))
        throw Error(ES_ERR_BUNDLE, dir + " is not an edgespec bundle (no edgespec.json); create one with `edgespec export`.");
    json::Value root;
    try {
        root = json::parse(read_file(manifest));
    } catch (const Error &) {
        throw;
    } catch (const std::exception &e) {
        throw Error(ES_ERR_BUNDLE, manifest + " is not readable JSON (" + e.what() + "); re-export the bundle.");
    }
    if (root.kind != json::Value::Object) throw Error(ES_ERR_BUNDLE, manifest + " is not a JSON object; re-export the bundle.");
    int64_t version = root["schema_version"].integer(-1);
    if (version != kBundleSchemaVersion)
        throw Error(ES_ERR_BUNDLE, "The bundle has schema version " + std::to_string(version) + " but this edgespec reads version " +
                                       std::to_string(kBundleSchemaVersion) +
                                       "; re-export it with this edgespec or upgrade edgespec.");
    const auto &models = root["models"];
    if (models.kind != json::Value::Array || models.size() == 0)
        throw Error(ES_ERR_BUNDLE, "The bundle manifest lists no models; re-export the bundle.");
    BundleSpec b;
    b.dir = dir;
    int targets = 0;
    for (size_t i = 0; i < models.size(); ++i) {
        ModelSpec m = parse_model(models[i], dir, i);
        if (m.role == "target") {
            b.target = m;
            ++targets;
        } else {
            b.drafts.push_back(m);
        }
    }
    if (targets != 1) throw Error(ES_ERR_BUNDLE, "The bundle manifest must name exactly one target model; re-export the bundle.");
    return b;
}

}  // namespace es
