"""Text on the native engine: stop strings, EOS, max tokens, streaming deltas, UTF-8 safety,
sampling distribution, cancellation."""

from __future__ import annotations

import ctypes
import json
import os
from collections import Counter

import pytest
from engine_support import (
    ARCHS,
    PROMPTS,
    assert_streams_match,
    engine_bundle,
    link_tree,
    pipeline,
    without_target_byte_table,
)


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return engine_bundle(tiny_bundle, tmp_path_factory, "llama")


@pytest.fixture(scope="module")
def pipe(bundle):
    return pipeline(bundle, "draft")


def test_stop_string_cuts_the_text_before_it_and_never_streams_it(pipe):
    full = pipe.generate(PROMPTS[1], max_new_tokens=40, ignore_eos=True)
    stop = full.text[15:19]
    cut = full.text.index(stop)
    with pipe.stream(PROMPTS[1], max_new_tokens=40, ignore_eos=True, stop=[stop, "<never-appears>"]) as st:
        chunks = list(st)
    res = st.result
    assert res.finish_reason == "stop_string"
    assert res.text == full.text[:cut]
    assert "".join(chunks) == res.text
    assert res.tokens == full.tokens[: len(res.tokens)]


def test_eos_ends_the_generation_and_is_not_a_token(bundle, pipe, tmp_path):
    full = pipe.generate(PROMPTS[0], max_new_tokens=30, ignore_eos=True)
    eos = full.tokens[6]
    first = full.tokens.index(eos)
    # The same models under a manifest that declares that token the EOS.
    manifest = json.loads((bundle / "edgespec.json").read_text())
    manifest.pop("integrity", None)  # the files move: this bundle loads unchecked
    for m in manifest["models"]:
        m["special_tokens"]["eos"] = [eos]
        link_tree(bundle / m["path"], tmp_path / m["name"])
        m["path"] = m["name"]
    (tmp_path / "edgespec.json").write_text(json.dumps(manifest))
    from edgespec import Pipeline

    p = Pipeline.load(tmp_path, draft="draft", precision="f32", kv_precision="f32")
    for policy in ("autoregressive", "draft", "ngram"):
        res = p.generate(PROMPTS[0], max_new_tokens=30, policy=policy, k=4)
        assert res.finish_reason == "eos" and res.tokens == full.tokens[:first], policy
    assert p.generate(PROMPTS[0], max_new_tokens=30, ignore_eos=True).tokens == full.tokens


def test_max_new_tokens_is_exact_for_every_policy_and_k(pipe):
    for policy in ("autoregressive", "draft", "ngram"):
        for n in (1, 2, 7):
            res = pipe.generate(PROMPTS[2], max_new_tokens=n, policy=policy, k=8, ignore_eos=True)
            assert len(res.tokens) == n and res.finish_reason == "max_tokens"


def test_streamed_deltas_concatenate_to_the_text_and_never_split_a_character(pipe):
    """Sampling from a random model over a non-ASCII prompt emits lone UTF-8 bytes often; the
    deltas must still be whole characters and add up to the final text."""
    split_seen = 0
    for seed in range(12):
        with pipe.stream(PROMPTS[2], max_new_tokens=30, temperature=1.0, seed=seed, ignore_eos=True, k=3) as st:
            chunks = list(st)
        res = st.result
        assert "".join(chunks) == res.text
        assert res.text == pipe.detokenize(res.tokens)
        for c in chunks:
            c.encode("utf-8", "strict")  # a str from valid UTF-8, never a partial sequence
        # tokens that are a lone piece of a multi-byte character
        split_seen += sum("\ufffd" in pipe.detokenize([t]) for t in res.tokens)
    assert split_seen > 0, "no multi-byte character was split across tokens; the test proves nothing"


@pytest.mark.parametrize("arch", ARCHS)
def test_text_spelled_from_the_byte_table_is_the_detokenizers_chunk_for_chunk(tiny_bundle, tmp_path_factory, arch):
    """Streamed text comes from the target's token byte table (a detokenizer call per round is the
    loop's largest cost outside the models on small targets); it must be exactly what the
    detokenizer gives, chunk for chunk, partial characters and stop strings included."""
    bundle = engine_bundle(tiny_bundle, tmp_path_factory, arch)
    slow = without_target_byte_table(bundle, tmp_path_factory.mktemp(f"detok-{arch}") / "bundle")
    assert_streams_match(pipeline(bundle, None), pipeline(slow, None), PROMPTS)


def test_same_seed_same_sample_and_greedy_ignores_the_seed(pipe):
    """With adaptive k (the default) the schedule must not come from timings or from what other
    generations taught the pipeline: greedy runs in between change the pipeline's learnt costs."""
    cfg = dict(max_new_tokens=40, temperature=0.9, top_k=40, top_p=0.95, seed=7, ignore_eos=True)
    for policy in ("draft", "ngram"):
        a = pipe.generate(PROMPTS[0], policy=policy, **cfg)
        pipe.generate(PROMPTS[1], max_new_tokens=24, policy=policy, k=1)
        pipe.generate(PROMPTS[2], max_new_tokens=24, policy=policy)
        b = pipe.generate(PROMPTS[0], policy=policy, **cfg)
        assert a.tokens == b.tokens, policy
        assert pipe.generate(PROMPTS[0], policy=policy, **{**cfg, "seed": 8}).tokens != a.tokens, policy
    assert (
        pipe.generate(PROMPTS[0], max_new_tokens=10, seed=1).tokens
        == pipe.generate(PROMPTS[0], max_new_tokens=10, seed=2).tokens
    )


@pytest.mark.parametrize("policy", ["draft", "ngram"])
def test_speculative_sampling_keeps_the_target_distribution(pipe, policy):
    """The 2nd token is the first one that passes through accept/resample (the 1st comes from
    prefill); its distribution must match plain sampling's (two-sample chi-square)."""
    from scipy.stats import chi2_contingency

    # A prompt holding most of the vocabulary: whatever the 1st token is, it occurred before,
    # so the n-gram policy proposes what followed it.
    prompt = pipe.detokenize(list(range(3, 300)))
    assert len(pipe.tokenize(prompt)) < pipe.context_length - 8
    n = 300

    def second_tokens(pol):
        results = [
            pipe.generate(prompt, max_new_tokens=3, policy=pol, k=1, temperature=1.0, seed=s, ignore_eos=True)
            for s in range(n)
        ]
        return Counter(r.tokens[1] for r in results), sum(r.stats.drafted for r in results)

    (plain, _), (spec, drafted) = second_tokens("autoregressive"), second_tokens(policy)
    assert drafted > n // 10, "too few rounds drafted anything; the test proves nothing"
    common = [t for t in set(plain) | set(spec) if plain[t] + spec[t] >= 10]
    rows = [
        [plain[t] for t in common] + [n - sum(plain[t] for t in common)],
        [spec[t] for t in common] + [n - sum(spec[t] for t in common)],
    ]
    if rows[0][-1] + rows[1][-1] == 0:
        rows = [r[:-1] for r in rows]
    _, pval, _, _ = chi2_contingency(rows)
    assert pval > 1e-3, f"speculative sampling changed the distribution (p={pval:.2g}): {rows}"


def test_generate_with_a_streamer_gives_the_chunks_stream_gives_and_can_stop_or_cancel(pipe):
    """generate(streamer=f) runs on the calling thread: the same chunks as stream(); a true
    return stops (finish reason "callback"); an exception, Ctrl-C included, cancels the native
    call and propagates; the pipeline stays usable."""
    import signal

    cfg = dict(max_new_tokens=30, k=3, temperature=1.0, seed=3, ignore_eos=True)
    chunks: list[str] = []
    res = pipe.generate(PROMPTS[2], streamer=chunks.append, **cfg)
    with pipe.stream(PROMPTS[2], **cfg) as st:
        assert list(st) == chunks
    assert "".join(chunks) == res.text == st.result.text and res.tokens == st.result.tokens
    seen: list[str] = []
    stopped = pipe.generate(PROMPTS[2], streamer=lambda c: seen.append(c) or len(seen) == 2, **cfg)
    assert stopped.finish_reason == "callback" and len(seen) == 2 and stopped.text == "".join(seen)
    assert 0 < len(stopped.tokens) < 30

    def fail(_chunk):
        raise ValueError("streamer failed")

    with pytest.raises(ValueError, match="streamer failed"):
        pipe.generate(PROMPTS[0], streamer=fail, **cfg)
    # Python's own Ctrl-C handler, also where the suite runs as a background job (which starts
    # with SIGINT ignored, and then the signal does nothing, rightly)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):  # the handler runs inside the callback, on this thread
            pipe.generate(PROMPTS[0], streamer=lambda _c: os.kill(os.getpid(), signal.SIGINT), **cfg)
    finally:
        signal.signal(signal.SIGINT, old)
    assert pipe.generate(PROMPTS[2], **cfg).tokens == res.tokens


def test_closing_a_stream_early_cancels_and_the_pipeline_stays_usable(pipe):
    st = pipe.stream(PROMPTS[0], max_new_tokens=400, ignore_eos=True, policy="autoregressive")
    first = next(iter(st))
    assert isinstance(first, str)
    st.close()
    assert st.result is None  # cancelled: no result
    assert len(pipe.generate(PROMPTS[0], max_new_tokens=5, ignore_eos=True).tokens) == 5


def test_a_c_callback_returning_1_stops_normally_and_2_cancels(pipe):
    from edgespec import _native

    lib = _native.lib()
    calls = []

    def make(answer):
        def cb(ptr, size, user):
            calls.append(ctypes.string_at(ptr, size))
            return answer

        return _native.STREAM_CALLBACK(cb)

    cfg = lib.es_generation_default_config()
    cfg.max_new_tokens = 50
    cfg.ignore_eos = 1
    out = ctypes.c_void_p()
    stop_cb = make(1)
    assert lib.es_generate(pipe._h, PROMPTS[0].encode(), ctypes.byref(cfg), stop_cb, None, ctypes.byref(out)) == 0
    st = _native.Stats()
    lib.es_result_stats(out, ctypes.byref(st))
    assert _native.FINISH_REASONS[st.finish_reason] == "callback" and st.generated_tokens < 50
    lib.es_result_free(out)
    cancel_cb = make(2)
    out = ctypes.c_void_p()
    assert lib.es_generate(pipe._h, PROMPTS[0].encode(), ctypes.byref(cfg), cancel_cb, None, ctypes.byref(out)) == 7
    assert out.value is None and "cancelled" in _native.last_error()


def _nul_token(pipe) -> int:
    """A target token whose text holds U+0000 (byte-level BPE has one for byte 0)."""
    for t in range(4096):
        try:
            if "\x00" in pipe.detokenize([t]):
                return t
        except Exception:  # noqa: BLE001 - past the vocabulary
            break
    pytest.skip("the tiny tokenizer has no token for U+0000")


def test_a_nul_in_the_text_survives_the_c_abi(pipe):
    """Text crosses the C ABI by length, not as a C string: a U+0000 the model generates (or a
    detokenized id holds) must not cut the rest of the text off."""
    nul = _nul_token(pipe)
    a, b = pipe.tokenize("def")[0], pipe.tokenize(" fib")[0]
    text = pipe.detokenize([a, nul, b])
    assert text == pipe.detokenize([a]) + pipe.detokenize([nul]) + pipe.detokenize([b])
    assert "\x00" in text and text.index("\x00") < len(text) - 1
    # generation: sample hot from the random tiny model until the NUL token comes out
    for seed in range(200):
        with pipe.stream(PROMPTS[0], max_new_tokens=40, temperature=50.0, seed=seed, ignore_eos=True, k=3) as st:
            chunks = list(st)
        res = st.result
        if nul in res.tokens[:-1]:
            assert "\x00" in res.text
            assert res.text == pipe.detokenize(res.tokens) == "".join(chunks)
            lib = __import__("edgespec")._native.lib()
            assert lib.es_result_text_len(None) == 0
            return
    pytest.fail("no generation sampled the NUL token; the test proves nothing")
