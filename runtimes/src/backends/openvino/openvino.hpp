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

// A call cancelled part-way through a dynamic-shape compile can leave OpenVINO's CPU plugin with
// nodes prepared for shapes they were never run with, so a later call of the same shapes fails
// ("Convert node ... has different elements number in input and output buffers"; about once in
// 50 cancels on the tiny test models). The paged backend remembers such a call's width and, at
// the next reset(), runs one throwaway call of another width through that compile (every node
// whose input shapes change is prepared again; 0 failures in 640 cancels after it, tiny and demo models). This is that
// width. The stateful and explicit-KV graphs failed that way too even so (their KV-cache nodes
// and our bound KV buffers: 1 and 2 in 100), so they are not interrupted inside a call: a cancel
// stops them before their next call.
inline size_t heal_width(size_t interrupted_width) { return interrupted_width == 1 ? 2 : 1; }

// Throws ES_ERR_DEVICE with the list of available devices when device is unknown.
void check_device(ov::Core &core, const std::string &device);

// The three OpenVINO backends (paged.cpp, stateful.cpp, explicit_kv.cpp).
std::unique_ptr<Model> make_paged_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options);
std::unique_ptr<Model> make_stateful_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options);
std::unique_ptr<Model> make_explicit_kv_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options);

}  // namespace es
