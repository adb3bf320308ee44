"""Greedy decoding on the native engine: speculative == autoregressive == transformers, token for token."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from engine_support import ARCHS, PROMPTS, engine_bundle, hf_greedy, link_tree, pipeline


@pytest.fixture(scope="module")
def bundles(tiny_bundle, tmp_path_factory):
    return {arch: engine_bundle(tiny_bundle, tmp_path_factory, arch) for arch in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_speculative_output_is_the_autoregressive_output(bundles, arch):
    pipe = pipeline(bundles[arch], "draft")
    for prompt in PROMPTS:
        plain = pipe.generate(prompt, max_new_tokens=24, policy="autoregressive", ignore_eos=True)
        assert len(plain.tokens) == 24 and plain.stats.drafted == 0
        assert plain.stats.draft_prefill_tokens == 0 and plain.stats.draft_prefill_ms == 0
        for policy in ("draft", "ngram"):
            for k in (1, 2, 4, 8, "auto"):
                spec = pipe.generate(prompt, max_new_tokens=24, policy=policy, k=k, ignore_eos=True)
                assert spec.tokens == plain.tokens, (policy, k, prompt)
                assert spec.text == plain.text


@pytest.fixture(scope="module")
def demo_int8(tmp_path_factory):
    """The demo target with its EAGLE-3 head and its drafter, exported as the demo does (INT8)."""
    from edgespec.export.api import export_bundle

    from edgespec.demo import demo_models_dir

    models = demo_models_dir()
    if not (models / "target" / "config.json").is_file():
        pytest.skip("demo weights not built")
    out = tmp_path_factory.mktemp("demo-int8") / "bundle"
    drafts = [str(models / "head-eagle3"), str(models / "draft")]
    export_bundle(str(models / "target"), str(out), drafts=drafts, draft_names=["head", "draft"], progress=False)
    return out, [json.loads(line)["prompt"] for line in (models / "prompts_heldout.jsonl").open()][:8]


@pytest.mark.parametrize("backend", ["openvino-paged", "openvino-stateful"])
def test_greedy_speculation_on_compressed_weights_is_plain_decoding_in_f32(demo_int8, backend):
    """INT8 weights (the default export) at precision f32 are exact too: by default the CPU
    quantizes a compressed matmul's activations to int8, and a token's logits then depend on how
    many tokens its call carried, so the trained demo models parted from plain decoding at near-ties
    in 2-4 of 24 generations; precision f32 turns that off."""
    from edgespec import Pipeline

    bundle, prompts = demo_int8
    for draft in ("head", "draft"):
        pipe = Pipeline.load(bundle, draft=draft, precision="f32", kv_precision="f32", backend=backend, profile=False)
        for prompt in prompts:
            plain = pipe.generate(prompt, max_new_tokens=64, policy="autoregressive", ignore_eos=True)
            for k in (2, 3, "auto"):
                spec = pipe.generate(prompt, max_new_tokens=64, policy="draft", k=k, ignore_eos=True)
                assert spec.tokens == plain.tokens, (draft, k, prompt[:60])


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("k", [1, 3, 4])
def test_target_as_its_own_drafter_accepts_everything_with_exact_bookkeeping(bundles, arch, k):
    pipe = pipeline(bundles[arch], "self")
    res = pipe.generate(PROMPTS[0], max_new_tokens=22, policy="draft", k=k, ignore_eos=True)
    st = res.stats
    n = st.generated_tokens
    assert n == 22 and st.finish_reason == "max_tokens"
    assert st.drafted == st.accepted and st.acceptance_rate == 1.0
    # prefill gives token 1; every round gives up to k + 1 (the last round drafts only what is still wanted)
    assert st.target_calls == 1 + math.ceil((n - 1) / (k + 1))
    assert st.drafted == n - st.target_calls
    full_rounds = (n - 1) // (k + 1)
    assert st.accepted_hist[k] == full_rounds
    assert sum(st.accepted_hist) == st.target_calls - 1
    assert st.mean_accepted == pytest.approx(n / st.target_calls)
    # the drafter reads the prompt and the first token once; after that every round leaves it at
    # most two tokens behind, which are a round's catch-up, not a context read
    assert st.draft_prefill_tokens == st.prompt_tokens + 1
    assert 0 < st.draft_prefill_ms <= st.draft_ms


def test_adaptive_k_keeps_exact_bookkeeping_whatever_it_chooses(bundles):
    # Which k the cost-aware controller picks depends on measured call costs (its choices are
    # unit-tested in test_draft_length.py); here: k = 0 rounds (plain steps) and drafting rounds
    # mix without breaking the output or the counts.
    pipe = pipeline(bundles["llama"], "self")
    plain = pipe.generate(PROMPTS[1], max_new_tokens=60, policy="autoregressive", ignore_eos=True)
    res = pipe.generate(PROMPTS[1], max_new_tokens=60, policy="draft", k="auto", k_max=8, ignore_eos=True)
    st = res.stats
    assert res.tokens == plain.tokens
    assert st.drafted == st.accepted and 0 <= st.final_k <= 8
    assert sum(st.accepted_hist) == st.target_calls - 1
    assert st.generated_tokens == st.target_calls + st.accepted


def test_rejections_over_many_rounds_compact_the_kv_cache_and_change_nothing(bundles):
    # the stateful backend rolls back by masking dead slots and compacting them in bulk
    pipe = pipeline(bundles["llama"], "draft", backend="openvino-stateful")
    prompt = PROMPTS[1]
    plain = pipe.generate(prompt, max_new_tokens=150, policy="autoregressive", ignore_eos=True)
    spec = pipe.generate(prompt, max_new_tokens=150, policy="draft", k=8, ignore_eos=True)
    assert spec.tokens == plain.tokens
    assert spec.stats.drafted > spec.stats.accepted  # the random drafter is mostly wrong ...
    assert spec.stats.kv_compactions > 0  # ... so dead slots pile up and get compacted


@pytest.mark.parametrize("arch", ARCHS)
def test_paged_and_stateful_backends_give_the_same_tokens_through_many_rollbacks(bundles, arch):
    # paged attention rolls back by lowering the sequence length: the next call overwrites the
    # rejected rows in place. Overwritten rows must leave no trace, over many rejections, and the
    # two backends must agree with each other token for token.
    paged = pipeline(bundles[arch], "draft", backend="openvino-paged")
    stateful = pipeline(bundles[arch], "draft", backend="openvino-stateful")
    # tiny models are far below the auto size limit: the paged ones get their fixed-width copies
    # and (f32 KV cache) send calls of 2..5 tokens to the attention as one-token subsequences
    for pipe, backend, tw, dw, sw in (
        (paged, "openvino-paged", [1, 2, 3, 4, 5], [1, 2], [2, 3, 4, 5]),
        (stateful, "openvino-stateful", [], [], []),
    ):
        assert pipe.info["target"] == {"backend": backend, "device": "CPU", "fixed_widths": tw, "split_widths": sw}
        assert pipe.info["draft"] == {
            "name": "draft",
            "kind": "same_vocab",
            "backend": backend,
            "device": "CPU",
            "fixed_widths": dw,
            "split_widths": sw,
        }
    # "openvino" (the default) picks paged attention on the CPU where the graph converts
    assert pipeline(bundles[arch], None).info["target"]["backend"] == "openvino-paged"
    assert pipeline(bundles[arch], None).info["draft"] is None
    prompt = PROMPTS[1]
    ref = stateful.generate(prompt, max_new_tokens=120, policy="autoregressive", ignore_eos=True)
    plain = paged.generate(prompt, max_new_tokens=120, policy="autoregressive", ignore_eos=True)
    assert plain.tokens == ref.tokens
    for policy, k in (("draft", 8), ("draft", 3), ("ngram", 4)):
        spec = paged.generate(prompt, max_new_tokens=120, policy=policy, k=k, ignore_eos=True)
        assert spec.tokens == ref.tokens, (policy, k)
        assert spec.stats.kv_compactions == 0  # no dead slots: nothing to compact
    assert spec.stats.target_calls < 120  # the n-gram rounds did accept some tokens
    drafty = paged.generate(prompt, max_new_tokens=120, policy="draft", k=8, ignore_eos=True)
    assert drafty.stats.drafted > drafty.stats.accepted  # the random drafter was mostly rejected
    # a second generation on the same pipeline starts clean (the cache tensors are reused)
    again = paged.generate(PROMPTS[0], max_new_tokens=40, policy="draft", k=4, ignore_eos=True)
    assert (
        again.tokens
        == stateful.generate(PROMPTS[0], max_new_tokens=40, policy="autoregressive", ignore_eos=True).tokens
    )


def test_fixed_width_copies_change_no_token_through_rollbacks_and_cache_growth(bundles):
    # With fixed_shapes the paged models run calls of 1..5 tokens (target) and 1..2 (drafter) on
    # compiles of their own that share one KV cache with the dynamic compile (prefill, longer
    # calls). Every compile must see what the others wrote, across rollbacks and the cache
    # tensors' regrowth (past 256 tokens), and give the dynamic compile's tokens.
    on = pipeline(bundles["llama"], "draft", fixed_shapes=True)
    off = pipeline(bundles["llama"], "draft", fixed_shapes=False)
    assert on.info["target"]["fixed_widths"] == [1, 2, 3, 4, 5] and on.info["draft"]["fixed_widths"] == [1, 2]
    assert off.info["target"]["fixed_widths"] == [] and off.info["draft"]["fixed_widths"] == []
    prompt = PROMPTS[1]
    ref = off.generate(prompt, max_new_tokens=300, policy="autoregressive", ignore_eos=True)
    assert len(ref.tokens) == 300
    assert on.generate(prompt, max_new_tokens=300, policy="autoregressive", ignore_eos=True).tokens == ref.tokens
    for policy, k in (("draft", 1), ("draft", 2), ("draft", 4), ("draft", 8), ("draft", "auto"), ("ngram", 3)):
        spec = on.generate(prompt, max_new_tokens=300, policy=policy, k=k, ignore_eos=True)
        assert spec.tokens == ref.tokens, (policy, k)
    assert spec.stats.target_calls < 300  # the n-gram rounds accepted tokens: calls of several widths ran


def test_short_calls_as_one_token_subsequences_change_no_token(bundles):
    # With a float KV cache on the CPU, the paged models send calls of 2..5 tokens (verify, the
    # drafter's catch-up) to the attention as one-token subsequences over the same blocks, so the
    # kernel reads the cache in place instead of repacking it. Same tokens and calls as the
    # stateful graph (one sequence per call, its own cache) at every k, through rollbacks and the
    # cache regrowth.
    from edgespec import Pipeline

    split = pipeline(bundles["llama"], "draft")
    one = Pipeline.load(
        bundles["llama"], draft="draft", precision="f32", kv_precision="f32", backend="openvino-stateful"
    )
    assert split.info["target"]["split_widths"] == [2, 3, 4, 5]
    assert one.info["target"]["split_widths"] == [] and one.info["draft"]["split_widths"] == []
    prompt = PROMPTS[2]
    for policy, k in (("draft", 1), ("draft", 2), ("draft", 4), ("draft", 8), ("ngram", 3)):
        # (no prompt lookup: how many looked-up tokens a round verifies follows each pipeline's timings)
        a = split.generate(prompt, max_new_tokens=300, policy=policy, k=k, ignore_eos=True, lookup=False)
        b = one.generate(prompt, max_new_tokens=300, policy=policy, k=k, ignore_eos=True, lookup=False)
        assert a.tokens == b.tokens, (policy, k)
        assert a.stats.target_calls == b.stats.target_calls
    one.close()


def test_an_integer_kv_cache_keeps_short_calls_one_sequence(bundles):
    # u8 keys are quantized by channel per block: one-token subsequences sharing a block would
    # race on it (lab/experiments/verify_as_sequences.py shows the wrong logits), so not there
    from edgespec import Pipeline

    with Pipeline.load(bundles["llama"], draft="draft", kv_precision="u8") as u8:
        assert u8.info["target"]["split_widths"] == [] and u8.info["draft"]["split_widths"] == []


def test_fixed_shapes_takes_none_true_or_false(bundles):
    from edgespec import Pipeline
    from edgespec._native import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="fixed_shapes must be None"):
        Pipeline.load(bundles["llama"], fixed_shapes="yes")


@pytest.mark.parametrize("arch", ARCHS)
def test_autoregressive_engine_equals_transformers_greedy(tiny_dir, tiny_tokenizer, bundles, arch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_dir = tiny_dir(arch, tokenizer=tiny_tokenizer)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(hf_dir)
    pipe = pipeline(bundles[arch], None)
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt").input_ids
        assert pipe.tokenize(prompt) == ids[0].tolist()
        hf = hf_greedy(model, ids)
        assert pipe.generate(prompt, max_new_tokens=20, policy="autoregressive").tokens == hf


@pytest.mark.parametrize("arch", ARCHS)
def test_dead_slot_rollback_gives_the_logits_of_a_clean_cache(bundles, arch):
    """The trick behind rollback without copying (runtimes/src/backends/openvino/stateful.cpp): rejected
    positions stay in the KV state, masked by attention_mask = 0, and new tokens get explicit
    position_ids. Their logits must equal a fresh prefill of the same logical sequence."""
    import openvino as ov

    xml = bundles[arch] / "target" / "openvino_model.xml"
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"})
    rng = np.random.default_rng(0)
    prefix, rejected, new = (rng.integers(3, 500, size=n).tolist() for n in (9, 4, 3))

    def run(req, ids, mask, positions):
        out = req.infer(
            {
                "input_ids": np.array([ids]),
                "attention_mask": np.array([mask]),
                "position_ids": np.array([positions]),
                "beam_idx": np.array([0], dtype=np.int32),
            }
        )
        return out["logits"][0]

    dirty = compiled.create_infer_request()
    run(dirty, prefix, [1] * 9, list(range(9)))
    run(dirty, rejected, [1] * 13, list(range(9, 13)))
    got = run(dirty, new, [1] * 9 + [0] * 4 + [1] * 3, list(range(9, 12)))
    clean = compiled.create_infer_request()
    want = run(clean, prefix + new, [1] * 12, list(range(12)))[-3:]
    assert np.abs(got - want).max() < 1e-4


def test_trimmed_drafter_ids_are_mapped_back_to_target_ids(bundles, tmp_path):
    """A `trimmed` drafter's logit i means target id map[i]. With the target's own weights and
    the identity map the drafter must agree on every token (the map is applied, not skipped),
    and a drafter whose map scrambles ids must be rejected without changing the output."""
    import json
    import os

    from edgespec import Pipeline

    base = bundles["llama"]
    manifest = json.loads((base / "edgespec.json").read_text())
    target = next(m for m in manifest["models"] if m["role"] == "target")
    manifest.pop("integrity", None)  # the files move: this bundle loads unchecked
    for m in manifest["models"]:
        link_tree(base / m["path"], tmp_path / m["name"])
        m["path"] = m["name"]
    vocab = target["vocab_size"]
    trim_dir = tmp_path / "trimmed"  # the target's files plus the id maps
    trim_dir.mkdir()
    for f in (tmp_path / "target").iterdir():
        os.link(f.resolve(), trim_dir / f.name)
    for name, ids in (("trim_same", np.arange(vocab)), ("trim_scrambled", np.roll(np.arange(vocab), 1))):
        (trim_dir / f"{name}.i32").write_bytes(ids.astype("<i4").tobytes())
        manifest["models"].append(
            dict(
                target,
                name=name,
                role="draft",
                path="trimmed",
                relation={"kind": "trimmed", "id_map": f"{name}.i32", "kept": vocab},
            )
        )
    (tmp_path / "edgespec.json").write_text(json.dumps(manifest))
    plain = pipeline(base, None).generate(PROMPTS[1], max_new_tokens=20, ignore_eos=True)
    same = Pipeline.load(tmp_path, draft="trim_same", precision="f32", kv_precision="f32")
    res = same.generate(PROMPTS[1], max_new_tokens=20, k=4, ignore_eos=True)
    assert res.tokens == plain.tokens and res.stats.drafted == res.stats.accepted > 0
    scrambled = Pipeline.load(tmp_path, draft="trim_scrambled", precision="f32", kv_precision="f32")
    res = scrambled.generate(PROMPTS[1], max_new_tokens=20, k=4, ignore_eos=True)
    assert res.tokens == plain.tokens and res.stats.accepted < res.stats.drafted


@pytest.mark.parametrize("backend", ["openvino-paged", "openvino-stateful"])
def test_windowed_drafter_slides_over_a_long_context_and_changes_no_token(bundles, backend):
    # draft_window: the drafter reads the first 4 tokens and the latest ones, re-reading the
    # latest window / 2 whenever a round would overflow it. The target reads everything, so the
    # output is the autoregressive one; the target as its own drafter then disagrees with itself
    # only where the tokens it no longer reads matter.
    pipe = pipeline(bundles["llama"], "self", backend=backend)
    prompt = "\n".join(PROMPTS) * 4
    n_prompt = len(pipe.tokenize(prompt))
    assert 200 < n_prompt < 300, n_prompt
    plain = pipe.generate(prompt, max_new_tokens=100, policy="autoregressive", ignore_eos=True)
    full = pipe.generate(prompt, max_new_tokens=100, policy="draft", k=3, ignore_eos=True, draft_window=0)
    assert full.tokens == plain.tokens and full.stats.acceptance_rate == 1.0  # reads all: agrees everywhere
    assert full.stats.draft_prefill_tokens == n_prompt + 1  # the prompt and the first token, once
    for k in (1, 3, 8, "auto"):
        win = pipe.generate(prompt, max_new_tokens=100, policy="draft", k=k, ignore_eos=True, draft_window=128)
        assert win.tokens == plain.tokens, k
        if k != "auto":  # greedy adaptive k drafts only where the measured call costs say it pays: timing
            assert win.stats.drafted > 0 and win.stats.accepted < win.stats.drafted, k  # it did read less
        assert sum(win.stats.accepted_hist) == win.stats.target_calls - 1
        if k != "auto":  # sinks + the latest 64 of the prompt, then the latest 64 again at each slide
            assert 0 < win.stats.draft_prefill_tokens < n_prompt, (k, win.stats.draft_prefill_tokens)
            assert win.stats.draft_prefill_tokens > 68, k  # 100 new tokens slide it at least once
    # the default window (1024) holds this whole context: nothing changes
    default = pipe.generate(prompt, max_new_tokens=100, policy="draft", k=3, ignore_eos=True)
    assert default.tokens == plain.tokens and default.stats.acceptance_rate == 1.0


def test_windowed_trimmed_and_sampled_drafting_stays_reproducible(bundles):
    pipe = pipeline(bundles["qwen2"], "draft")
    prompt = "\n".join(PROMPTS) * 4
    a = pipe.generate(
        prompt, max_new_tokens=80, policy="draft", k=4, temperature=0.9, seed=7, draft_window=128, ignore_eos=True
    )
    b = pipe.generate(
        prompt, max_new_tokens=80, policy="draft", k=4, temperature=0.9, seed=7, draft_window=128, ignore_eos=True
    )
    assert a.tokens == b.tokens and len(a.tokens) == 80


@pytest.mark.parametrize("window", [128, 160])
def test_windowed_drafter_proposes_what_the_model_says_on_sinks_plus_recent_tokens(
    tiny_dir, tiny_tokenizer, bundles, window
):
    # Which tokens the windowed drafter reads, checked against transformers: with the target as
    # its own drafter and k = 1, a round accepts exactly when the model's argmax on (first 4
    # tokens + the window's recent part, at positions 0, 1, 2, ...) is the target's next token.
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        tiny_dir("llama", tokenizer=tiny_tokenizer), torch_dtype=torch.float32
    ).eval()
    pipe = pipeline(bundles["llama"], "self")
    prompt = "\n".join(PROMPTS) * 2
    ids = pipe.tokenize(prompt)
    n_new = 60
    plain = pipe.generate(prompt, max_new_tokens=n_new, policy="autoregressive", ignore_eos=True).tokens
    win = pipe.generate(prompt, max_new_tokens=n_new, policy="draft", k=1, ignore_eos=True, draft_window=window)
    assert win.tokens == plain

    def next_token(view):
        with torch.no_grad():
            return int(model(torch.tensor([view])).logits[0, -1].argmax())

    start, out, accepted, hist = 0, 1, 0, [0, 0]  # out: tokens emitted (the prefill gave the first)
    while out < n_new:
        if out == n_new - 1:  # one token still wanted: a plain step, nothing drafted
            hist[0] += 1
            out += 1
            continue
        context = ids + plain[:out]
        if start > 0 or len(context) + 1 > window:  # the sliding rule of draft_window
            if start == 0 or 4 + (len(context) - start) + 1 > window:
                start = max(4, len(context) - window // 2)
            context = context[:4] + context[start:]
        ok = next_token(context) == plain[out]
        accepted += ok
        hist[ok] += 1
        out += 2 if ok else 1
    assert start > 0  # the window slid
    assert (win.stats.accepted, win.stats.accepted_hist[:2]) == (accepted, hist)
