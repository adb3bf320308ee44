"""`edgespec demo`: the end-of-function stop, the cost figures, and the twin demo end to end on a
small twin (the 1B default is too slow for a test; --twin-shape builds a ~20M one the same way)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgespec import bundle
from edgespec.demo import demo_models_dir, explain, function_stops, parse_twin_shape
from edgespec.errors import EdgespecError

needs_demo = pytest.mark.skipif(
    not (demo_models_dir() / "target" / "config.json").is_file(), reason="demo weights not built"
)


def cut(text: str, stops: list[str]) -> str:
    """What the runtime keeps of ``text`` under stop strings (text before the first one)."""
    at = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(at)] if at else text


def test_a_completion_stops_at_the_first_line_left_of_the_body():
    prompt = 'def f(x):\n    """Twice x."""'
    stops = function_stops(prompt)
    body = "\n    y = x * 2\n\n    if y:\n        return y\n    return 0\n"
    for after in ("\n\ndef g():\n    pass\n", "\nclass A:\n", "\n@decorator\n", "\n# a comment\n", "\nprint(f(2))\n"):
        blank = len(after) - len(after.lstrip("\n")) - 1  # blank lines before the stop line stay
        assert cut(body + after, stops) == body + "\n" * blank
    assert cut(body, stops) == body  # blank and deeper lines never stop it


def test_a_method_stops_at_its_own_indentation_not_deeper():
    stops = function_stops("class A:\n    def f(self):\n        'doc'")
    body = "\n        if self:\n            return 1\n        return 2\n"
    assert cut(body + "\n    def g(self):\n", stops) == body
    assert cut(body + "\nx = A()\n", stops) == body
    assert function_stops("x = 1") == []  # no function: no stop


def test_the_explanation_figures_follow_from_the_stats():
    from edgespec.pipeline import Stats

    def stats(**kw):
        base = dict(
            ttft_ms=0,
            tpot_ms=0,
            tokens_per_s=0,
            total_ms=0,
            draft_ms=0,
            verify_ms=0,
            other_ms=0,
            prefill_ms=0,
            tokenize_ms=0,
            callback_ms=0,
            prompt_tokens=10,
            generated_tokens=0,
            target_calls=0,
            drafted=0,
            accepted=0,
            acceptance_rate=0,
            mean_accepted=0,
            kv_compactions=0,
            final_k=0,
            finish_reason="stop_string",
        )
        return Stats(**{**base, **kw})

    # plain: 1 prefill + 40 one-token calls of 50 ms; speculative: 20 verify calls of 3 tokens at 100 ms,
    # 40 drafted (1 ms each), 20 accepted: 2 tokens per verify call
    plain = stats(generated_tokens=41, target_calls=41, verify_ms=300 + 40 * 50, prefill_ms=300)
    spec = stats(
        generated_tokens=41,
        target_calls=21,
        verify_ms=300 + 20 * 100,
        prefill_ms=300,
        drafted=40,
        accepted=20,
        draft_ms=40,
        acceptance_rate=0.5,
    )
    f = explain(spec, plain, step_ms=0)
    assert f["decode_step_ms"] == 50 and f["verify_width"] == 3 and f["verify_steps"] == 2
    assert f["tokens_per_verify"] == 2 and f["draft_steps_per_round"] == pytest.approx(0.04)
    assert f["allowed_speedup"] == pytest.approx(2 / 2.04)
    assert f["projected_flat_verify"] == pytest.approx(2 / 1.04)
    # prompt lookup's proposals cost no drafter call: the drafter's cost is per token it drafted
    looked = explain(Stats(**{**spec.__dict__, "lookup_drafted": 10, "lookup_accepted": 8}), plain, step_ms=0)
    assert looked["draft_ms_per_token"] == pytest.approx(40 / 30) and f["draft_ms_per_token"] == pytest.approx(1.0)
    assert (looked["lookup_drafted"], looked["lookup_accepted"]) == (10, 8)


def test_bad_twin_shapes_get_a_sentence():
    assert parse_twin_shape("448,6,1024,7,2048") == (448, 6, 1024, 7, 2048)
    for bad in ("448,6", "a,b,c,d,e", "448,0,1024,7,2048"):
        with pytest.raises(EdgespecError, match="five positive numbers"):
            parse_twin_shape(bad)


def _demo(*args, cache, timeout=900):
    env = {**os.environ, "EDGESPEC_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "edgespec", "demo", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@needs_demo
def test_bad_demo_options_get_one_sentence(tmp_path):
    for args, match in (
        (("--k", "0"), "from 1 to 32"),
        (("--twin-shape", "1,2"), "five positive numbers"),
        (("--small", "--twin-shape", "448,6,1024,7,2048"), "drop --twin-shape"),
    ):
        r = _demo(*args, cache=tmp_path, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert r.stderr.strip().splitlines()[-1].startswith("error: ") and match in r.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@needs_demo
@pytest.mark.slow
def test_the_twin_demo_json_end_to_end(tmp_path):
    r = _demo("--json", "--twin-shape", "448,6,1024,7,2048", "--max-new-tokens", "48", cache=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)  # stdout holds the JSON only
    assert rep["identical_to_plain"] is True and rep["text"]
    assert rep["speedup"] > 0 and 0 <= rep["acceptance_rate"] <= 1
    assert "widened to 20M parameters" in rep["target"]
    assert set(rep["verify_curve"]) == {"3", "5"}  # the fixed k=2 and k=4 probes
    assert rep["drafting"]["k"] in ("auto", 2, 4) and rep["drafting"]["chosen_by"].startswith("fastest of")
    for key in ("decode_step_ms", "verify_steps", "allowed_speedup", "projected_flat_verify"):
        assert rep["explanation"][key] > 0
    assert rep["stats"]["speculative"]["completion_tokens"] == rep["stats"]["plain"]["generated_tokens"]
    # the cache holds the final bundle only (the fp32 twin is deleted), named as the "wrote" line says
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].startswith("demo-twin-draft-"), entries
    b = bundle.load(tmp_path / entries[0])
    assert str(tmp_path / entries[0]) == rep["bundle"]
    assert b.target.raw["weights"]["precision"] == "int4" and b.draft("draft").raw["weights"]["precision"] == "int8"
    assert json.loads((b.target.dir / "config.json").read_text())["hidden_size"] == 448
    # a second run reuses the bundle
    r = _demo("--json", "--twin-shape", "448,6,1024,7,2048", "--max-new-tokens", "8", "--k", "2", cache=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["drafting"]["chosen_by"] == "--k"
    assert sorted(p.name for p in tmp_path.iterdir()) == entries
