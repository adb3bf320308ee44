// The OpenVINO backends (paged attention, stateful graph, explicit-KV ONNX graphs) and what they
// share: the process's ov::Core, compile properties, device checks, the LM-head row slice.
#pragma once
#include <memory>
#include <string>

#include <openvino/openvino.hpp>

#include "backends/model.hpp"

namespace es {

// One per process: plugins and the tokenizers extension load once.
ov::Core &openvino_core();

// Compile properties for options (precision, KV precision, threads, latency hint).
ov::AnyMap compile_properties(const DeviceOptions &options);

// Compiles model (read from file) on options.device with compile_properties(options); a device
// that cannot compile it becomes ES_ERR_DEVICE with the first line of OpenVINO's message.
ov::CompiledModel compile_on_device(ov::Core &core, const std::shared_ptr<ov::Model> &model, const DeviceOptions &options,
                                    const std::string &file);

// Slices the hidden states in front of the LM head to the last `es_logits_rows` positions (a new
// i64 [1] input named kLogitsRowsInput) along `axis` (1 for [batch, tokens, hidden], 0 for the
// paged form's [tokens, 1, hidden]), so a prefill computes one logits row, not n. Returns false
// (graph unchanged) when the head is not a plain MatMul chain. In stateful.cpp.
extern const char *const kLogitsRowsInput;
bool insert_logits_slice(const std::shared_ptr<ov::Model> &model, int64_t axis = 1);

// request.infer() for model, interrupted (between graph nodes) by model.cancel() from another
// thread: throws the ES_ERR_CANCELLED error once model.cancelled(). The request is started and
// then waited for, so a cancel that lands just before it starts is seen too (OpenVINO ignores a
// cancel() of an idle request).
void infer_cancellable(ov::InferRequest &request, const Model &model);

// Throws ES_ERR_DEVICE with the list of available devices when device is unknown.
void check_device(ov::Core &core, const std::string &device);

// The three OpenVINO backends (paged.cpp, stateful.cpp, explicit_kv.cpp).
std::unique_ptr<Model> make_paged_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options);
std::unique_ptr<Model> make_stateful_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options);
std::unique_ptr<Model> make_explicit_kv_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options);

}  // namespace es
