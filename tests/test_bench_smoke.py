"""tools/bench.py end to end on a tiny bundle: every metric is reported and sane (no timing thresholds)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
sys.path.insert(0, str(TOOLS))

pytest.importorskip("openvino_genai")

CONFIGS = ("es_ar", "es_spec_k2", "es_ngram", "genai_ar", "genai_spec_k2")


@pytest.fixture(scope="module")
def report(tiny_bundle, tmp_path_factory):
    bundle = tiny_bundle()
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    md = out.with_suffix(".md")
    cmd = [sys.executable, str(TOOLS / "bench.py"), str(bundle), "--prompt-set", "short", "--prompts", "1",
           "--max-new-tokens", "8", "--repeats", "1", "--k", "2", "--precision", "f32", "--kv-precision", "f32",
           "--configs", ",".join(CONFIGS), "--json", str(out), "--md", str(md), "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| es_ar |" in r.stdout  # the Markdown table is printed
    assert md.read_text() .startswith("# edgespec benchmark")
    return json.loads(out.read_text())


def test_header_describes_machine_versions_models_and_prompts(report):
    h = report["header"]
    assert h["machine"]["cpu"] and h["machine"]["logical_cpus"] >= 1 and h["machine"]["memory_gb"] > 0
    assert h["versions"]["openvino"] and h["versions"]["openvino-genai"] and h["versions"]["edgespec"]
    assert h["models"]["target"]["precision"] == "int4" and h["models"]["target"]["weight_bytes"] > 0
    assert any(k.startswith("draft:") for k in h["models"])
    assert h["run"]["max_new_tokens"] == 8 and h["run"]["k"] == [2]
    ps = report["sets"]["short"]["prompt_set"]
    assert ps["sha256"] == hashlib.sha256((TOOLS / "prompts" / "short.jsonl").read_bytes()).hexdigest()
    assert ps["n"] == 1


def test_every_configuration_reports_every_metric(report):
    import bench

    res = report["sets"]["short"]["results"]
    assert set(res) == set(CONFIGS)
    for name, m in res.items():
        assert "error" not in m, f"{name}: {m.get('error')}"
        missing = [k for k in bench.METRIC_KEYS if k not in m]
        assert not missing, f"{name} lacks {missing}"
        assert m["n_new"] == 8  # ignore_eos: exactly max_new_tokens on every side
        assert m["tokens_per_s"] > 0 and m["ttft_ms"] > 0 and m["tpot_ms"] > 0
        assert m["speedup"] > 0 and m["peak_rss_mb"] > 0
        assert m["mean_accepted"] >= 1.0
        assert m["target_calls"] >= 1
    for name in ("es_spec_k2", "genai_spec_k2"):
        m = res[name]
        assert 0.0 <= m["acceptance_rate"] <= 1.0
        assert m["drafted"] > 0 and 0 <= m["accepted"] <= m["drafted"]
        assert m["ideal_speedup"] > 0 and m["efficiency"] > 0 and m["mbsu"] > 0
    assert res["es_ar"]["speedup"] == pytest.approx(1.0)
    for name in ("es_ar", "es_spec_k2", "es_ngram"):
        assert 0.0 <= res[name]["other_share"] < 1.0
        assert res[name]["draft_ms"] >= 0 and res[name]["verify_ms"] > 0
    assert res["es_spec_k2"]["peer"] == "genai_spec_k2" and res["es_spec_k2"]["vs_peer"] > 0


def test_greedy_speculation_reproduces_plain_decoding(report):
    res = report["sets"]["short"]["results"]
    # f32 everywhere: speculative output must be token-identical to the target's own (lossless)
    assert res["es_spec_k2"]["agree"] == "1/1"
    assert res["es_ngram"]["agree"] == "1/1"
    # edgespec vs GenAI may differ: that is reported, not asserted
    assert res["genai_ar"]["agree"] in ("0/1", "1/1")


def test_per_call_costs_and_comparisons_are_reported(report):
    s = report["sets"]["short"]
    c = s["costs"]
    assert c["T_ar_ms"] > 0 and c["T_draft_ms"] > 0 and c["T_verify_ms"]["3"] > 0
    cmp_ = s["comparisons"]
    assert cmp_["es_ar_vs_genai_ar"] > 0 and cmp_["es_spec_k2_vs_genai_spec_k2"] > 0
    assert 0 <= cmp_["es_max_other_share"] < 1
