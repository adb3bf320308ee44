// A causal LM with a KV cache it can roll back: the one thing the decode loop needs from a
// backend. The loop cannot tell OpenVINO stateful IR from an ONNX graph with explicit KV, and this
// header names no backend library: OpenVINO's pieces are in backends/openvino/openvino.hpp, ONNX
// Runtime's in backends/onnxruntime/, and load_model() (backends/backend.cpp) picks between them.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/bundle.hpp"

namespace ov {
class Model;  // a graph transform's argument (backends/openvino); no OpenVINO header here
}  // namespace ov

namespace es {

// Auto fixed_shapes: a model this size or smaller gets its fixed-width copies (each costs about
// the model's weights again in memory, and a compile at load).
constexpr uint64_t kFixedWidthMaxBytes = 64ull << 20;
// The target's fixed widths are 1 .. kFixedVerifyWidths (decode, and verify calls of k <= 4).
constexpr size_t kFixedVerifyWidths = 5;
// Paged attention on the CPU: calls of 2 .. kSplitMaxWidth tokens run as one-token subsequences
// (openvino/paged.cpp says why; wider ones lose that way end to end).
constexpr size_t kSplitMaxWidth = 5;

// EAGLE-3 (eagle3.hpp): the output a load-time graph transform adds for the feature rows (the
// target's fused layer features, a head's own hidden state) and the head's feature input.
extern const char *const kFeaturesOutput;
extern const char *const kFeaturesInput;

// A change made to a model's graph right after it is read, before any backend conversion.
using GraphTransform = std::function<void(const std::shared_ptr<ov::Model> &)>;

// Per-model device settings (empty strings / 0 = the device's defaults).
struct DeviceOptions {
    std::string device = "CPU";
    std::string precision;     // inference precision hint: f32 | f16 | bf16
    std::string kv_precision;  // KV-cache precision: f32 | f16 | bf16 | u8
    int32_t threads = 0;
    // "openvino" (IR: paged attention on the CPU where the graph converts, else stateful),
    // "openvino-paged", "openvino-stateful" | "onnxruntime" (ONNX bundles only, CPU only)
    std::string backend = "openvino";
    std::string ort_library;  // onnxruntime: path of libonnxruntime ("" = $EDGESPEC_ORT_LIBRARY, then the system's)
    // Fixed-width copies (paged attention on the CPU): -1 = models whose weights are at most
    // kFixedWidthMaxBytes, 0 = none, 1 = every model. fixed_widths: the call widths that get one.
    int32_t fixed_shapes = -1;
    std::vector<size_t> fixed_widths;
    // Paged attention on the CPU with a float KV cache: calls of 2 .. split_max tokens go in as
    // one-token subsequences (0 = never).
    size_t split_max = kSplitMaxWidth;
    // Applied to the graph as read (EAGLE-3 adds its feature output / moves its fc); empty = none.
    GraphTransform transform;
};

class Model {
public:
    virtual ~Model() = default;
    // Feeds ids[0..n) at the next logical positions (n_past() .. n_past()+n) and returns the
    // logits of the last n_rows of them: row-major [n_rows, vocab()] floats, owned by the
    // model and valid until its next call.
    virtual const float *forward(const int64_t *ids, size_t n, size_t n_rows) = 0;
    // Keeps the first n logical positions of the cache and drops the rest (n <= n_past()).
    virtual void rollback(size_t n) = 0;
    // Empties the cache (a new generation).
    virtual void reset() = 0;
    // Number of logical positions in the cache.
    virtual size_t n_past() const = 0;
    // Logit width (rows of the LM head).
    virtual size_t vocab() const = 0;
    // Times dead cache slots were compacted away since the last reset().
    virtual int64_t compactions() const { return 0; }
    // Which backend runs it: openvino-paged | openvino-stateful | openvino-explicit-kv | onnxruntime.
    virtual const char *backend() const = 0;
    // Call widths (tokens per call) served by a compile with that input width fixed.
    virtual std::vector<size_t> fixed_widths() const { return {}; }
    // Call widths sent to the attention as one-token subsequences (paged attention on the CPU).
    virtual std::vector<size_t> split_widths() const { return {}; }
    // Graphs with a kFeaturesOutput output (EAGLE-3): its rows [n, feature_width()] for every
    // token of the last forward(), owned by the model and valid until its next call; nullptr
    // (and width 0) for other graphs and backends.
    virtual const float *features() const { return nullptr; }
    virtual size_t feature_width() const { return 0; }
    // Graphs with a kFeaturesInput input (an EAGLE-3 head): the rows [n, width] it reads with the
    // next forward() of n tokens; rows must stay valid until that call.
    virtual void set_features(const float *rows, size_t width) {
        (void)rows;
        (void)width;
    }

    // Cancellation from another thread (es_cancel). After cancel(), the forward() running now and
    // every later one throw es::Error(ES_ERR_CANCELLED) until clear_cancel(); the backend
    // interrupts its running call where it can (paged attention on OpenVINO between graph nodes,
    // ONNX Runtime between kernels; see openvino.hpp's heal_width), so a long prefill stops too. The cache is left undefined: reset()
    // before reuse. Both are safe while forward() runs on another thread (not while the model is destroyed).
    void cancel() {
        cancelled_.store(true);
        interrupt();
    }
    void clear_cancel() {
        cancelled_.store(false);
        resume();
    }
    bool cancelled() const { return cancelled_.load(); }

protected:
    // Stops the backend's running call (cancelled() is already true); no-op by default.
    virtual void interrupt() {}
    // Undoes interrupt() for later calls.
    virtual void resume() {}

private:
    std::atomic<bool> cancelled_{false};
};

// The error a cancelled model call throws.
[[noreturn]] void throw_cancelled();

// Reads and compiles the model of spec on options.device with the backend options.backend names.
// Throws es::Error (ES_ERR_DEVICE for device problems, ES_ERR_BUNDLE for a graph the runtime
// cannot drive, ES_ERR_INVALID_ARGUMENT for a backend that cannot run the model's format).
std::unique_ptr<Model> load_model(const ModelSpec &spec, const DeviceOptions &options);

// Checks the options before any slow work: the device exists, precision names are known.
// Throws ES_ERR_DEVICE with the list of available devices, ES_ERR_INVALID_ARGUMENT for names.
void check_device_options(const DeviceOptions &options);

}  // namespace es
