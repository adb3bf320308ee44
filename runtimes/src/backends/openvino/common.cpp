// What the OpenVINO backends share: the process's core, device checks and compile properties.
#include <algorithm>

#include <openvino/runtime/exception.hpp>

#include "backends/openvino/openvino.hpp"
#include "core/error.hpp"

namespace es {

ov::Core &openvino_core() {
    static ov::Core core;  // one per process: plugins and the tokenizers extension load once
    return core;
}

static ov::element::Type element_type(const std::string &name, const char *what) {
    if (name == "f32") return ov::element::f32;
    if (name == "f16") return ov::element::f16;
    if (name == "bf16") return ov::element::bf16;
    if (name == "u8") return ov::element::u8;
    throw Error(ES_ERR_INVALID_ARGUMENT, std::string("Unknown ") + what + " '" + name + "'; use one of f32, f16, bf16" +
                                             (std::string(what) == "KV-cache precision" ? ", u8." : "."));
}

ov::AnyMap compile_properties(const DeviceOptions &o) {
    ov::AnyMap props;
    props[ov::hint::performance_mode.name()] = ov::hint::PerformanceMode::LATENCY;
    if (!o.precision.empty()) {
        auto t = element_type(o.precision, "precision");
        if (t == ov::element::u8) throw Error(ES_ERR_INVALID_ARGUMENT, "Unknown precision 'u8'; use one of f32, f16, bf16.");
        props[ov::hint::inference_precision.name()] = t;
        // f32 asks for exact arithmetic: on the CPU, weight-compressed (INT8/INT4) matmuls would
        // still quantize their activations to int8 per group, which makes a token's logits depend
        // on how many tokens its call carried (a verify call's against a decode step's), so that
        // greedy speculation could part from plain decoding at near-ties.
        if (t == ov::element::f32 && o.device.rfind("CPU", 0) == 0) props[ov::hint::dynamic_quantization_group_size.name()] = uint64_t{0};
    }
    if (!o.kv_precision.empty()) props[ov::hint::kv_cache_precision.name()] = element_type(o.kv_precision, "KV-cache precision");
    if (o.threads > 0 && (o.device == "CPU" || o.device.rfind("CPU", 0) == 0))
        props[ov::inference_num_threads.name()] = static_cast<int32_t>(o.threads);
    return props;
}

ov::CompiledModel compile_on_device(ov::Core &core, const std::shared_ptr<ov::Model> &model, const DeviceOptions &options,
                                    const std::string &file) {
    ov::AnyMap props = compile_properties(options);  // its es::Error (bad names) passes through
    try {
        return core.compile_model(model, options.device, props);
    } catch (const std::exception &e) {
        throw Error(ES_ERR_DEVICE, "Device '" + options.device + "' could not compile " + file + ": " + ov_reason(e.what()) + ".");
    }
}

void infer_cancellable(ov::InferRequest &request, const Model &model) {
    if (model.cancelled()) throw_cancelled();
    request.start_async();
    if (model.cancelled()) request.cancel();
    try {
        request.wait();
    } catch (const ov::Cancelled &) {
        throw_cancelled();
    } catch (const std::exception &) {
        if (model.cancelled()) throw_cancelled();  // a node that wrapped the cancellation in its own error
        throw;
    }
}

void check_device(ov::Core &core, const std::string &device) {
    if (device.empty()) throw Error(ES_ERR_DEVICE, "The device name is empty; use CPU, GPU, NPU or AUTO.");
    // Virtual devices (AUTO, HETERO:..., MULTI:...) are resolved by OpenVINO itself.
    for (const char *virt : {"AUTO", "HETERO", "MULTI", "BATCH"})
        if (device.rfind(virt, 0) == 0) return;
    auto available = core.get_available_devices();
    std::string base = device.substr(0, device.find('.'));
    for (const auto &d : available)
        if (d == device || d.substr(0, d.find('.')) == device || (base == device && d.rfind(base, 0) == 0)) return;
    std::string list;
    for (const auto &d : available) list += (list.empty() ? "" : ", ") + d;
    throw Error(ES_ERR_DEVICE, "Device '" + device + "' is not available on this machine; available devices: " + list + ".");
}

}  // namespace es
