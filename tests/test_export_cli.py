"""`edgespec export` as a subprocess: a real export with all three drafter relations, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgespec import bundle


def run_cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "edgespec", "export", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def assert_one_sentence_error(r, match, out=None):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), r.stderr
    assert match in lines[-1], lines[-1]
    if out is not None:
        assert not out.exists() or (out / "keep.txt").exists()
        assert not list(out.parent.glob(f".{out.name}.partial-*"))


@pytest.fixture(scope="module")
def trimmed_draft(tiny_dir, tiny_tokenizer, tmp_path_factory):
    """A VocabTrim-style drafter: LM head and embeddings cut to the first 256 ids, with its id map."""
    import torch
    import transformers as tf

    src = tiny_dir("llama", tokenizer=tiny_tokenizer, seed=7, hidden=32, layers=1)
    out = tmp_path_factory.mktemp("trimmed")
    model = tf.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    model.resize_token_embeddings(256)
    model.save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    np.arange(256, dtype="<i4").tofile(out / "trim_id_map.i32")
    return out


@pytest.mark.slow
def test_cli_exports_cross_vocab_and_trimmed_drafters_with_json(tiny_dir, tiny_tokenizer, trimmed_draft, tmp_path):
    # (same_vocab through the API: the tiny_bundle fixture)
    from tiny import train_tokenizer

    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    cross = tiny_dir("qwen2", tokenizer=train_tokenizer(vocab_size=384), hidden=32, layers=1)
    out = tmp_path / "bundle"
    r = run_cli(
        target,
        "--draft",
        cross,
        "--draft",
        trimmed_draft,
        "-o",
        out,
        "--weights",
        "int8",
        "--json",
        "--draft-name",
        "xv",
        "--draft-name",
        "trim",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)  # stdout holds the JSON and nothing else
    assert [m["name"] for m in summary["models"]] == ["target", "xv", "trim"]
    assert "top-1 agreement" in r.stderr  # figures printed for people
    b = bundle.load(out)
    rel = {m.name: m.raw.get("relation") for m in b.models}
    assert rel["xv"] == {"kind": "cross_vocab"}
    assert rel["trim"]["kind"] == "trimmed" and rel["trim"]["kept"] == 256
    assert (out / "trim" / "trim_id_map.i32").is_file()
    assert b.draft("trim").raw["vocab_size"] == 256
    for m in b.models:
        v = m.raw["validation"]
        assert v["top1_agreement"] >= v["threshold"] == 0.8
    assert b.draft("xv").raw["tokenizer"]["vocab_hash"] != b.target.raw["tokenizer"]["vocab_hash"]

    # the same output again without --force: refused, the bundle left as it was
    r = run_cli(target, "-o", out, "--weights", "int8")
    assert_one_sentence_error(r, "already exists and is not empty")
    assert bundle.load(out).manifest == b.manifest


def test_cli_bad_inputs_get_one_sentence_and_no_output(tiny_dir, tiny_tokenizer, tmp_path):
    from tiny import write_bert_config

    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    bert = tmp_path / "bert"
    write_bert_config(bert)
    empty = tmp_path / "empty"
    empty.mkdir()
    prompts = tmp_path / "p.txt"
    prompts.write_text("def f(x):\n")
    out = tmp_path / "out"
    cases = [
        ((tmp_path / "missing", "-o", out), "does not exist"),
        ((empty, "-o", out), "has no config.json"),
        ((bert, "-o", out), "not a causal language model"),
        ((target, "-o", out, "--awq"), "--awq needs calibration text"),
        ((target, "-o", out, "--ratio", "1.5"), "outside (0, 1]"),
        ((target, "-o", out, "--weights", "fp16", "--group-size", "64"), "only to INT4"),
        ((target, "-o", out, "--group-size", "0"), "--group-size 0 is invalid"),
        ((target, "-o", out, "--accuracy-level", "4"), "use it with --format onnx"),
        (("some-org/some-model-that-is-not-here", "-o", out), "is not a local directory"),
        ((target, "--draft", tmp_path / "nodraft", "-o", out), "drafter path"),
        (("-o", out), "Name the model to export"),
        (("--pair", "llama3.1-8b-fastdraft", "--models-dir", empty, "-o", out), "not on this machine"),
    ]
    for args, match in cases:
        r = run_cli(*args, timeout=120)
        assert_one_sentence_error(r, match, out)
        assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run_cli(target, "-o", out)
    assert_one_sentence_error(r, "already exists and is not empty", out)
    assert (out / "keep.txt").read_text() == "mine"
