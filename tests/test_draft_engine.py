"""A trimmed drafter through the exporter and the native engine: speculative output == greedy target.

Skips itself while the native engine or the exporter is not available in this build.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from engine_support import engine_ready

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not engine_ready(), reason="native engine or exporter not built")]


@pytest.fixture(scope="module")
def trimmed_pair(tiny_dir, tiny_tokenizer, tmp_path_factory):
    from edgespec.export.draft import fastdraft, vocabtrim
    from tiny import corpus_lines

    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    work = tmp_path_factory.mktemp("trimpair")
    (work / "c.txt").write_text("\n".join(corpus_lines(60_000)))
    d1 = work / "d1"
    fastdraft.pretrain(
        work / "c.txt",
        d1,
        target=target,
        hidden=32,
        layers=1,
        steps=30,
        seq_len=32,
        batch_size=8,
        lr=1e-2,
        warmup=5,
        log=lambda s: None,
    )
    vocabtrim.trim(d1, work / "t", calibration=work / "c.txt", keep=200, log=lambda s: None)
    return target, work / "t"


def test_trimmed_drafter_through_engine_equals_target_greedy(trimmed_pair, tmp_path):
    from edgespec.export.api import export_bundle

    from edgespec.pipeline import Pipeline

    target, trimmed = trimmed_pair
    out = tmp_path / "bundle"
    man = export_bundle(str(target), str(out), drafts=[str(trimmed)], weights="fp32", progress=False)
    rel = man["models"][1]["relation"]
    assert rel["kind"] == "trimmed" and rel["kept"] == 200
    pipe = Pipeline.load(out, device="CPU")
    for prompt in ("def f(x):", "import os\nclass A:\n"):
        plain = pipe.generate(prompt, policy="autoregressive", max_new_tokens=24)
        spec = pipe.generate(prompt, policy="draft", k=4, max_new_tokens=24)
        assert spec.tokens == plain.tokens
        assert spec.stats.drafted > 0


def test_trimmed_copy_of_the_target_accepts_through_engine_as_in_torch(tiny_dir, tiny_tokenizer, tmp_path):
    """A VocabTrim'd copy of the target proposes the target's own argmax whenever it was kept."""
    import transformers as tf
    from edgespec.export.api import export_bundle
    from edgespec.export.draft import acceptance, vocabtrim

    from edgespec.pipeline import Pipeline

    target = tiny_dir("llama", tokenizer=tiny_tokenizer)
    # calibration: the target's own samples, so the kept rows are the tokens it emits
    vocabtrim.trim(target, tmp_path / "t", target=target, n_sequences=16, keep=496, log=lambda s: None)
    prompt = "def f(x):"
    tm = tf.AutoModelForCausalLM.from_pretrained(target).eval()
    dm = tf.AutoModelForCausalLM.from_pretrained(tmp_path / "t").eval()
    sim = acceptance.simulate(
        tm,
        tiny_tokenizer,
        dm,
        tiny_tokenizer,
        [prompt],
        k=4,
        max_new_tokens=24,
        kind="trimmed",
        id_map=acceptance.read_id_map(tmp_path / "t"),
    )
    assert sim.acceptance_rate > 0.3
    export_bundle(str(target), str(tmp_path / "b"), drafts=[str(tmp_path / "t")], weights="fp32", progress=False)
    spec = Pipeline.load(tmp_path / "b", device="CPU").generate(prompt, policy="draft", k=4, max_new_tokens=24)
    assert spec.stats.acceptance_rate > 0.3, (spec.stats.acceptance_rate, sim.acceptance_rate)


def test_demo_json_runs_when_demo_weights_exist(tmp_path):
    from edgespec.demo import demo_models_dir

    if not (demo_models_dir() / "target" / "config.json").is_file():
        pytest.skip("demo weights not built")
    env = {**__import__("os").environ, "EDGESPEC_CACHE": str(tmp_path / "cache")}
    # --small: the 17M target itself (the default 1B twin is too slow to build here; tests/test_demo.py
    # runs a small twin)
    r = subprocess.run(
        [sys.executable, "-m", "edgespec", "demo", "--small", "--json", "--max-new-tokens", "96"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["identical_to_plain"] is True
    assert rep["stats"]["speculative"]["mean_accepted"] >= 1.0
    assert rep["finish_reason"] == "stop_string"  # the demo prompt's function ends: the completion stops there
