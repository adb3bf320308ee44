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
    sl = ops.slice(
        node.input_value(0),
        ops.negative(rows),
        ops.constant(np.array([2**62], np.int64)),
        ops.constant(np.array([1], np.int64)),
        ops.constant(np.array([axis], np.int64)),
    )
    node.input(0).replace_source_output(sl.output(0))
    m.add_parameters([rows])
    m.validate_nodes_and_infer_types()
    return m


def paged_request(core, xml, props, blocks):
    """An infer request of xml's paged-attention form (with the logits slice) on the CPU, its cache
    tensors allocated for `blocks` blocks."""
    from openvino._offline_transformations import paged_attention_transformation

    pm = core.read_model(xml)
    paged_attention_transformation(pm, False, False)
    r = core.compile_model(with_rows(pm, 0), "CPU", props).create_infer_request()
    for i in r.get_compiled_model().inputs:
        if "cache" in i.get_any_name():
            s = i.get_partial_shape()
            r.set_tensor(
                i.get_any_name(), ov.Tensor(i.get_element_type(), [blocks] + [s[j].get_length() for j in range(1, 4)])
            )
    return r


def paged_call(r, ids, past, rows):
    """One call of a paged request: ids at positions past.., one sequence, blocks 0, 1, ..., the
    last `rows` logits rows; returns the logits tensor's data."""
    n = len(ids)
    tot = past + n
    nb = (tot + 31) // 32
    r.infer(
        {
            "input_ids": np.array(ids, np.int64),
            "position_ids": np.arange(past, tot, dtype=np.int64),
            "past_lens": np.array([past], np.int32),
            "subsequence_begins": np.array([0, n], np.int32),
            "block_indices_begins": np.array([0, nb], np.int32),
            "block_indices": np.arange(nb, dtype=np.int32),
            "max_context_len": np.array(tot, np.int32),
            "es_logits_rows": np.array([rows], np.int64),
        }
    )
    return r.get_tensor("logits").data


def set_paged_inputs(r, ids, past, rows=1):
    """Sets a paged request's inputs for ids at positions past.. (as paged_call feeds them) without
    running it, so a caller can time infer() alone."""
    n = len(ids)
    tot = past + n
    nb = (tot + 31) // 32
    for name, v in {
        "input_ids": np.array(ids, np.int64),
        "position_ids": np.arange(past, tot, dtype=np.int64),
        "past_lens": np.array([past], np.int32),
        "subsequence_begins": np.array([0, n], np.int32),
        "block_indices_begins": np.array([0, nb], np.int32),
        "block_indices": np.arange(nb, dtype=np.int32),
        "max_context_len": np.array(tot, np.int32),
        "es_logits_rows": np.array([rows], np.int64),
    }.items():
        r.set_tensor(name, ov.Tensor(v))
