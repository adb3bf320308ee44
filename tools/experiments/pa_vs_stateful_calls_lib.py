"""The runtime's logits slice, for the per-call experiments."""
import numpy as np
import openvino as ov
from openvino import opset8 as ops


def with_rows(m, axis):  # the runtime's logits slice: prefill computes one row
    out = [o for o in m.outputs if "logits" in o.get_names()][0]
    node = out.get_node().input_value(0).get_node()
    while node.get_type_name() != "MatMul":
        node = [i.get_node() for i in node.input_values() if i.get_node().get_type_name() != "Constant"][0]
    rows = ops.parameter([1], ov.Type.i64, name="es_logits_rows")
    rows.output(0).get_tensor().set_names({"es_logits_rows"})
    sl = ops.slice(node.input_value(0), ops.negative(rows), ops.constant(np.array([2**62], np.int64)),
                   ops.constant(np.array([1], np.int64)), ops.constant(np.array([axis], np.int64)))
    node.input(0).replace_source_output(sl.output(0))
    m.add_parameters([rows])
    m.validate_nodes_and_infer_types()
    return m
