"""Export pieces that need no conversion: options, relations, group sizes, registry, refusals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from edgespec.export import api
from edgespec.export.openvino_convert import fit_group_size
from edgespec.export.source import inspect_source

from edgespec import registry
from edgespec.errors import EdgespecError, ExportError


@pytest.fixture(scope="module")
def xvocab_tokenizer():
    from tiny import train_tokenizer

    return train_tokenizer(vocab_size=384)


def relation_of(target_dir, draft_dir):
    t, d = inspect_source(target_dir), inspect_source(draft_dir, "drafter")
    h = lambda s: api.vocab_hash(s.tokenizer.get_vocab())  # noqa: E731
    return api._relation(d, h(d), t, h(t))


def test_a_drafter_with_the_same_tokenizer_is_same_vocab(tiny_dir, tiny_tokenizer):
    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    draft = tiny_dir("llama", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1)
    assert relation_of(target, draft) == {"kind": "same_vocab"}


def test_a_drafter_with_a_differently_trained_tokenizer_is_cross_vocab(tiny_dir, tiny_tokenizer, xvocab_tokenizer):
    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    draft = tiny_dir("qwen2", tokenizer=xvocab_tokenizer, hidden=32, layers=1)
    assert relation_of(target, draft) == {"kind": "cross_vocab"}


def test_a_drafter_with_a_valid_id_map_is_trimmed_and_a_bad_map_is_refused(tiny_dir, tiny_tokenizer, tmp_path):
    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    draft = tmp_path / "trim"
    shutil.copytree(tiny_dir("llama", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1), draft)
    width = inspect_source(draft).logit_width
    np.arange(width, dtype="<i4")[::-1].tofile(draft / api.TRIM_MAP)  # fake but valid: a permutation
    rel = relation_of(target, draft)
    assert rel["kind"] == "trimmed" and rel["kept"] == width and rel["id_map"] == api.TRIM_MAP
    np.arange(width - 1, dtype="<i4").tofile(draft / api.TRIM_MAP)
    with pytest.raises(ExportError, match="entries but its LM head has"):
        relation_of(target, draft)
    (np.arange(width, dtype="<i4") + 1000).tofile(draft / api.TRIM_MAP)
    with pytest.raises(ExportError, match="outside the target's vocabulary"):
        relation_of(target, draft)


def test_group_size_falls_back_to_a_divisor_of_every_channel_size():
    assert fit_group_size(128, [4096, 4096, 11008]) == 128
    assert fit_group_size(128, [64, 64, 128]) == 64
    assert fit_group_size(128, [32, 32, 64]) == 32
    assert fit_group_size(128, [24, 24, 48]) == -1
    assert fit_group_size(-1, [64]) == -1


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(awq=True), "--awq needs calibration text"),
        (dict(scale_estimation=True), "--scale-estimation needs"),
        (dict(ratio=0.0), "outside \\(0, 1\\]"),
        (dict(ratio=1.5), "outside \\(0, 1\\]"),
        (dict(group_size=0), "--group-size 0 is invalid"),
        (dict(group_size=-2), "--group-size -2 is invalid"),
        (dict(weights="fp16", group_size=64), "applies only to INT4"),
        (dict(weights="int8", sym=True, ratio=0.5), "apply only to INT4"),
        (dict(weights="fp16", preset="npu"), "use it with --weights int4"),
        (dict(preset="gpu9"), "Unknown preset"),
        (dict(format="onnx", awq=True, dataset=["x"]), "NNCF options"),
        (dict(dataset="/no/such/prompts.txt"), "is not a file"),
        (dict(min_agreement=2.0), "outside \\[0, 1\\]"),
    ],
)
def test_conflicting_options_get_one_sentence(kw, match):
    with pytest.raises(ExportError, match=match):
        api.check_options(**kw)


def test_npu_preset_is_symmetric_int4_and_channel_wise_above_1b(tiny_dir, tiny_tokenizer, monkeypatch):
    src = inspect_source(tiny_dir("llama", tokenizer=tiny_tokenizer))
    w = api._weight_config(src, "int4", None, None, None, False, False, "npu")
    assert (w.precision, w.sym, w.group_size, w.ratio) == ("int4", True, 64, 1.0)  # 128 fitted to hidden 64
    monkeypatch.setattr(type(src), "parameter_count", lambda self: 7_000_000_000)
    w = api._weight_config(src, "int4", None, None, None, False, False, "npu")
    assert (w.sym, w.group_size) == (True, -1)  # channel-wise above 1B parameters
    w = api._weight_config(src, "int4", 32, None, None, False, False, "npu")
    assert w.group_size == 32  # an explicit --group-size wins
    w = api._weight_config(src, "int4", None, 0.8, None, False, False, None)
    assert (w.sym, w.group_size, w.ratio) == (False, 64, 0.8)  # family default 128 fitted to hidden 64


def test_a_drafter_larger_than_its_target_is_refused(tiny_dir, tiny_tokenizer, tmp_path):
    small = tiny_dir("llama", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1)
    big = tiny_dir("llama", tokenizer=tiny_tokenizer)
    with pytest.raises(ExportError, match="is larger than the target"):
        api.export_bundle(small, tmp_path / "b", [big], progress=False)
    assert not (tmp_path / "b").exists()


def test_too_little_disk_space_is_refused_before_any_work(tiny_dir, tiny_tokenizer, tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(api.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    with pytest.raises(ExportError, match="Not enough disk space"):
        api.export_bundle(tiny_dir("llama", tokenizer=tiny_tokenizer), tmp_path / "b", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_export_leaves_no_directory(tiny_dir, tiny_tokenizer, tmp_path, monkeypatch):
    from edgespec.export import openvino_convert

    def interrupted(src, work_dir, precision):  # Ctrl-C in the middle of writing the IR
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "openvino_model.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(openvino_convert, "export_ir", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.export_bundle(
            tiny_dir("llama", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1),
            tmp_path / "b",
            weights="fp32",
            validate=False,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_is_not_a_causal_lm_is_refused(tmp_path):
    from tiny import write_bert_config

    write_bert_config(tmp_path)
    with pytest.raises(ExportError, match="not a causal language model"):
        inspect_source(tmp_path)


def test_registry_lists_families_presets_and_pairs():
    fams = registry.families()
    for f in ("llama", "mistral", "qwen2", "qwen3", "phi3", "gpt2", "gemma"):
        assert f in fams
    assert registry.preset("npu")["sym"] is True
    pairs = registry.pairs()
    assert pairs["llama3.1-8b-fastdraft"]["drafts"] == ["OpenVINO/Llama-3.1-8B-Instruct-FastDraft-150M"]
    assert "demo" in pairs and "qwen2-7b-llama68m" in pairs


def test_a_pair_whose_checkpoints_are_missing_gets_a_sentence(tmp_path):
    with pytest.raises(EdgespecError, match="not on this machine"):
        registry.resolve_pair("llama3.1-8b-fastdraft", tmp_path)
    with pytest.raises(EdgespecError, match="Unknown pair"):
        registry.resolve_pair("nope")


def test_a_pair_resolves_from_models_dir(tmp_path, tiny_dir, tiny_tokenizer):
    shutil.copytree(tiny_dir("llama", tokenizer=tiny_tokenizer), tmp_path / "Phi-3-mini-4k-instruct")
    shutil.copytree(
        tiny_dir("llama", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1),
        tmp_path / "Phi-3-mini-FastDraft-50M",
    )
    target, drafts, names = registry.resolve_pair("phi3-mini-fastdraft", tmp_path)
    assert target.name == "Phi-3-mini-4k-instruct" and [d.name for d in drafts] == ["Phi-3-mini-FastDraft-50M"]
    assert names == ["Phi-3-mini-FastDraft-50M"]  # from the hub id, whatever directory holds it


def test_the_demo_pair_skips_drafters_not_built_yet(tmp_path, tiny_dir, tiny_tokenizer):
    demo = tmp_path / "models" / "demo"
    shutil.copytree(tiny_dir("llama", tokenizer=tiny_tokenizer), demo / "target")
    with pytest.raises(EdgespecError, match="has no drafter on this machine yet"):
        registry.resolve_pair("demo", tmp_path)
    shutil.copytree(tiny_dir("llama", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1), demo / "draft-xvocab")
    target, drafts, names = registry.resolve_pair("demo", tmp_path)
    assert target == demo / "target" and drafts == [demo / "draft-xvocab"] and names == ["draft-xvocab"]


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(format="onnx", group_size=-1), "no channel-wise INT4"),
        (dict(format="onnx", preset="npu"), "use it with --format openvino"),
        (dict(format="onnx", ratio=0.5), "ONNX INT4 quantizes every MatMul"),
    ],
)
def test_onnx_only_refuses_nncf_settings(kw, match):
    with pytest.raises(ExportError, match=match):
        api.check_options(**kw)


def test_drafters_are_named_after_their_directories():
    assert api.default_draft_names(["models/demo/draft", "x/draft-trimmed/"]) == ["draft", "draft-trimmed"]
    assert api.default_draft_names(["a/draft", "b/draft", "c/draft"]) == ["draft", "draft-2", "draft-3"]
    assert api.default_draft_names(["OpenVINO/Llama-3.1-8B-Instruct-FastDraft-150M"]) == [
        "Llama-3.1-8B-Instruct-FastDraft-150M"
    ]
    assert api.default_draft_names(["m/target", "m/my drafter", "m/"]) == ["draft", "my-drafter", "m"]


def test_drafters_default_to_int8_under_an_int4_target_else_the_targets_precision():
    assert api.draft_precision("int4") == "int8"
    assert [api.draft_precision(w) for w in ("int8", "fp16", "fp32")] == ["int8", "fp16", "fp32"]
    assert api.draft_precision("int4", "int4") == "int4" and api.draft_precision("fp32", "int8") == "int8"


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(accuracy_level=4), "use it with --format onnx"),
        (dict(format="onnx", accuracy_level=5), "outside 0-4"),
        (dict(format="onnx", weights="fp16", accuracy_level=4), "applies to INT4/INT8 weights"),
        (dict(draft_weights="int3"), "Unknown drafter weight precision"),
        (dict(weights="int8", group_size=64), "only to INT4"),
    ],
)
def test_drafter_precision_and_accuracy_level_refusals(kw, match):
    with pytest.raises(ExportError, match=match):
        api.check_options(**kw)
    api.check_options(weights="int8", draft_weights="int4", group_size=64)  # the INT4 knobs reach INT4 drafters


def test_per_role_weights_and_directory_names_are_recorded(tiny_dir, tiny_tokenizer, tmp_path):
    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    d1 = tiny_dir("llama", name="draft", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1)
    d2 = tmp_path / "other" / "draft"
    shutil.copytree(d1, d2)
    m = api.export_bundle(
        target, tmp_path / "b", [d1, d2], weights="int4", draft_weights="int4", validate=False, progress=False
    )
    assert [(x["name"], x["weights"]["precision"]) for x in m["models"]] == [
        ("target", "int4"),
        ("draft", "int4"),
        ("draft-2", "int4"),
    ]
    assert m["export"]["draft_weights"] == "int4"  # the default, INT8, is checked on the tiny_bundle fixture


@pytest.mark.slow
def test_onnx_accuracy_level_reaches_matmulnbits_and_the_manifest(tiny_dir, tiny_tokenizer, tmp_path):
    onnx = pytest.importorskip("onnx")
    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    draft = tiny_dir("llama", name="draft", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1)
    m = api.export_bundle(
        target, tmp_path / "b", [draft], format="onnx", weights="int4", accuracy_level=4, validate=False, progress=False
    )
    assert m["export"]["accuracy_level"] == 4
    for entry in m["models"]:
        assert entry["weights"]["accuracy_level"] == 4
        g = onnx.load(str(tmp_path / "b" / entry["path"] / entry["files"]["model"]), load_external_data=False)
        levels = {
            a.i for n in g.graph.node if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "accuracy_level"
        }
        assert levels == {4}, entry["name"]


def test_data_aware_int4_uses_the_dataset_and_records_the_settings(tiny_dir, tiny_tokenizer, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def fibonacci(n):\nimport os, sys\nfor x in range(10):\n    print(x)  # café\n")
    draft = tiny_dir("llama", tokenizer=tiny_tokenizer, seed=100, hidden=32, layers=1)
    m = api.export_bundle(
        draft,
        tmp_path / "b",
        weights="int4",
        awq=True,
        scale_estimation=True,
        ratio=0.8,
        sym=True,
        dataset=prompts,
        progress=False,
    )
    w = m["models"][0]["weights"]
    assert (w["awq"], w["scale_estimation"], w["ratio"], w["sym"], w["group_size"]) == (True, True, 0.8, True, 32)
    assert m["models"][0]["validation"]["prompts"] == 4  # the dataset's prompts validate too


def test_an_architecture_no_exporter_knows_is_refused(monkeypatch):
    from edgespec.export import source

    with pytest.raises(ExportError, match="neither edgespec nor optimum-intel can export"):
        source._check_supported("frobnicator", "target", "./frob")
    source._check_supported("llama", "target", "./llama")  # listed in models/families.json
    source._check_supported("olmo", "target", "./olmo")  # not listed, but optimum-intel exports it
