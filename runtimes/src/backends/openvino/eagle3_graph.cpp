#include "backends/openvino/eagle3_graph.hpp"

#include <openvino/op/add.hpp>
#include <openvino/op/concat.hpp>
#include <openvino/op/constant.hpp>
#include <openvino/op/matmul.hpp>
#include <openvino/op/multiply.hpp>
#include <openvino/op/parameter.hpp>
#include <openvino/op/result.hpp>

#include "core/error.hpp"

namespace es {

const char *const kFeaturesOutput = "es_features";
const char *const kFeaturesInput = "hidden_states";

namespace {

// The residual Add that closes a decoder layer: x + down_proj(act(gate) * up), i.e. an Add whose
// second input is a MatMul of a Multiply (the attention's residual Add reads o_proj of a Reshape).
// The same rule OpenVINO GenAI's EAGLE-3 transform uses, so both read the same tensors.
bool is_layer_output(const std::shared_ptr<ov::Node> &node) {
    if (!ov::as_type_ptr<ov::op::v1::Add>(node)) return false;
    auto mm = ov::as_type_ptr<ov::op::v0::MatMul>(node->get_input_node_shared_ptr(1));
    return mm && ov::is_type<ov::op::v1::Multiply>(mm->get_input_node_shared_ptr(0));
}

// The output of the first layer-closing Add whose name holds `pattern` (optimum exports name
// them "__module.model.layers.7/aten::add/Add_1"); null when there is none.
ov::Output<ov::Node> layer_output(const std::shared_ptr<ov::Model> &model, const std::string &pattern) {
    for (const auto &node : model->get_ordered_ops())
        if (is_layer_output(node) && node->get_friendly_name().find(pattern) != std::string::npos) return node->output(0);
    return {};
}

void add_features_result(const std::shared_ptr<ov::Model> &model, const ov::Output<ov::Node> &rows) {
    auto result = std::make_shared<ov::op::v0::Result>(rows);
    result->output(0).get_tensor().set_names({kFeaturesOutput});
    result->set_friendly_name(kFeaturesOutput);
    model->add_results({result});
    model->validate_nodes_and_infer_types();
}

std::shared_ptr<ov::op::v0::MatMul> fc_matmul(const std::shared_ptr<ov::Model> &model) {
    for (const auto &node : model->get_ordered_ops()) {
        auto mm = ov::as_type_ptr<ov::op::v0::MatMul>(node);
        if (!mm) continue;
        auto param = ov::as_type_ptr<ov::op::v0::Parameter>(mm->get_input_node_shared_ptr(0));
        if (param && param->output(0).get_names().count(kFeaturesInput)) return mm;
    }
    return nullptr;
}

}  // namespace

Eagle3Fc read_eagle3_fc(ov::Core &core, const ModelSpec &spec) {
    std::shared_ptr<ov::Model> model = core.read_model(spec.model_file);
    auto mm = fc_matmul(model);
    if (!mm)
        throw Error(ES_ERR_BUNDLE, "The EAGLE-3 head " + spec.model_file +
                                       " has no fc on its hidden_states input, so it is not an EAGLE-3 export; re-export the bundle.");
    return Eagle3Fc{mm->input_value(1), mm->get_transpose_a(), mm->get_transpose_b()};
}

GraphTransform eagle3_target_transform(const std::vector<int32_t> &layers, const Eagle3Fc &fc, const std::string &file) {
    return [layers, fc, file](const std::shared_ptr<ov::Model> &model) {
        ov::OutputVector outs;
        for (int32_t l : layers) {
            ov::Output<ov::Node> o = layer_output(model, "layers." + std::to_string(l) + "/");
            if (!o.get_node())
                throw Error(ES_ERR_BUNDLE, "The target " + file + " has no output of decoder layer " + std::to_string(l) +
                                               " that the EAGLE-3 head reads; re-export the bundle with a head for this target.");
            outs.push_back(o);
        }
        auto concat = std::make_shared<ov::op::v0::Concat>(outs, -1);
        auto mm = std::make_shared<ov::op::v0::MatMul>(concat, fc.weight, fc.transpose_a, fc.transpose_b);
        mm->set_friendly_name("es_eagle3_fc");
        add_features_result(model, mm);
    };
}

GraphTransform eagle3_head_transform(const std::string &file) {
    return [file](const std::shared_ptr<ov::Model> &model) {
        auto mm = fc_matmul(model);
        if (!mm) throw Error(ES_ERR_BUNDLE, "The EAGLE-3 head " + file + " has no fc on its hidden_states input; re-export the bundle.");
        mm->output(0).replace(mm->input_value(0));
        for (const auto &r : model->get_results())
            if (ov::is_type<ov::op::v0::Constant>(r->get_input_node_shared_ptr(0))) {  // d2t: the bundle has it as a file
                model->remove_result(r);
                break;
            }
        ov::Output<ov::Node> hidden = layer_output(model, "midlayer");
        if (!hidden.get_node()) throw Error(ES_ERR_BUNDLE, "The EAGLE-3 head " + file + " has no midlayer output; re-export the bundle.");
        add_features_result(model, hidden);
    };
}

}  // namespace es
