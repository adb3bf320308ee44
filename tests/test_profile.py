"""`edgespec profile` end to end on a tiny bundle: the figures, the saved recommendation that
`edgespec run` and Pipeline.load start from, the report (rendered in a real headless chromium),
Ctrl-C, and bad input."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import with_self_drafter


def cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "edgespec", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_cli(capsys):
    """The CLI in this process (what a subprocess would print and return, without its start-up)."""
    from edgespec.cli import main

    def call(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return call


def _profile_json(run_cli, bundle, prompts, out, *args):
    """`edgespec profile BUNDLE --prompts PROMPTS ARGS`, one repeat, nothing saved in the bundle: the
    run (it must succeed) and its JSON report."""
    r = run_cli(
        "profile", bundle, "--prompts", prompts, *args, "--repeats", 1, "--json", "--quiet", "--no-save", "-o", out
    )
    assert r.returncode == 0, r.stderr
    return r, json.loads(r.stdout)


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    """A bundle of its own (profiles are written into it): the fp32 tiny target, its random drafter
    "draft" and the target itself as drafter "self" (accepts everything)."""
    base = Path(tiny_bundle("llama", drafts=1, weights="fp32"))
    return with_self_drafter(base, tmp_path_factory.mktemp("profile") / "bundle")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    p = tmp_path_factory.mktemp("prompts") / "p.jsonl"
    p.write_text(json.dumps({"prompt": "def fib(n):"}) + "\n" + json.dumps({"prompt": "x = 1\ny = 2\n"}) + "\n")
    return p


@pytest.fixture(scope="module")
def profiled(bundle, prompts, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r"
    r = cli(
        "profile",
        bundle,
        "--prompts",
        prompts,
        "--max-new-tokens",
        8,
        "--repeats",
        2,
        "--k",
        "2..3",
        "--probe",
        "quick",
        "--precision",
        "f32",
        "--kv-precision",
        "f32",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    return out, json.loads((out / "profile.json").read_text()), r


def test_profile_measures_every_configuration_and_the_cost_curve(profiled):
    out, rep, r = profiled
    names = {"openvino/plain", "openvino/ngram/k4"} | {
        f"openvino/{d}/{k}" for d in ("draft", "self") for k in ("k2", "k3", "adaptive")
    }
    assert set(rep["configs"]) == names
    for name, m in rep["configs"].items():
        assert "error" not in m, (name, m.get("error"))
        assert m["n_new"] == 16 and m["generations"] == 4  # 2 prompts x 2 repeats, 8 tokens each
        assert m["tokens_per_s"] > 0 and m["speedup"] > 0 and m["peak_rss_mb"] > 0
        assert len(m["tokens_per_s_by_repeat"]) == 2 and m["spread"] >= 0
        assert m["verify_ms"] > 0 and 0 <= m["other_share"] < 1
    assert rep["configs"]["openvino/plain"]["speedup"] == pytest.approx(1.0)
    s = rep["configs"]["openvino/self/k3"]
    assert s["acceptance_rate"] == 1.0 and s["mean_accepted"] > 2
    assert len(s["accepted_hist"]) == 4 and s["accepted_hist"][3] > 0 and sum(s["accepted_hist"][:3]) <= 4
    for name in ("openvino/self/k2", "openvino/draft/k3"):
        m = rep["configs"][name]
        assert m["efficiency"] == pytest.approx(m["decode_speedup"] / m["ideal_speedup"], rel=1e-9)
        assert m["efficiency_loop"] == pytest.approx(m["decode_speedup"] / m["ideal_speedup_loop"], rel=1e-9)
    curve = rep["costs"]["openvino"]["target"]
    assert sorted(int(n) for n in curve["T_ms"]) == list(range(1, 9)) and min(curve["T_ms"].values()) > 0
    assert curve["steps"]["1"] == pytest.approx(1.0) and curve["passes"] == 3  # one before, one per repeat
    assert set(rep["costs"]["openvino"]["drafters"]) == {"draft", "self"}
    assert "recommended:" in r.stderr and "saved the recommendation" in r.stderr


def test_csv_has_a_row_per_configuration(profiled):
    out, rep, _ = profiled
    rows = list(csv.DictReader((out / "profile.csv").open()))
    assert [r["configuration"] for r in rows] == list(rep["configs"])
    assert all(float(r["tokens_per_s"]) > 0 for r in rows)


def test_recommendation_is_saved_for_this_device_and_bundle(profiled, bundle):
    _, rep, _ = profiled
    from edgespec.profiling import device_identity, device_key, load_recommendation

    rec = rep["recommendation"]
    assert rec["config"] in rep["configs"] and rec["why"].endswith(".")
    assert rec["policy"] in ("autoregressive", "draft", "ngram") and rec["backend"] == "openvino"
    saved = bundle / "profiles" / f"{device_key(device_identity('CPU'))}.json"
    assert Path(rep["saved"]) == saved
    doc = json.loads(saved.read_text())
    assert doc["recommendation"] == rec and doc["device"] == rep["device"]
    match = load_recommendation(bundle)
    assert match.recommendation == rec and "as measured on this device" in match.note


def _set_recommendation(bundle: Path, **fields) -> Path:
    from edgespec.profiling import device_identity, device_key

    path = bundle / "profiles" / f"{device_key(device_identity('CPU'))}.json"
    doc = json.loads(path.read_text())
    doc["recommendation"].update(fields)
    path.write_text(json.dumps(doc))
    return path


def test_run_and_pipeline_load_start_from_the_profile(profiled, bundle, run_cli):
    _set_recommendation(bundle, backend="openvino", draft="self", policy="draft", k=2)
    r = cli("run", bundle, "def fib(n):", "--max-new-tokens", 7, "--json", "--precision", "f32", "--ignore-eos")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("profile: drafter 'self', k=2 on openvino")
    out = json.loads(r.stdout)
    assert out["draft"] == "self" and out["stats"]["drafted"] == 4 and out["stats"]["target_calls"] == 3  # k=2
    # a flag given on the command line wins; --profile none ignores the file
    r = run_cli(
        "run",
        bundle,
        "def fib(n):",
        "--max-new-tokens",
        7,
        "--json",
        "--precision",
        "f32",
        "--ignore-eos",
        "--policy",
        "autoregressive",
    )
    assert json.loads(r.stdout)["stats"]["drafted"] == 0
    r = run_cli(
        "run", bundle, "def fib(n):", "--max-new-tokens", 7, "--json", "--precision", "f32", "--profile", "none"
    )
    assert r.stderr == "" and json.loads(r.stdout)["draft"] == "draft"  # the bundle's default drafter

    from edgespec import Pipeline

    with Pipeline.load(bundle, precision="f32", kv_precision="f32") as p:
        assert p.draft_name == "self" and p.defaults == {"policy": "draft", "k": 2}
        assert p.generate("def fib(n):", max_new_tokens=7, ignore_eos=True).stats.drafted > 0
        assert p.generate("def fib(n):", max_new_tokens=7, ignore_eos=True, policy="autoregressive").stats.drafted == 0
    with Pipeline.load(bundle, precision="f32", kv_precision="f32", profile=False) as p:
        assert p.draft_name == "draft" and p.defaults == {} and p.profile is None


def test_a_profile_of_another_device_or_bundle_is_never_applied(profiled, bundle, tmp_path, run_cli):
    from edgespec import Pipeline
    from edgespec.profiling import device_identity, device_key

    own = bundle / "profiles" / f"{device_key(device_identity('CPU'))}.json"
    other = tmp_path / "b"
    shutil.copytree(bundle, other, symlinks=True)
    doc = json.loads((other / "profiles" / own.name).read_text())
    (other / "profiles" / own.name).unlink()
    doc["device"]["cpu"] = "Some Other CPU"
    foreign = other / "profiles" / "some-other-cpu-cpu-0123456789.json"
    foreign.write_text(json.dumps(doc))
    r = run_cli("run", other, "x", "--max-new-tokens", 3, "--json", "--precision", "f32")
    assert r.returncode == 0 and "not using" in r.stderr and "another device (Some Other CPU" in r.stderr
    with Pipeline.load(other, precision="f32") as p:
        assert p.defaults == {} and p.profile.recommendation is None
    r = run_cli("run", other, "x", "--profile", foreign)
    assert r.returncode == 2 and "does not fit" in r.stderr and "Traceback" not in r.stderr
    # the same device, another build of the bundle (its manifest changed)
    doc["device"] = device_identity("CPU")
    doc["bundle"] = "sha256:" + "0" * 64
    (other / "profiles" / own.name).write_text(json.dumps(doc))
    r = run_cli("run", other, "x", "--max-new-tokens", 3, "--json", "--precision", "f32")
    assert r.returncode == 0 and "another build of this bundle" in r.stderr
    assert json.loads(r.stdout)["draft"] == "draft"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_renders_in_a_headless_browser(profiled, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (tools/setup.sh installs Debian's where apt and root are available)")
    out, rep, _ = profiled
    html = out / "profile.html"
    text = html.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'u'}"]
    r = subprocess.run([browser, *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    rec = rep["recommendation"]
    assert 'id="recommendation"' in dom and f"Recommended:</b> {rec['config']}" in dom
    for chart in ("T(n) / T(1) per backend", "speedup vs k per drafter", "ms per token"):
        assert f'aria-label="{chart}"' in dom
    assert dom.count("<svg") >= 4  # curve, speedup, at least one histogram, time split
    assert dom.count("<polyline") >= 3 and dom.count("<circle") >= 8  # the curve's 8 points at least
    for name in rep["configs"]:
        assert f"<td>{name}</td>" in dom
    png = tmp_path / "shot.png"
    r = subprocess.run(
        [browser, *flags, "--window-size=1280,2200", f"--screenshot={png}", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_ctrl_c_keeps_what_was_measured(bundle, prompts, tmp_path):
    from edgespec.profiling.report import to_html, write_report
    from edgespec.profiling.runs import plan, profile, summarize

    configs = plan(["openvino"], [("self", "same_vocab")], [2], False, 4)
    done = []

    def progress(desc: str, n: int) -> None:  # Ctrl-C arrives after the fourth timed generation
        if desc.startswith("repeat"):
            done.append(desc)
            if len(done) == 5:
                raise KeyboardInterrupt

    m = profile(
        bundle,
        ["def fib(n):", "x = 1"],
        configs,
        max_new_tokens=6,
        repeats=3,
        load_kw={"precision": "f32", "kv_precision": "f32"},
        probe_backends=set(),
        progress=progress,
    )
    assert m["partial"] and any("interrupted" in n for n in m["notes"])
    assert sum(len(rr) for runs in m["runs"].values() for rr in runs) == 4
    res = summarize(configs, m, 2, {})
    assert res["openvino/plain"]["generations"] >= 1
    report = {
        "configs": res,
        "costs": {},
        "partial": True,
        "device": {"cpu": "x", "isa": [], "ov_device": "CPU"},
        "bundle": {"path": str(bundle)},
        "run": {"prompts": 2, "max_new_tokens": 6, "repeats": 3},
        "started": "",
        "finished": "",
        "edgespec": "0",
        "recommendation": None,
        "notes": m["notes"],
    }
    write_report(report, tmp_path / "partial")
    assert json.loads((tmp_path / "partial" / "profile.json").read_text())["partial"] is True
    assert 'id="partial"' in to_html(report)


def test_bad_input_is_one_sentence_and_writes_nothing(bundle, prompts, tmp_path, run_cli):
    cases = []
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "bad.json").write_text("[1, 2")
    (tmp_path / "noid.jsonl").write_text('{"id": "a"}\n')
    cases += [
        (["--prompts", tmp_path / "missing.txt"], "does not exist"),
        (["--prompts", tmp_path / "empty.txt"], "holds no prompts"),
        (["--prompts", tmp_path / "bin.txt"], "not UTF-8"),
        (["--prompts", tmp_path / "bad.json"], "not valid JSON"),
        (["--prompts", tmp_path / "noid.jsonl"], "is not a prompt"),
        (["--k", "0"], "must lie in 1..32"),
        (["--k", "40"], "must lie in 1..32"),
        (["--k", "x"], "--k must be"),
        (["--drafts", "nope"], "no drafter 'nope'"),
        (["--backends", "onnxruntime"], "needs an ONNX bundle"),
    ]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    cases.append((["-o", busy], "--force"))
    for args, words in cases:
        r = (
            run_cli("profile", bundle, "--prompts", prompts, *args)
            if "--prompts" not in args
            else run_cli("profile", bundle, *args)
        )
        assert r.returncode == 2, (args, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
    assert (busy / "keep.txt").read_text() == "x" and len(list(busy.iterdir())) == 1
    r = run_cli("profile", tmp_path / "nobundle")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_a_bundle_without_drafters_profiles_plain_and_ngram(bundle, prompts, tmp_path, run_cli):
    plain = tmp_path / "plain"
    plain.mkdir()
    manifest = json.loads((bundle / "edgespec.json").read_text())
    manifest["models"] = [m for m in manifest["models"] if m["role"] == "target"]
    manifest.pop("integrity", None)  # it lists the drafter's files too
    from engine_support import link_tree  # hard links: a symlink out of a bundle is refused

    for m in manifest["models"]:
        link_tree(bundle / m["path"], plain / m["path"])
    (plain / "edgespec.json").write_text(json.dumps(manifest))
    r, rep = _profile_json(run_cli, plain, prompts, tmp_path / "rep", "--max-new-tokens", 4)
    assert set(rep["configs"]) == {"openvino/plain", "openvino/ngram/k4"}
    assert any("no drafter" in n for n in rep["notes"]) and "no drafter" in r.stderr
    assert not (plain / "profiles").exists()


def test_an_onnx_bundle_gets_onnx_runtimes_cost_curve(tiny_bundle, prompts, tmp_path, run_cli):
    pytest.importorskip("onnxruntime")
    base = Path(tiny_bundle("llama", drafts=1, weights="int4", format="onnx"))
    b = with_self_drafter(base, tmp_path / "b")
    flags = ("--backends", "onnxruntime", "--drafts", "self", "--k", 2, "--max-new-tokens", 6)
    r, rep = _profile_json(run_cli, b, prompts, tmp_path / "rep", *flags)
    curve = rep["costs"]["onnxruntime"]["target"]
    assert sorted(int(n) for n in curve["T_ms"]) == list(range(1, 9)) and min(curve["T_ms"].values()) > 0
    assert rep["costs"]["onnxruntime"]["drafters"]["self"]["T_draft_ms"] > 0
    m = rep["configs"]["onnxruntime/self/k2"]
    assert m["acceptance_rate"] == 1.0 and m["ideal_speedup"] > 0
    assert m["efficiency"] == pytest.approx(m["decode_speedup"] / m["ideal_speedup"], rel=1e-9)


def test_recommendation_needs_a_win_beyond_the_spread_and_accepted_drafts():
    from edgespec.profiling.recommend import recommend

    plain = dict(policy="ar", backend="openvino", k=None, tokens_per_s=100.0, speedup=1.0, spread=0.05)
    spec = dict(
        policy="draft",
        backend="openvino",
        draft="d",
        k=3,
        tokens_per_s=180.0,
        speedup=1.8,
        spread=0.1,
        mean_accepted=2.5,
        acceptance_rate=0.6,
    )
    lucky = dict(
        policy="ngram",
        backend="openvino",
        k=4,
        tokens_per_s=300.0,
        speedup=3.0,
        spread=0.1,
        mean_accepted=1.0,
        acceptance_rate=0.0,
    )
    rec = recommend({"p": plain, "s": spec, "n": lucky})  # n-gram never had a draft accepted: noise
    assert (rec["config"], rec["policy"], rec["draft"], rec["k"]) == ("s", "draft", "d", 3) and "1.80x" in rec["why"]
    rec = recommend({"p": plain, "s": dict(spec, tokens_per_s=105.0)})  # 5 % faster, 10 % spread
    assert rec["config"] == "p" and rec["policy"] == "autoregressive" and rec["k"] is None
    assert "spread (10%)" in rec["why"]
    assert recommend({"p": dict(plain, error="x")}) is None
