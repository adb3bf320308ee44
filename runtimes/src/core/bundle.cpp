// Manifest reading: every failure names the file and says to re-export.
#include "core/bundle.hpp"

#include <sys/stat.h>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/json.hpp"
#include "core/onnx_refs.hpp"

namespace es {

static bool is_file(const std::string &p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const std::string &p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The canonical path of p, or "" when it does not exist.
static std::string real_path(const std::string &p) {
    char buf[PATH_MAX];
    return ::realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

// named_by: what names the path (the manifest, or an ONNX model's external data).
static Error outside(const std::string &rel, const std::string &why, const std::string &named_by = "The bundle manifest") {
    return Error(ES_ERR_BUNDLE, named_by + " names " + rel + ", which " + why +
                                    "; a bundle must hold its own files: copy them in or re-export the bundle.");
}

static bool absolute(const std::string &p) { return !p.empty() && (p[0] == '/' || p[0] == '\\' || (p.size() > 1 && p[1] == ':')); }

// The full path of a manifest path (relative to the bundle at root, canonical): refuses absolute
// paths, '..' components and symbolic links that resolve outside the bundle. A path that does
// not exist yet resolves lexically (its absence is reported where the file is needed).

static std::string inside(const std::string &root, const std::string &rel, const std::string &named_by = "The bundle manifest") {
    if (absolute(rel)) throw outside(rel, "is an absolute path", named_by);
    std::string part;
    for (size_t i = 0; i <= rel.size(); ++i) {
        if (i == rel.size() || rel[i] == '/' || rel[i] == '\\') {
            if (part == "..") throw outside(rel, "climbs out of the bundle with '..'", named_by);
            part.clear();
        } else {
            part += rel[i];
        }
    }
    const std::string full = rel.empty() ? root : root + "/" + rel;
    const std::string real = real_path(full);
    if (real.empty()) return full;
    if (real != root && real.compare(0, root.size() + 1, root + "/") != 0)
        throw outside(rel, "is a symbolic link to " + real + ", outside the bundle", named_by);
    return real;
}

// ONNX Runtime and OpenVINO read an ONNX model's external data from the locations its tensors
// name, relative to the model's directory: each must stay inside the bundle and exist. Returns
// their full paths.
static std::vector<std::string> onnx_external_files(const std::string &root, const std::string &model_file) {
    const std::string model_rel = model_file.substr(root.size() + 1);
    const size_t slash = model_rel.rfind('/');
    const std::string dir_rel = slash == std::string::npos ? "" : model_rel.substr(0, slash + 1);
    const std::string named_by = "The external data of the ONNX model " + model_rel;
    std::set<std::string> seen;
    std::vector<std::string> files;
    for (const auto &location : onnx_external_data(model_file)) {
        if (!seen.insert(location).second) continue;
        if (absolute(location)) throw outside(location, "is an absolute path", named_by);
        const std::string data = inside(root, dir_rel + location, named_by);
        if (!is_file(data)) throw Error(ES_ERR_BUNDLE, "The bundle is incomplete: " + data + " is missing; re-export the bundle.");
        files.push_back(data);
    }
    return files;
}

std::string read_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(ES_ERR_IO, "Cannot read " + path + ": the file is missing or unreadable.");
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

static ModelSpec parse_model(const json::Value &m, const std::string &root, size_t index) {
    auto bad = [&](const std::string &what) {
        return Error(ES_ERR_BUNDLE,
                     "The bundle manifest is invalid at models/" + std::to_string(index) + ": " + what + "; re-export the bundle.");
    };
    ModelSpec s;
    s.name = m["name"].str();
    s.role = m["role"].str();
    s.format = m["format"].str();
    if (s.name.empty()) throw bad("no name");
    if (s.role != "target" && s.role != "draft") throw bad("role must be target or draft");
    if (s.format != "openvino" && s.format != "onnx") throw bad("format must be openvino or onnx");
    const std::string rel_dir = m["path"].str(s.name);
    s.dir = inside(root, rel_dir);
    // Files are confined by their path from the bundle, so a link inside the model directory
    // cannot lead out either.
    auto file = [&](const std::string &name) {
        if (absolute(name)) throw outside(name, "is an absolute path");
        return inside(root, rel_dir.empty() ? name : rel_dir + "/" + name);
    };
    const auto &files = m["files"];
    if (files["model"].str().empty()) throw bad("files/model must name the model file");
    s.model_file = file(files["model"].str());
    s.tokenizer_file = file(files["tokenizer"].str("openvino_tokenizer.xml"));
    s.detokenizer_file = file(files["detokenizer"].str("openvino_detokenizer.xml"));
    if (!files["token_bytes"].str().empty()) s.token_bytes_file = file(files["token_bytes"].str());
    s.vocab_size = m["vocab_size"].integer(0);
    s.context_length = m["context_length"].integer(0);
    if (s.vocab_size < 1 || s.vocab_size > kMaxVocab) throw bad("vocab_size must be a whole number from 1 to " + std::to_string(kMaxVocab));
    if (s.context_length < 1 || s.context_length > kMaxContext)
        throw bad("context_length must be a whole number from 1 to " + std::to_string(kMaxContext));
    const auto &eos = m["special_tokens"]["eos"];
    for (size_t i = 0; i < eos.size(); ++i) s.eos.push_back(eos[i].integer(-1));
    if (m["special_tokens"]["eos"].kind == json::Value::Number) s.eos.push_back(eos.integer(-1));
    s.bos = m["special_tokens"]["bos"].integer(-1);
    if (s.role == "draft") {
        s.relation = m["relation"]["kind"].str();
        if (s.relation.empty()) throw bad("drafter '" + s.name + "' has no relation to the target");
        if (s.relation != "same_vocab" && s.relation != "trimmed" && s.relation != "cross_vocab" && s.relation != "eagle3")
            throw bad("drafter '" + s.name + "' has relation '" + s.relation + "' (same_vocab, trimmed, cross_vocab or eagle3 expected)");
        if (s.relation == "trimmed") {
            s.id_map_file = file(m["relation"]["id_map"].str("trim_id_map.i32"));
            s.input_fallback = m["relation"]["input_fallback"].integer(0);
        } else if (s.relation == "eagle3") {
            const auto &rel = m["relation"];
            s.id_map_file = file(rel["id_map"].str("eagle3_id_map.i64"));
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
        if (!f->empty() && !is_file(*f))
            throw Error(ES_ERR_BUNDLE, "The bundle is incomplete: " + *f + " is missing; re-export the bundle.");
    if (s.format == "onnx") s.external_data = onnx_external_files(root, s.model_file);
    // OpenVINO reads an IR's weights from the .bin beside its .xml: that file must stay inside too.
    for (const auto *f : {&s.model_file, &s.tokenizer_file, &s.detokenizer_file})
        if (f->size() > 4 && f->compare(f->size() - 4, 4, ".xml") == 0)
            inside(root, f->substr(root.size() + 1, f->size() - root.size() - 5) + ".bin");
    return s;
}

static std::vector<FileDigest> parse_integrity(const json::Value &t, const std::string &root) {
    auto bad = [](const std::string &what) {
        return Error(ES_ERR_BUNDLE, "The bundle manifest's integrity table " + what + "; re-export the bundle.");
    };
    if (t.kind != json::Value::Object) throw bad("is not an object");
    if (t["algorithm"].str() != kIntegrityAlgorithm)
        throw Error(ES_ERR_BUNDLE, "The bundle records file digests of kind '" + t["algorithm"].str() +
                                       "', which this edgespec does not know (it reads " + kIntegrityAlgorithm +
                                       "); upgrade edgespec or re-export the bundle.");
    if (t["chunk_bytes"].integer(0) != static_cast<int64_t>(kIntegrityChunkBytes))
        throw bad("has chunk_bytes other than " + std::to_string(kIntegrityChunkBytes));
    const auto &files = t["files"];
    if (files.kind != json::Value::Object) throw bad("has no files object");
    std::vector<FileDigest> out;
    for (const auto &[rel, entry] : files.obj) {
        FileDigest f;
        f.rel = rel;
        f.path = inside(root, rel);
        const int64_t size = entry["size"].integer(-1);
        if (size < 0) throw bad("gives " + rel + " no whole-number size");
        f.size = static_cast<uint64_t>(size);
        const auto &chunks = entry["blake2b"];
        if (chunks.kind != json::Value::Array) throw bad("gives " + rel + " no list of digests");
        for (size_t i = 0; i < chunks.size(); ++i) {
            const std::string h = chunks[i].str();
            if (h.size() != 64 || h.find_first_not_of("0123456789abcdef") != std::string::npos)
                throw bad("gives " + rel + " a digest that is not 64 hex digits");
            f.chunks.push_back(h);
        }
        out.push_back(std::move(f));
    }
    return out;
}

void verify_bundle(const BundleSpec &b, const std::vector<const ModelSpec *> &models, bool hashes) {
    if (!b.has_integrity) return;
    std::vector<FileDigest> check;
    std::set<std::string> listed, dirs;
    for (const auto *m : models)
        if (m) dirs.insert(m->dir + "/");
    for (const auto &f : b.integrity) {
        listed.insert(f.path);
        for (const auto &d : dirs)
            if (f.path.compare(0, d.size(), d) == 0) {
                check.push_back(f);
                break;
            }
    }
    // Every file the runtime reads must be listed: one added after export would go unchecked.
    for (const auto *m : models) {
        if (!m) continue;
        std::vector<std::string> needed = {m->model_file, m->tokenizer_file, m->detokenizer_file, m->token_bytes_file, m->id_map_file};
        for (const auto *f : {&m->model_file, &m->tokenizer_file, &m->detokenizer_file})
            if (f->size() > 4 && f->compare(f->size() - 4, 4, ".xml") == 0 && is_file(f->substr(0, f->size() - 4) + ".bin"))
                needed.push_back(f->substr(0, f->size() - 4) + ".bin");
        needed.insert(needed.end(), m->external_data.begin(), m->external_data.end());
        for (const auto &f : needed)
            if (!f.empty() && !listed.count(f))
                throw Error(ES_ERR_BUNDLE, "The bundle manifest's integrity table does not list " + f +
                                               ", which the runtime reads (a file added after export?); re-export the bundle.");
    }
    verify_files(check, hashes);
}

BundleSpec read_bundle(const std::string &given) {
    if (!is_dir(given)) {
        const std::string &dir = given;
        if (is_file(dir)) throw Error(ES_ERR_IO, dir + " is a file, not a bundle directory; pass the directory `edgespec export` wrote.");
        throw Error(ES_ERR_IO, "No bundle at " + dir + ": the path does not exist; pass the directory `edgespec export` wrote.");
    }
    const std::string dir = real_path(given);
    std::string manifest = dir + "/edgespec.json";
    if (!is_file(manifest))
        throw Error(ES_ERR_BUNDLE, dir + " is not an edgespec bundle (no edgespec.json); create one with `edgespec export`.");
    inside(dir, "edgespec.json");  // a manifest linked in from elsewhere would steer every path
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
                                       std::to_string(kBundleSchemaVersion) + "; re-export it with this edgespec or upgrade edgespec.");
    const auto &models = root["models"];
    if (models.kind != json::Value::Array || models.size() == 0)
        throw Error(ES_ERR_BUNDLE, "The bundle manifest lists no models; re-export the bundle.");
    BundleSpec b;
    b.dir = dir;
    int targets = 0;
    for (size_t i = 0; i < models.size(); ++i) {
        if (models[i].kind != json::Value::Object)
            throw Error(ES_ERR_BUNDLE,
                        "The bundle manifest is invalid at models/" + std::to_string(i) + ": not an object; re-export the bundle.");
        ModelSpec m = parse_model(models[i], dir, i);
        if (m.role == "target") {
            b.target = m;
            ++targets;
        } else {
            b.drafts.push_back(m);
        }
    }
    if (targets != 1) throw Error(ES_ERR_BUNDLE, "The bundle manifest must name exactly one target model; re-export the bundle.");
    if (root.has("integrity")) {
        b.has_integrity = true;
        b.integrity = parse_integrity(root["integrity"], dir);
    }
    return b;
}

}  // namespace es
