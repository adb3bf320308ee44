// ONNX bundles on ONNX Runtime (the `onnxruntime` backend), for PCs where OpenVINO's CPU plugin is
// not the fastest choice. ONNX Runtime is loaded at run time (dlopen of libonnxruntime, then
// OrtGetApiBase()->GetApi(ORT_API_VERSION)), so libedgespec has no link-time dependency on it and
// runs without it whenever this backend is not asked for. The C API declarations come from the
// vendored header excerpt in runtimes/third_party/onnxruntime/ (ORT_API_VERSION 13, which every
// later runtime still serves). Tokenizers still run on OpenVINO (openvino-tokenizers).
//
// Which library: DeviceOptions::ort_library if set, else $EDGESPEC_ORT_LIBRARY, else the system's
// libonnxruntime (the Python API passes the `onnxruntime` wheel's capi/libonnxruntime.so.*). The
// first library loaded serves the whole process (ORT keeps process-wide state; it is never
// unloaded, and its OrtEnv lives until exit).
//
// The KV cache is the runtime's (explicit_kv.hpp): each Run gets the past buffers as inputs and
// the other buffers, wrapped at the exact present shape, as pre-allocated outputs, which ONNX
// Runtime fills in place; logits go into a buffer of ours too. Rollback = dead slots + mask,
// compacted on a budget. ONNX Runtime has no row slice in front of the LM head, so a prefill of
// n tokens computes n logits rows.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include "backends/explicit_kv.hpp"
#include "backends/onnxruntime/onnxruntime.hpp"
#include "core/error.hpp"
#include "onnxruntime/onnxruntime_c_api.h"

// The vendored excerpt must keep exactly the first 143 members of OrtApi, in order.
static_assert(sizeof(OrtApi) == 143 * sizeof(void *), "onnxruntime_c_api.h excerpt: OrtApi must hold 143 function pointers");

namespace es {

namespace {

#if defined(_WIN32)
constexpr const char *kDefaultOrtLibrary = "onnxruntime.dll";
#elif defined(__APPLE__)
constexpr const char *kDefaultOrtLibrary = "libonnxruntime.dylib";
#else
constexpr const char *kDefaultOrtLibrary = "libonnxruntime.so";
#endif

// The loaded ONNX Runtime: its API table, one OrtEnv and a CPU memory description. Process-wide.
struct OrtRuntime {
    const OrtApi *api = nullptr;
    OrtEnv *env = nullptr;
    OrtMemoryInfo *cpu = nullptr;
    std::string library, version;

    // Turns a status into an es::Error (and frees it); no-op for success.
    void check(OrtStatus *status, es_status code, const std::string &what) const {
        if (!status) return;
        std::string msg = api->GetErrorMessage(status);
        api->ReleaseStatus(status);
        throw Error(code, what + " (onnxruntime: " + msg.substr(0, msg.find('\n')) + ")");
    }
};

std::string load_failure_hint() {
    return "install onnxruntime (`pip install onnxruntime`) or set EDGESPEC_ORT_LIBRARY to the path of " + std::string(kDefaultOrtLibrary) +
           ".";
}

const OrtRuntime &ort_runtime(const std::string &requested) {
    static std::mutex mu;
    static OrtRuntime rt;
    std::lock_guard<std::mutex> lock(mu);
    if (rt.api) return rt;
    std::string path = requested;
    if (path.empty())
        if (const char *env = std::getenv("EDGESPEC_ORT_LIBRARY")) path = env;
    if (path.empty()) path = kDefaultOrtLibrary;
    using GetApiBaseFn = const OrtApiBase *(ORT_API_CALL *)(void);
    GetApiBaseFn get_api_base = nullptr;
#if defined(_WIN32)
    HMODULE h = LoadLibraryA(path.c_str());
    if (!h) throw Error(ES_ERR_IO, "The ONNX Runtime library could not be loaded from '" + path + "'; " + load_failure_hint());
    get_api_base = reinterpret_cast<GetApiBaseFn>(reinterpret_cast<void *>(GetProcAddress(h, "OrtGetApiBase")));
#else
    void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        throw Error(ES_ERR_IO, "The ONNX Runtime library could not be loaded from '" + path + "' (" + (why ? why : "unknown reason") +
                                   "); " + load_failure_hint());
    }
    get_api_base = reinterpret_cast<GetApiBaseFn>(dlsym(h, "OrtGetApiBase"));
#endif
    if (!get_api_base)
        throw Error(ES_ERR_IO, "'" + path + "' is not an ONNX Runtime library (it has no OrtGetApiBase); " + load_failure_hint());
    const OrtApiBase *base = get_api_base();
    const char *version = base ? base->GetVersionString() : "";
    const OrtApi *api = base ? base->GetApi(ORT_API_VERSION) : nullptr;
    if (!api)
        throw Error(ES_ERR_IO, "The ONNX Runtime library at '" + path + "' (version " + (version ? version : "?") + ") is older than 1." +
                                   std::to_string(ORT_API_VERSION) + ", the oldest this runtime supports; install a newer onnxruntime.");
    OrtRuntime loaded;
    loaded.api = api;
    loaded.library = path;
    loaded.version = version ? version : "";
    loaded.check(api->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "edgespec", &loaded.env), ES_ERR_INTERNAL, "ONNX Runtime could not start");
    loaded.check(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &loaded.cpu), ES_ERR_INTERNAL,
                 "ONNX Runtime could not start");
    rt = loaded;
    return rt;
}

// Frees ORT objects at scope exit.
template <class T>
struct OrtPtr {
    const OrtApi *api;
    T *p = nullptr;
    void (*release)(T *);
    OrtPtr(const OrtApi *a, void (*r)(T *)) : api(a), release(r) {}
    ~OrtPtr() {
        if (p) release(p);
    }
    OrtPtr(const OrtPtr &) = delete;
    OrtPtr &operator=(const OrtPtr &) = delete;
};

struct TensorInfo {
    std::string name;
    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    std::vector<int64_t> dims;  // -1 for symbolic dimensions
};

size_t element_size(ONNXTensorElementDataType t) {
    switch (t) {
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
            return 4;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
            return 2;
        default:
            return 0;
    }
}

class OrtModel final : public ExplicitKvModelBase {
public:
    const char *backend() const override { return "onnxruntime"; }
    OrtModel(const ModelSpec &spec, const DeviceOptions &options) : rt_(ort_runtime(options.ort_library)), api_(rt_.api) {
        const std::string file = spec.model_file;
        OrtPtr<OrtSessionOptions> so(api_, api_->ReleaseSessionOptions);
        auto fail_options = [&](OrtStatus *s) { rt_.check(s, ES_ERR_INTERNAL, "ONNX Runtime rejected the session options"); };
        fail_options(api_->CreateSessionOptions(&so.p));
        fail_options(api_->SetSessionGraphOptimizationLevel(so.p, ORT_ENABLE_ALL));
        if (options.threads > 0) fail_options(api_->SetIntraOpNumThreads(so.p, options.threads));
        fail_options(api_->SetInterOpNumThreads(so.p, 1));
        // Target and drafter take turns on the same cores: idle pool threads must not spin.
        fail_options(api_->AddSessionConfigEntry(so.p, "session.intra_op.allow_spinning", "0"));
#if defined(_WIN32)
        std::wstring wfile(file.begin(), file.end());  // bundle paths from the manifest; non-ASCII needs MultiByteToWideChar
        rt_.check(api_->CreateSession(rt_.env, wfile.c_str(), so.p, &session_), ES_ERR_BUNDLE,
                  "ONNX Runtime could not load " + file + "; re-export the bundle");
#else
        rt_.check(api_->CreateSession(rt_.env, file.c_str(), so.p, &session_), ES_ERR_BUNDLE,
                  "ONNX Runtime could not load " + file + "; re-export the bundle");
#endif
        try {
            setup(spec);
            rt_.check(api_->CreateRunOptions(&run_options_), ES_ERR_INTERNAL, "ONNX Runtime could not create run options");
        } catch (...) {
            api_->ReleaseSession(session_);
            throw;
        }
    }

    ~OrtModel() override {
        if (run_options_) api_->ReleaseRunOptions(run_options_);
        if (session_) api_->ReleaseSession(session_);
    }

    const float *forward(const int64_t *ids, size_t n, size_t n_rows) override {
        cache_.begin(n);
        const size_t phys = cache_.phys();
        if (logits_.size() < n * vocab_) logits_.resize(n * vocab_);
        Values values(api_, in_names_.size(), out_names_.size());
        try {
            const int64_t n64 = static_cast<int64_t>(n), all64 = static_cast<int64_t>(phys + n);
            const int64_t ids_shape[2] = {1, n64}, mask_shape[2] = {1, all64};
            const int64_t logits_shape[3] = {1, n64, static_cast<int64_t>(vocab_)};
            const auto &specs = cache_.tensors();
            for (size_t i = 0; i < in_roles_.size(); ++i) {
                const int role = in_roles_[i];
                if (role == kIds)
                    values.in[i] = tensor(const_cast<int64_t *>(ids), n * 8, ids_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64);
                else if (role == kMask)
                    values.in[i] = tensor(cache_.mask(), (phys + n) * 8, mask_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64);
                else if (role == kPositions)
                    values.in[i] = tensor(cache_.positions(), n * 8, ids_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64);
                else {
                    const auto &t = specs[static_cast<size_t>(role)];
                    const int64_t shape[4] = {1, static_cast<int64_t>(t.heads), static_cast<int64_t>(phys),
                                              static_cast<int64_t>(t.head_dim)};
                    values.in[i] = tensor(cache_.past(static_cast<size_t>(role)), cache_.past_bytes(static_cast<size_t>(role)), shape, 4,
                                          kv_types_[static_cast<size_t>(role)]);
                }
            }
            for (size_t o = 0; o < out_roles_.size(); ++o) {
                const int role = out_roles_[o];
                if (role == kLogits) {
                    values.out[o] = tensor(logits_.data(), n * vocab_ * 4, logits_shape, 3, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
                } else {
                    const auto &t = specs[static_cast<size_t>(role)];
                    const int64_t shape[4] = {1, static_cast<int64_t>(t.heads), static_cast<int64_t>(phys + n),
                                              static_cast<int64_t>(t.head_dim)};
                    values.out[o] = tensor(cache_.present(static_cast<size_t>(role)), cache_.present_bytes(static_cast<size_t>(role)),
                                           shape, 4, kv_types_[static_cast<size_t>(role)]);
                }
            }
            // A terminate flag set before Run starts fails it at once, so no cancel is missed.
            if (cancelled()) throw_cancelled();
            OrtStatus *status = api_->Run(session_, run_options_, in_name_ptrs_.data(), values.in, in_names_.size(), out_name_ptrs_.data(),
                                          out_names_.size(), values.out);
            if (status && cancelled()) {
                api_->ReleaseStatus(status);
                throw_cancelled();
            }
            rt_.check(status, ES_ERR_INTERNAL, "ONNX Runtime failed to run " + file_);
        } catch (...) {
            cache_.abort();
            throw;
        }
        cache_.commit();
        return logits_.data() + (n - n_rows) * vocab_;
    }

protected:
    void interrupt() override { release(api_->RunOptionsSetTerminate(run_options_)); }
    void resume() override { release(api_->RunOptionsUnsetTerminate(run_options_)); }

private:
    enum Role { kIds = -1, kMask = -2, kPositions = -3, kLogits = -4 };  // >= 0: index of a KV tensor

    // The OrtValues of one Run (wrappers around our buffers), released at scope exit.
    struct Values {
        const OrtApi *api;
        std::vector<OrtValue *> all;
        OrtValue **in, **out;
        Values(const OrtApi *a, size_t n_in, size_t n_out) : api(a), all(n_in + n_out, nullptr), in(all.data()), out(all.data() + n_in) {}
        Values(const Values &) = delete;
        Values &operator=(const Values &) = delete;
        ~Values() {
            for (OrtValue *v : all)
                if (v) api->ReleaseValue(v);
        }
    };

    // Drops the status of a call that cannot fail on a valid object.
    void release(OrtStatus *status) const {
        if (status) api_->ReleaseStatus(status);
    }

    OrtValue *tensor(void *data, size_t bytes, const int64_t *shape, size_t rank, ONNXTensorElementDataType type) {
        OrtValue *v = nullptr;
        static int64_t empty = 0;  // ORT wants a non-null pointer even for zero bytes
        rt_.check(api_->CreateTensorWithDataAsOrtValue(rt_.cpu, data ? data : &empty, bytes, shape, rank, type, &v), ES_ERR_INTERNAL,
                  "ONNX Runtime could not wrap a tensor of " + file_);
        return v;
    }

    std::vector<TensorInfo> io_info(bool outputs) {
        size_t count = 0;
        rt_.check(outputs ? api_->SessionGetOutputCount(session_, &count) : api_->SessionGetInputCount(session_, &count), ES_ERR_BUNDLE,
                  "ONNX Runtime could not list the graph's inputs/outputs of " + file_);
        OrtAllocator *alloc = nullptr;
        rt_.check(api_->GetAllocatorWithDefaultOptions(&alloc), ES_ERR_INTERNAL, "ONNX Runtime has no default allocator");
        std::vector<TensorInfo> infos(count);
        for (size_t i = 0; i < count; ++i) {
            char *name = nullptr;
            rt_.check(
                outputs ? api_->SessionGetOutputName(session_, i, alloc, &name) : api_->SessionGetInputName(session_, i, alloc, &name),
                ES_ERR_BUNDLE, "ONNX Runtime could not name an input/output of " + file_);
            infos[i].name = name;
            if (OrtStatus *s = api_->AllocatorFree(alloc, name)) api_->ReleaseStatus(s);
            OrtPtr<OrtTypeInfo> ti(api_, api_->ReleaseTypeInfo);
            rt_.check(outputs ? api_->SessionGetOutputTypeInfo(session_, i, &ti.p) : api_->SessionGetInputTypeInfo(session_, i, &ti.p),
                      ES_ERR_BUNDLE, "ONNX Runtime could not type " + infos[i].name + " of " + file_);
            const OrtTensorTypeAndShapeInfo *tsi = nullptr;
            rt_.check(api_->CastTypeInfoToTensorInfo(ti.p, &tsi), ES_ERR_BUNDLE, infos[i].name + " of " + file_ + " is not a tensor");
            if (!tsi) throw Error(ES_ERR_BUNDLE, infos[i].name + " of " + file_ + " is not a tensor; re-export the bundle.");
            size_t rank = 0;
            rt_.check(api_->GetTensorElementType(tsi, &infos[i].type), ES_ERR_BUNDLE, "bad tensor type in " + file_);
            rt_.check(api_->GetDimensionsCount(tsi, &rank), ES_ERR_BUNDLE, "bad tensor shape in " + file_);
            infos[i].dims.resize(rank);
            rt_.check(api_->GetDimensions(tsi, infos[i].dims.data(), rank), ES_ERR_BUNDLE, "bad tensor shape in " + file_);
        }
        return infos;
    }

    // Maps the graph's inputs and outputs to roles and checks they are an edgespec ONNX export.
    void setup(const ModelSpec &spec) {
        file_ = spec.model_file;
        auto bad = [&](const std::string &why) {
            return Error(ES_ERR_BUNDLE, "The model " + file_ + " " + why + ", so it is not an edgespec ONNX export; re-export the bundle.");
        };
        const auto ins = io_info(false), outs = io_info(true);
        std::vector<KvTensorSpec> kv;
        bool seen[3] = {false, false, false};
        for (const auto &t : ins) {
            int role;
            if (t.name == "input_ids")
                role = kIds, seen[0] = true;
            else if (t.name == "attention_mask")
                role = kMask, seen[1] = true;
            else if (t.name == "position_ids")
                role = kPositions, seen[2] = true;
            else if (t.name.rfind("past_key_values.", 0) == 0) {
                if (t.dims.size() != 4 || t.dims[1] <= 0 || t.dims[3] <= 0 || !element_size(t.type))
                    throw bad("has a KV input " + t.name + " that is not float [batch, kv_heads, past, head_dim] with fixed heads");
                KvTensorSpec s;
                s.past = t.name;
                s.present = "present." + t.name.substr(std::strlen("past_key_values."));
                s.heads = static_cast<size_t>(t.dims[1]);
                s.head_dim = static_cast<size_t>(t.dims[3]);
                s.elem_size = element_size(t.type);
                role = static_cast<int>(kv.size());
                kv.push_back(s);
                kv_types_.push_back(t.type);
            } else {
                throw bad("has an input '" + t.name + "' the runtime does not know");
            }
            in_names_.push_back(t.name);
            in_roles_.push_back(role);
        }
        if (!seen[0] || !seen[1] || !seen[2]) throw bad("lacks one of the inputs input_ids, attention_mask, position_ids");
        if (kv.empty()) throw bad("has no past_key_values inputs");
        std::vector<bool> has_present(kv.size(), false);
        for (const auto &t : outs) {
            int role = -100;
            if (t.name == "logits") {
                if (t.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || t.dims.size() != 3 || t.dims[2] <= 0)
                    throw bad("has a logits output that is not float [batch, seq, vocab]");
                vocab_ = static_cast<size_t>(t.dims[2]);
                role = kLogits;
            } else {
                for (size_t k = 0; k < kv.size(); ++k)
                    if (kv[k].present == t.name) {
                        role = static_cast<int>(k);
                        has_present[k] = true;
                    }
                if (role == -100) continue;  // an extra output we do not need: not requested
            }
            out_names_.push_back(t.name);
            out_roles_.push_back(role);
        }
        if (!vocab_) throw bad("has no logits output");
        for (size_t k = 0; k < kv.size(); ++k)
            if (!has_present[k]) throw bad("has the input " + kv[k].past + " but no output " + kv[k].present);
        for (const auto &n : in_names_) in_name_ptrs_.push_back(n.c_str());
        for (const auto &n : out_names_) out_name_ptrs_.push_back(n.c_str());
        (void)spec;
        cache_.init(std::move(kv));
    }

    const OrtRuntime &rt_;
    const OrtApi *api_;
    OrtSession *session_ = nullptr;
    OrtRunOptions *run_options_ = nullptr;  // carries the terminate flag of cancel()
    std::string file_;
    std::vector<std::string> in_names_, out_names_;
    std::vector<const char *> in_name_ptrs_, out_name_ptrs_;
    std::vector<int> in_roles_, out_roles_;
    std::vector<ONNXTensorElementDataType> kv_types_;
    std::vector<float> logits_;
};

}  // namespace

std::unique_ptr<Model> make_ort_model(const ModelSpec &spec, const DeviceOptions &options) {
    if (options.device != "CPU")
        throw Error(ES_ERR_DEVICE, "The onnxruntime backend runs on the CPU only (device '" + options.device +
                                       "' was asked for); use device CPU or the openvino backend.");
    if (!options.precision.empty() && options.precision != "f32")
        throw Error(ES_ERR_INVALID_ARGUMENT, "The onnxruntime backend computes in the ONNX graph's own precision, so precision '" +
                                                 options.precision +
                                                 "' cannot be set; leave it unset (or f32), or use the openvino backend.");
    if (!options.kv_precision.empty() && options.kv_precision != "f32")
        throw Error(ES_ERR_INVALID_ARGUMENT,
                    "The onnxruntime backend keeps the KV cache in the ONNX graph's own type, so KV-cache precision '" +
                        options.kv_precision + "' cannot be set; leave it unset (or f32), or use the openvino backend.");
    return std::make_unique<OrtModel>(spec, options);
}

}  // namespace es
