// The one backend dispatcher: which backend runs a model, from its format and the options.
#include "backends/model.hpp"
#include "backends/onnxruntime/onnxruntime.hpp"
#include "backends/openvino/openvino.hpp"
#include "core/error.hpp"

namespace es {

void throw_cancelled() { throw Error(ES_ERR_CANCELLED, "The generation was cancelled (es_cancel)."); }

std::unique_ptr<Model> load_model(const ModelSpec &spec, const DeviceOptions &options) {
    ov::Core &core = openvino_core();
    check_device(core, options.device);
    const std::string &b = options.backend;
    const bool paged = b == "openvino-paged", stateful = b == "openvino-stateful";
    if (b == "onnxruntime") {
        if (spec.format != "onnx")
            throw Error(ES_ERR_INVALID_ARGUMENT, "The onnxruntime backend runs ONNX bundles only, but model '" + spec.name +
                                                     "' is OpenVINO IR; use the openvino backend or export the bundle with --format onnx.");
        return make_ort_model(spec, options);
    }
    if (!(paged || stateful || b == "openvino"))
        throw Error(ES_ERR_INVALID_ARGUMENT, "Unknown backend '" + b + "'; use openvino or onnxruntime.");
    if (spec.format == "onnx") {
        if (paged || stateful)
            throw Error(ES_ERR_INVALID_ARGUMENT, "The " + b + " backend runs OpenVINO IR bundles, but model '" + spec.name +
                                                     "' is ONNX; use the openvino or onnxruntime backend.");
        return make_explicit_kv_model(core, spec, options);
    }
    if (paged) return make_paged_model(core, spec, options);
    if (stateful || options.device.rfind("CPU", 0) != 0) return make_stateful_model(core, spec, options);
    // The default on the CPU: paged attention (measured faster there), the stateful graph as it
    // is when OpenVINO cannot convert or compile it.
    try {
        return make_paged_model(core, spec, options);
    } catch (const Error &) {
        return make_stateful_model(core, spec, options);
    }
}

void check_device_options(const DeviceOptions &options) {
    check_device(openvino_core(), options.device);
    compile_properties(options);  // throws for unknown precision names
}

}  // namespace es
