// The KV cache of a graph with explicit KV inputs and outputs (ONNX bundles: past_key_values.{i}.key
// /value in, present.{i}.key/value out, each [1, kv_heads, slots, head_dim]), shared by the two
// backends that run such graphs: OpenVINO (openvino/explicit_kv.cpp) and ONNX Runtime (onnxruntime/ort_model.cpp).
//
// Where the cache lives. The runtime owns two buffers per KV tensor and binds them to the graph
// in turns: the past is read from one and the present (past + new positions, a copy the graph's
// Concat makes anyway) is written straight into the other, which then holds the past of the next
// call. No copy outside the graph and no allocation per call (a buffer only grows, by 1.5x, when
// the slots outgrow it, and the buffer being written needs no old contents kept).
//
// Rollback: dead slots + mask, as in the stateful backend. A rejected draft position stays in the
// cache as a dead slot with attention_mask 0; new tokens get explicit position_ids (their logical
// positions), so the masked slots change nothing. The other option, trimming the tail with an ROI
// view along the slot axis, is not free here: the slot axis is not the outermost one, so a view
// of the first s slots of [1, H, S, D] is strided and both backends would copy it to a dense
// tensor on the next call — a full KV copy per rejection, the cost this engine avoids. Dead slots
// cost a little attention and Concat work, so they are compacted away (one gather of the live
// slots into the other buffer) once they exceed max(64, 25% of the live ones), the budget of the
// stateful backend: amortised, never a full copy per round.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backends/model.hpp"

namespace es {

// One KV tensor of the graph: its input and output names and its fixed dimensions.
struct KvTensorSpec {
    std::string past, present;  // e.g. "past_key_values.0.key", "present.0.key"
    size_t heads = 0, head_dim = 0;
    size_t elem_size = 4;  // bytes per element (f32: 4, f16: 2)
};

class ExplicitKvCache {
public:
    void init(std::vector<KvTensorSpec> tensors);
    const std::vector<KvTensorSpec> &tensors() const { return tensors_; }

    // Prepares a call that appends n positions: after it, mask() holds phys() + n entries and
    // positions() n, past(i) holds phys() slots and present(i) has room for phys() + n.
    void begin(size_t n);
    // The call succeeded: the present buffers become the past.
    void commit();
    // The call failed: forget the prepared slots (the cache is as before begin()).
    void abort();

    size_t phys() const { return phys_; }  // physical slots of the past of the prepared call
    int64_t *mask() { return slots_.data(); }
    int64_t *positions() { return positions_.data(); }
    void *past(size_t i) { return buffers_[cur_][i].data.get(); }
    void *present(size_t i) { return buffers_[cur_ ^ 1][i].data.get(); }
    size_t past_bytes(size_t i) const { return bytes(i, phys_); }
    size_t present_bytes(size_t i) const { return bytes(i, phys_ + pending_); }

    size_t n_past() const { return live_.size(); }
    void rollback(size_t n);
    void reset();
    int64_t compactions() const { return compactions_; }

private:
    struct Buffer {
        std::unique_ptr<uint8_t, void (*)(void *)> data{nullptr, std::free};
        size_t slots = 0;  // capacity in slots
    };
    size_t bytes(size_t i, size_t slots) const { return tensors_[i].heads * slots * tensors_[i].head_dim * tensors_[i].elem_size; }
    void reserve(int which, size_t slots);  // contents are not kept
    void compact();

    std::vector<KvTensorSpec> tensors_;
    std::vector<Buffer> buffers_[2];
    int cur_ = 0;                     // buffers_[cur_] holds the past
    size_t phys_ = 0, pending_ = 0;   // slots in the past; slots being appended
    std::vector<int64_t> slots_;      // physical slots: 1 live, 0 dead (the attention_mask prefix)
    std::vector<int64_t> live_;       // live_[p] = physical slot of logical position p
    std::vector<int64_t> positions_;  // position_ids of the prepared call
    int64_t compactions_ = 0;
};

// What both explicit-KV backends share: the cache and the Model calls that only touch it.
class ExplicitKvModelBase : public Model {
public:
    void rollback(size_t n) override { cache_.rollback(n); }
    void reset() override { cache_.reset(); }
    size_t n_past() const override { return cache_.n_past(); }
    size_t vocab() const override { return vocab_; }
    int64_t compactions() const override { return cache_.compactions(); }

protected:
    ExplicitKvCache cache_;
    size_t vocab_ = 0;  // logit width
};

}  // namespace es
