"""EAGLE-3 heads: export (optimum-intel's EAGLE-3 export), refusals, OpenVINO GenAI's EAGLE-3 mode.

The head is a tiny random one in the published format (tests/tiny_eagle3.py) for a 4-layer tiny
Llama target (hidden 64, the shared tiny tokenizer).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from edgespec.errors import ExportError

LAYERS = [0, 2, 3]


def _export(target, head, out, **options) -> dict:
    """export_bundle of ``target`` with the EAGLE-3 ``head`` as its one drafter, named "draft"."""
    from edgespec.export.api import export_bundle

    return export_bundle(str(target), str(out), drafts=[str(head)], draft_names=["draft"], progress=False, **options)


@pytest.fixture(scope="module")
def e3_target(tiny_dir, tiny_tokenizer):
    return tiny_dir("llama", tokenizer=tiny_tokenizer, layers=4)


@pytest.fixture(scope="module")
def e3_head(e3_target, tmp_path_factory):
    from tiny_eagle3 import build_tiny_eagle3

    return build_tiny_eagle3(e3_target, tmp_path_factory.mktemp("e3head"), layer_ids=LAYERS)


@pytest.fixture(scope="module")
def e3_bundle(e3_target, e3_head, tmp_path_factory):
    out = tmp_path_factory.mktemp("e3bundle") / "bundle"
    man = _export(e3_target, e3_head, out, weights="fp32")
    return out, man


def test_export_records_the_eagle3_relation_and_validates(e3_bundle, e3_head):
    out, man = e3_bundle
    head = man["models"][1]
    rel = head["relation"]
    assert rel["kind"] == "eagle3"
    assert rel["target_layers"] == LAYERS
    assert rel["draft_vocab_size"] == 256 and head["vocab_size"] == 256
    assert rel["embedding"] == "target"
    # the id map is the checkpoint's d2t turned into target ids
    from safetensors.numpy import load_file

    d2t = load_file(str(e3_head / "model.safetensors"))["d2t"]
    ids = np.fromfile(out / "draft" / rel["id_map"], dtype="<i8")
    assert ids.tolist() == (np.arange(256) + d2t).tolist()
    # fp32: the IR gives torch's head logits on the torch target's own features
    assert head["validation"]["top1_agreement"] == 1.0
    assert head["validation"]["max_abs_logit_diff"] < 1e-3
    # the IR is optimum-intel's EAGLE-3 form, marked for OpenVINO GenAI
    import openvino as ov

    m = ov.Core().read_model(out / "draft" / "openvino_model.xml")
    names = {i.get_any_name() for i in m.inputs}
    assert {"input_ids", "hidden_states", "attention_mask", "position_ids", "beam_idx"} <= names
    assert {o.get_any_name() for o in m.outputs} >= {"logits", "d2t"}
    assert m.get_rt_info(["eagle3_mode"]).astype(str) == "True"
    assert m.get_rt_info(["hidden_layers_list"]).astype(str) == "0 2 3"
    # the target stays a standard IR
    t = ov.Core().read_model(out / "target" / "openvino_model.xml")
    assert "hidden_states" not in {i.get_any_name() for i in t.inputs}


def test_bundle_loads_in_python(e3_bundle):
    from edgespec import bundle

    b = bundle.load(e3_bundle[0])
    assert b.draft().relation == "eagle3"


def test_int8_head_exports(e3_target, e3_head, tmp_path):
    man = _export(e3_target, e3_head, tmp_path / "b", weights="int8")
    head = man["models"][1]
    assert head["weights"]["precision"] == "int8"
    assert head["validation"]["top1_agreement"] >= head["validation"]["threshold"]


def test_int4_bf16_head_of_the_other_published_name_with_its_own_embedding(e3_target, tmp_path):
    """Published heads store bf16 weights: export traces them in fp32 whatever the bundle's precision."""
    from tiny_eagle3 import build_tiny_eagle3

    from edgespec.pipeline import Pipeline

    head = build_tiny_eagle3(
        e3_target,
        tmp_path / "head",
        layer_ids=LAYERS,
        architecture="Eagle3LlamaForCausalLM",
        with_embed=True,
        dtype="bfloat16",
    )
    out = tmp_path / "b"
    man = _export(e3_target, head, out, weights="int4", draft_weights="int4")
    d = man["models"][1]
    assert d["architecture"] == "Eagle3LlamaForCausalLM" and d["relation"]["embedding"] == "own"
    assert d["weights"]["precision"] == "int4" and d["weights"]["group_size"] > 0
    assert d["validation"]["top1_agreement"] >= d["validation"]["threshold"]
    pipe = Pipeline.load(out)  # the defaults (bf16 here): runs, whatever it drafts
    res = pipe.generate("def f(x):", max_new_tokens=12, k=3, ignore_eos=True)
    assert len(res.tokens) == 12 and res.stats.drafted > 0


@pytest.mark.parametrize(
    "broken, words",
    [
        (dict(hidden=32), "hidden size 32"),
        (dict(layer_ids=(0, 2, 4)), "has 4 layers"),
        (dict(layer_ids=(0, 2)), "three distinct layers"),
        (dict(with_d2t=False), "no d2t map"),
        (dict(draft_vocab=600), "more than the target's"),
    ],
)
def test_bad_heads_are_refused_with_one_sentence(e3_target, tmp_path, broken, words):
    from tiny_eagle3 import build_tiny_eagle3

    head = build_tiny_eagle3(e3_target, tmp_path / "head", **({"layer_ids": LAYERS} | broken))
    out = tmp_path / "out"
    with pytest.raises(ExportError) as e:
        _export(e3_target, head, out, weights="fp32")
    msg = str(e.value)
    assert words in msg and msg.count(". ") == 0 and "\n" not in msg
    assert not out.exists()


def test_head_without_layer_ids_on_a_shallow_target_is_refused(e3_target, tmp_path):
    from tiny_eagle3 import build_tiny_eagle3

    head = build_tiny_eagle3(e3_target, tmp_path / "head", layer_key=None)
    with pytest.raises(ExportError, match="too few for the default"):
        _export(e3_target, head, tmp_path / "out", weights="fp32")


def test_onnx_format_is_refused(e3_target, e3_head, tmp_path):

    with pytest.raises(ExportError, match="OpenVINO IR only"):
        _export(e3_target, e3_head, tmp_path / "out", format="onnx")


def _genai(code: str, *args) -> str:
    """Runs OpenVINO GenAI in a child process (as the lab's bench does): GenAI loaded into the test
    process beside edgespec's runtime left it to crash later tests; returns the child's stdout."""
    import subprocess
    import sys

    pytest.importorskip("openvino_genai")
    prelude = (
        "import sys, openvino_genai as ov_genai\n"
        "props = {'INFERENCE_PRECISION_HINT': 'f32', 'KV_CACHE_PRECISION': 'f32'}\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", prelude + code, *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_openvino_genai_runs_the_bundle_in_eagle3_mode(e3_bundle):
    """GenAI's EAGLE-3 pipeline over the bundle's target + head: greedy output == plain decoding."""
    out, _ = e3_bundle
    _genai(
        """
out = sys.argv[1]
plain = ov_genai.LLMPipeline(out + "/target", "CPU", **props)
draft = ov_genai.draft_model(out + "/draft", "CPU", **props)
spec = ov_genai.LLMPipeline(out + "/target", "CPU", draft_model=draft, **props)
for prompt in ("def f(x):", "import os\\nclass A:\\n", "The quick brown fox"):
    cfg = ov_genai.GenerationConfig(max_new_tokens=20, do_sample=False, num_assistant_tokens=3)
    got = spec.generate([prompt], cfg)
    # it drafted with the head (a draft IR that reads hidden_states runs only in EAGLE-3 mode)
    assert got.extended_perf_metrics.get_num_draft_tokens() > 0
    cfg_plain = ov_genai.GenerationConfig(max_new_tokens=20, do_sample=False)
    assert got.texts[0] == str(plain.generate(prompt, cfg_plain)), prompt
""",
        out,
    )


# ---- the native runtime -------------------------------------------------------------------------

PROMPTS = (
    "def f(x):",
    "import os\nclass A:\n",
    "The quick brown fox",
    "for i in range(10):\n    print(",
    "# café naïve",
    "s = 'Grüße, 世界'\n",
)
BACKENDS = ("openvino-paged", "openvino-stateful")


def _pipe(bundle, backend, draft="draft"):
    from engine_support import pipeline

    return pipeline(bundle, draft, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_native_greedy_with_the_head_is_plain_decoding(e3_bundle, backend):
    out, _ = e3_bundle
    pipe = _pipe(out, backend)
    assert pipe.info["draft"]["kind"] == "eagle3" and pipe.info["draft"]["backend"] == "openvino-stateful"
    assert pipe.info["target"]["backend"] == backend
    for prompt in PROMPTS:
        plain = pipe.generate(prompt, max_new_tokens=24, policy="autoregressive", ignore_eos=True)
        for k in (1, 2, 3, 5, 8, "auto"):
            spec = pipe.generate(prompt, max_new_tokens=24, policy="draft", k=k, ignore_eos=True)
            assert spec.tokens == plain.tokens, (k, prompt)
            # adaptive k may stop drafting for a head that is never right (a random one)
            assert spec.stats.drafted > 0 or k == "auto"
            assert spec.stats.target_calls <= plain.stats.target_calls
            assert sum(spec.stats.accepted_hist) == spec.stats.target_calls - 1


@pytest.fixture(scope="module")
def oracle_bundle(tiny_tokenizer, tmp_path_factory):
    from tiny_eagle3 import build_oracle_pair

    work = tmp_path_factory.mktemp("e3oracle")
    target, head = build_oracle_pair(work, tiny_tokenizer)
    out = work / "bundle"
    _export(target, head, out, weights="fp32")
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 3, 4])
def test_a_head_that_computes_the_targets_argmax_is_accepted_in_full(oracle_bundle, backend, k):
    """Target-as-oracle bookkeeping: every round drafts k tokens (its own hidden state fed back
    for all but the first) and the target accepts all of them."""
    pipe = _pipe(oracle_bundle, backend)
    plain = pipe.generate(PROMPTS[0], max_new_tokens=22, policy="autoregressive", ignore_eos=True)
    res = pipe.generate(PROMPTS[0], max_new_tokens=22, policy="draft", k=k, ignore_eos=True, lookup=False)
    st = res.stats
    n = st.generated_tokens
    assert res.tokens == plain.tokens and n == 22
    assert st.drafted == st.accepted and st.acceptance_rate == 1.0
    assert st.target_calls == 1 + math.ceil((n - 1) / (k + 1))
    assert st.drafted == n - st.target_calls
    assert st.accepted_hist[k] == (n - 1) // (k + 1)
    # the head reads the prompt's pairs once (the prompt and the first token); later rounds feed
    # it one or two pairs (a round's catch-up)
    assert st.draft_prefill_tokens == st.prompt_tokens
    assert 0 < st.draft_prefill_ms <= st.draft_ms


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_head_reads_only_the_latest_draft_window_of_a_long_prompt(e3_bundle, oracle_bundle, backend):
    """A prompt longer than draft_window: the head reads its latest draft_window positions, not all
    of them, and still drafts for every generated position (the oracle head is accepted in full);
    the output is plain decoding's."""
    pipe = _pipe(oracle_bundle, backend)
    prompt = " ".join(PROMPTS * 3)
    n_prompt = len(pipe.tokenize(prompt))
    assert n_prompt > 160, n_prompt
    plain = pipe.generate(prompt, max_new_tokens=30, policy="autoregressive", ignore_eos=True)
    for window, reads in ((128, 128), (0, n_prompt)):
        res = pipe.generate(
            prompt, max_new_tokens=30, policy="draft", k=3, ignore_eos=True, lookup=False, draft_window=window
        )
        assert res.tokens == plain.tokens, window
        assert res.stats.draft_prefill_tokens == reads, (window, res.stats.draft_prefill_tokens)
        assert res.stats.drafted == res.stats.accepted > 0, window
    random_head = _pipe(e3_bundle[0], backend)
    plain = random_head.generate(prompt, max_new_tokens=24, policy="autoregressive", ignore_eos=True)
    for k in (2, "auto"):
        res = random_head.generate(prompt, max_new_tokens=24, policy="draft", k=k, ignore_eos=True, draft_window=128)
        assert res.tokens == plain.tokens, k


@pytest.mark.parametrize("backend", BACKENDS)
def test_rollback_through_hundreds_of_rounds(e3_bundle, oracle_bundle, backend):
    """A random head is rejected nearly every round (its cache rolls back each time, the stateful
    one compacts its dead slots); the oracle is accepted every round: both give plain decoding."""
    for bundle in (e3_bundle[0], oracle_bundle):
        pipe = _pipe(bundle, backend)
        plain = pipe.generate(PROMPTS[3], max_new_tokens=400, policy="autoregressive", ignore_eos=True)
        # (prompt lookup off: the output of a random target loops, and lookup would take most rounds)
        spec = pipe.generate(PROMPTS[3], max_new_tokens=400, policy="draft", k=3, ignore_eos=True, lookup=False)
        assert spec.tokens == plain.tokens
        assert spec.stats.target_calls >= 100
    assert spec.stats.acceptance_rate == 1.0  # the oracle, last
    # with lookup, its rounds come between the head's, and the head, fed the features of the
    # positions they committed, is still accepted in full
    spec = pipe.generate(PROMPTS[3], max_new_tokens=400, policy="draft", k=3, ignore_eos=True)
    st = spec.stats
    assert spec.tokens == plain.tokens
    assert st.lookup_drafted > 0 and st.drafted - st.lookup_drafted > 0
    assert st.accepted - st.lookup_accepted == st.drafted - st.lookup_drafted


@pytest.mark.parametrize("backend", BACKENDS)
def test_prompt_lookup_beside_the_head_changes_no_token(e3_bundle, oracle_bundle, backend):
    """lookup (the default): a round whose context ends with 3-4 tokens seen before proposes what
    followed them, without the head; the head catches up on those positions' features. The
    oracle's output cycles (its next token depends on the current one), so lookups come."""
    for bundle in (e3_bundle[0], oracle_bundle):
        pipe = _pipe(bundle, backend)
        looked = 0
        for prompt in PROMPTS:
            plain = pipe.generate(prompt, max_new_tokens=120, policy="autoregressive", ignore_eos=True)
            for k in (2, 5, "auto"):
                on = pipe.generate(prompt, max_new_tokens=120, policy="draft", k=k, ignore_eos=True)
                off = pipe.generate(prompt, max_new_tokens=120, policy="draft", k=k, ignore_eos=True, lookup=False)
                assert on.tokens == plain.tokens and off.tokens == plain.tokens, (k, prompt)
                assert off.stats.lookup_drafted == off.stats.lookup_accepted == 0
                st = on.stats
                assert 0 <= st.lookup_accepted <= st.lookup_drafted <= st.drafted and st.lookup_accepted <= st.accepted
                assert sum(st.accepted_hist) == st.target_calls - 1
                looked += st.lookup_accepted
                if bundle == oracle_bundle:  # the head's own drafts stay right after lookup rounds
                    assert st.accepted - st.lookup_accepted == st.drafted - st.lookup_drafted, (k, prompt)
    assert looked > 0  # the oracle, last


def test_round_trace_accounts_for_every_round(oracle_bundle, tmp_path, monkeypatch):
    """EDGESPEC_TRACE_ROUNDS=FILE: one JSON line per verify call, whose counts add up to the stats;
    a file that cannot be opened traces nothing and the generation runs. A pipeline of its own: what
    earlier generations measured (call costs, lookup records) decides which rounds verify lookups."""
    from edgespec import Pipeline

    pipe = Pipeline.load(oracle_bundle, draft="draft", backend="openvino-paged", precision="f32", kv_precision="f32")
    trace = tmp_path / "rounds.jsonl"
    prompt = PROMPTS[0] + pipe.generate(PROMPTS[0], max_new_tokens=30, policy="autoregressive", ignore_eos=True).text
    monkeypatch.setenv("EDGESPEC_TRACE_ROUNDS", str(trace))
    for k in (2, "auto"):
        trace.unlink(missing_ok=True)
        st = pipe.generate(prompt, max_new_tokens=80, policy="draft", k=k, ignore_eos=True).stats
        rows = [json.loads(line) for line in trace.read_text().splitlines()]
        assert len(rows) == st.target_calls - 1
        assert sum(r["m"] for r in rows) == st.drafted and sum(r["acc"] for r in rows) == st.accepted
        look = [r for r in rows if r["src"] == "lookup"]
        # Looked-up tokens: lookup rounds', and the tails verified after a drafted chain.
        tails = sum(r["tail"] for r in rows)
        tails_acc = sum(max(0, r["acc"] - (r["m"] - r["tail"])) for r in rows if r["src"] == "draft")
        assert sum(r["m"] for r in look) + tails == st.lookup_drafted
        assert sum(r["acc"] for r in look) + tails_acc == st.lookup_accepted
        if k == 2:  # the oracle's 2-token chains are always accepted, so its repeats are worth a tail
            assert tails > 0
        # (Adaptive k may verify no lookup here: the oracle's chains of k_max sure tokens, after
        # rounds of 9 tokens a call, leave no tail room and outrun a 6-token lookup round.)
        for r in rows:
            assert r["acc"] <= r["m"] and (r["src"] == "plain") == (r["m"] == 0), r
            assert r["m"] - r["tail"] <= (r["looked_up"] if r["src"] == "lookup" else r["drafted"]), r
            assert r["tail"] == 0 or (r["src"] == "draft" and r["tail"] < r["m"]), r
            assert r["verify_ms"] > 0
    monkeypatch.setenv("EDGESPEC_TRACE_ROUNDS", str(tmp_path / "no" / "such" / "dir" / "f.jsonl"))
    assert pipe.generate(PROMPTS[0], max_new_tokens=8, policy="draft").stats.generated_tokens == 8
    pipe.close()


def test_speculative_sampling_with_prompt_lookup_keeps_the_target_distribution(oracle_bundle):
    """Lookup rounds propose deterministically (q one-hot) between the head's sampled rounds: the
    token at a later position must be distributed as under plain sampling (chi-square). The prompt
    holds the oracle's greedy cycle, so lookups come from the first round on; sampling leaves it
    now and then, so some are rejected."""
    from collections import Counter

    pipe = _pipe(oracle_bundle, "openvino-paged")
    prompt = PROMPTS[0] + pipe.generate(PROMPTS[0], max_new_tokens=30, policy="autoregressive", ignore_eos=True).text
    n, pos = 300, 6

    def at(policy):
        res = [
            pipe.generate(prompt, max_new_tokens=pos + 1, policy=policy, k=2, temperature=0.15, seed=s, ignore_eos=True)
            for s in range(n)
        ]
        return Counter(r.tokens[pos] for r in res), [r.stats for r in res]

    (a, _), (b, stats) = at("autoregressive"), at("draft")
    looked, taken = sum(s.lookup_drafted for s in stats), sum(s.lookup_accepted for s in stats)
    assert looked >= n and 0 < taken < looked, (looked, taken)  # lookups accepted and rejected
    pval, rows = _same_distribution(a, b, n)
    assert len(rows[0]) >= 4, rows  # a few tokens likely enough to test
    assert pval > 1e-3, f"prompt lookup changed the sampled distribution (p={pval:.2g}): {rows}"


def _same_distribution(a, b, n: int) -> tuple[float, list]:
    """Chi-square p-value that two samples of n tokens (Counters) come from one distribution, over
    the tokens seen 10+ times (the rest pooled), and the contingency rows."""
    from scipy.stats import chi2_contingency

    common = [t for t in set(a) | set(b) if a[t] + b[t] >= 10]
    rows = [[c[t] for t in common] + [n - sum(c[t] for t in common)] for c in (a, b)]
    if rows[0][-1] + rows[1][-1] == 0:
        rows = [r[:-1] for r in rows]
    return chi2_contingency(rows)[1], rows


def test_speculative_sampling_with_the_head_keeps_the_target_distribution(e3_bundle):
    """q is the head's distribution over its 256 ids (zero on the target's other 256): the first
    token through accept/resample must be distributed as under plain sampling (chi-square)."""
    from collections import Counter

    pipe = _pipe(e3_bundle[0], "openvino-paged")
    prompt, n = "x = 1\ny = 2\nz = 3\n", 300

    def second(policy):
        res = [
            pipe.generate(prompt, max_new_tokens=3, policy=policy, k=2, temperature=1.5, seed=s, ignore_eos=True)
            for s in range(n)
        ]
        return Counter(r.tokens[1] for r in res), sum(r.stats.drafted for r in res), sum(r.stats.accepted for r in res)

    (a, _, _), (b, drafted, accepted) = second("autoregressive"), second("draft")
    assert drafted >= n and 0 < accepted < drafted, (drafted, accepted)  # both paths taken
    pval, rows = _same_distribution(a, b, n)
    assert pval > 1e-3, f"EAGLE-3 speculative sampling changed the distribution (p={pval:.2g}): {rows}"


def test_sampling_with_the_head_is_reproducible_and_reports_stats(e3_bundle):
    pipe = _pipe(e3_bundle[0], "openvino-stateful")
    a = pipe.generate(PROMPTS[1], max_new_tokens=40, policy="draft", k="auto", temperature=0.8, seed=5)
    b = pipe.generate(PROMPTS[1], max_new_tokens=40, policy="draft", k="auto", temperature=0.8, seed=5)
    assert a.tokens == b.tokens
    st = a.stats
    assert st.draft_ms > 0 and st.verify_ms > 0 and st.target_calls >= 1
    assert sum(st.accepted_hist) == st.target_calls - 1


def test_openvino_genai_accepts_the_oracle_heads_drafts_in_full(oracle_bundle):
    """GenAI's EAGLE-3 reads the same layer outputs and pairs features with tokens as edgespec:
    the oracle head is right for it too."""
    text = _genai(
        """
import json
b, prompt = sys.argv[1], sys.argv[2]
draft = ov_genai.draft_model(b + "/draft", "CPU", **props)
spec = ov_genai.LLMPipeline(b + "/target", "CPU", draft_model=draft, **props)
cfg = ov_genai.GenerationConfig(max_new_tokens=22, do_sample=False, num_assistant_tokens=3, ignore_eos=True)
res = spec.generate([prompt], cfg)
pm = res.extended_perf_metrics
assert pm.get_num_draft_tokens() > 0 and pm.get_num_accepted_tokens() == pm.get_num_draft_tokens()
print(json.dumps(res.texts[0]))
""",
        oracle_bundle,
        PROMPTS[0],
    )
    ours = _pipe(oracle_bundle, "openvino-paged").generate(
        PROMPTS[0], max_new_tokens=22, policy="draft", k=3, ignore_eos=True
    )
    assert json.loads(text.strip().splitlines()[-1]) == ours.text


def test_cli_refuses_a_bad_head_with_one_sentence(e3_target, tmp_path):
    import subprocess
    import sys

    from tiny_eagle3 import build_tiny_eagle3

    head = build_tiny_eagle3(e3_target, tmp_path / "head", layer_ids=(0, 2, 9))
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgespec",
            "export",
            str(e3_target),
            "--draft",
            str(head),
            "-o",
            str(out),
            "--weights",
            "fp32",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: ") and "reads target layers [0, 2, 9]" in last and "has 4 layers" in last
    assert not out.exists()


def test_runtime_refuses_a_broken_eagle3_bundle(e3_bundle, tmp_path):
    import shutil

    from edgespec import Pipeline
    from edgespec.errors import BundleError, EdgespecError

    b = tmp_path / "b"
    shutil.copytree(e3_bundle[0], b)
    id_map = b / "draft" / "eagle3_id_map.i64"
    id_map.write_bytes(id_map.read_bytes()[:-8])
    # the integrity table (sizes) or the map check itself: one sentence naming the file
    with pytest.raises(BundleError, match="eagle3_id_map.i64.*re-export"):
        Pipeline.load(b, precision="f32")
    manifest = json.loads((b / "edgespec.json").read_text())
    manifest["models"][1]["relation"]["target_layers"] = [0, 2]
    (b / "edgespec.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgespecError, match="target_layers"):
        Pipeline.load(b, precision="f32")


def test_bench_runs_genai_tree_search_beside_the_chains(e3_bundle, tmp_path):
    """lab/bench.py with a head: GenAI's EAGLE-3 tree search runs as its own configuration (greedy:
    the same text as plain decoding), and the report names the best of each runtime; a malformed
    --genai-trees is one sentence."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("openvino_genai")
    bench = Path(__file__).resolve().parent.parent / "lab" / "bench.py"
    out = tmp_path / "bench.json"
    base = [sys.executable, str(bench), str(e3_bundle[0]), "--prompt-set", "short", "--prompts", "1"]
    base += ["--max-new-tokens", "8", "--repeats", "1", "--k", "2", "--precision", "f32", "--kv-precision", "f32"]
    cmd = base + ["--configs", "es_ar,es_spec_k2,genai_ar,genai_spec_k2,genai_tree_*,genai_spec_conf"]
    r = subprocess.run(cmd + ["--genai-trees", "2x2:4", "--json", str(out), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(out.read_text())["sets"]["short"]
    # genai_spec_conf is dropped for a head (GenAI refuses a confidence threshold in EAGLE-3 mode)
    assert set(s["results"]) == {"es_ar", "es_spec_k2", "genai_ar", "genai_spec_k2", "genai_tree_b2d2t4"}
    tree = s["results"]["genai_tree_b2d2t4"]
    assert "error" not in tree and tree["agree"] == "1/1" and tree["policy"] == "tree"
    assert tree["tree"] == {"branching_factor": 2, "tree_depth": 2, "num_assistant_tokens": 4}
    assert s["comparisons"]["best"].startswith("es_spec_k2 / genai_")
    # the same pair's per-generation ratio, each edgespec generation against GenAI's beside it
    assert re.search(r"= \d+\.\d{3}× \(paired \d+\.\d{3}×\)$", s["comparisons"]["best"]), s["comparisons"]["best"]
    r = subprocess.run(cmd + ["--genai-trees", "2x0:4"], capture_output=True, text=True)
    assert r.returncode == 2 and "--genai-trees must be" in r.stderr and "Traceback" not in r.stderr
