// The ONNX Runtime backend: ONNX bundles through ONNX Runtime's C API, loaded at run time (dlopen),
// so the library has no link-time dependency on it.
#pragma once
#include <memory>

#include "backends/model.hpp"

namespace es {

// Runs an ONNX model (explicit KV; backends/explicit_kv.hpp) on ONNX Runtime's CPU provider.
// ONNX Runtime's library: options.ort_library, else $EDGESPEC_ORT_LIBRARY, else the system's.
std::unique_ptr<Model> make_ort_model(const ModelSpec &spec, const DeviceOptions &options);

}  // namespace es
