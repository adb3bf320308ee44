"""Cross-vocabulary drafting (OmniDraft) through the exporter and the native engine.

Two kinds of models:
  * random tiny models (tests/tiny.py): the drafter is mostly wrong, so these test that the
    output stays the target's own (greedy, and in distribution when sampling);
  * models that memorized one text (TEXT, with non-ASCII and an emoji): the target then writes
    TEXT, and a drafter that memorized it too, in ANY vocabulary, drafts exactly what the target
    writes. Every proposal is then accepted if and only if the translation between the
    vocabularies (byte tables, re-tokenization, dummy prefixes, characters split across tokens)
    is right; the bookkeeping is exact, as for the target drafting for itself.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections import Counter
from pathlib import Path

import pytest
from engine_support import engine_bundle, engine_ready, link_tree, pipeline
from tiny import TEXT, memorize

PROMPT = "def fib(n):"  # a prefix of TEXT whose tokens are a prefix of TEXT's in every vocabulary here
OTHER_PROMPTS = ("import os\nclass Walker:\n    def __init__(self, root):", "s = 'Grüße, 世界'  # café 🙂 — naïve")


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not engine_ready(), reason="native engine or exporter not built")]


def _relink(base: Path, out: Path, models: list[dict]) -> Path:
    """A bundle at ``out`` over ``base``'s model directories (hard links) with the given manifest models."""
    out.mkdir(parents=True, exist_ok=True)
    for m in models:
        link = out / m["path"]
        if not link.exists():
            link_tree(base / m["path"], link)
    manifest = json.loads((base / "edgespec.json").read_text())
    manifest["models"] = models
    (out / "edgespec.json").write_text(json.dumps(manifest, indent=1))
    return out


def _as_drafter(m: dict, name: str) -> dict:
    return dict(m, name=name, role="draft", relation={"kind": "cross_vocab"})


@pytest.fixture(scope="module")
def tokenizers():
    """The vocabularies: the target's byte-level BPE (512), another byte-level BPE (384, other
    merges) and a Llama-2-style metaspace BPE with byte fallback (500)."""
    import demo_tokenizers  # tools/, on sys.path from conftest.py
    from tiny import corpus_lines, train_tokenizer

    return {
        "bl": train_tokenizer(),
        "bl384": train_tokenizer(vocab_size=384),
        "ms": demo_tokenizers.train_metaspace(corpus_lines(), 500),
    }


@contextlib.contextmanager
def one_torch_thread():
    """Tiny models train and export as fast on one thread, and far faster on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bundles(tokenizers, tmp_path_factory):
    """One export: the memorizing target ("bl", 64x2) with drafters that memorized TEXT too ("xv":
    byte-level 384, "ms": metaspace, both 32x1; "ms64": metaspace 64x2) and random ones ("xvr",
    "msr"). Derived by manifest: "self" (the target as a cross_vocab drafter of itself) in
    bundle "main", and bundle "ms_target" (the metaspace ms64 as the target, "bl" drafting)."""
    from edgespec.export.api import export_bundle
    from tiny import build_tiny

    work = tmp_path_factory.mktemp("xvocab")
    tok = tokenizers
    small = dict(hidden=32, layers=1)
    with one_torch_thread():
        target = memorize(build_tiny("llama", work / "t0", tokenizer=tok["bl"]), work / "target")
        drafts = {
            "xv": memorize(build_tiny("qwen2", work / "xv0", tokenizer=tok["bl384"], **small), work / "xv"),
            "ms": memorize(build_tiny("llama", work / "ms0", tokenizer=tok["ms"], seed=5, **small), work / "ms"),
            "ms64": memorize(build_tiny("llama", work / "ms640", tokenizer=tok["ms"], seed=6), work / "ms64"),
            "xvr": build_tiny("qwen2", work / "xvr", tokenizer=tok["bl384"], seed=7, **small),
            "msr": build_tiny("llama", work / "msr", tokenizer=tok["ms"], seed=8, **small),
        }
        base = work / "exported"
        man = export_bundle(
            target, base, list(drafts.values()), weights="fp32", draft_names=list(drafts), progress=False
        )
    models = {m["name"]: m for m in man["models"]}
    assert all(models[n]["relation"] == {"kind": "cross_vocab"} for n in drafts)
    main = _relink(base, work / "main", list(models.values()) + [_as_drafter(models["target"], "self")])
    ms64 = {key: v for key, v in models["ms64"].items() if key != "relation"} | {"role": "target"}
    ms_target = _relink(base, work / "ms_target", [ms64, _as_drafter(models["target"], "bl")])
    return {"main": main, "ms_target": ms_target, "base": base}


def _bookkeeping(st, k: int) -> None:
    """Every round proposed min(k, tokens still wanted - 1) and all of it was accepted."""
    n = st.generated_tokens
    assert st.drafted == st.accepted, (st.drafted, st.accepted, st.accepted_hist)
    assert st.target_calls == 1 + math.ceil((n - 1) / (k + 1)), (st.target_calls, st.accepted_hist)
    # the drafter read the prompt's text once (in its own tokens), inside its drafting time
    assert st.draft_prefill_tokens > 0 and 0 < st.draft_prefill_ms <= st.draft_ms


# ---- byte tables (Python, against the HF tokenizers) -----------------------------------------


def _spells(tok, pieces, prefix, texts):
    for s in texts:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        assert b"".join(pieces[i] for i in ids) in (s.encode(), prefix + s.encode()), s


def test_byte_tables_spell_every_text_as_the_hf_tokenizer_does(tokenizers):
    from edgespec.export.token_bytes import dummy_prefix, token_table
    from tiny import corpus_lines

    from edgespec.bundle import TOKEN_BYTE, TOKEN_SPECIAL, TOKEN_TEXT

    texts = corpus_lines(20_000)[:400] + [TEXT, " x", "  two", "\n\n", "🙂", "a\u00a0b", "tab\there"]
    for name, tok in tokenizers.items():
        kinds, pieces = token_table(tok, len(tok) + 3)  # an LM head padded past the tokenizer
        assert kinds[-3:] == [TOKEN_SPECIAL] * 3 and pieces[-3:] == [b""] * 3
        for i in tok.all_special_ids:
            assert kinds[i] == TOKEN_SPECIAL and pieces[i] == b""
        prefix = dummy_prefix(tok, pieces)
        assert prefix == (b" " if name == "ms" else b"")  # Llama-2's "▁" in front of a whole text
        _spells(tok, pieces, prefix, texts)
        # any stray byte can be spelled with a one-byte token (byte-level alphabet / <0xNN>)
        single = {p for k, p in zip(kinds, pieces) if k != TOKEN_SPECIAL and len(p) == 1}
        assert len(single) == 256, name
        for i, (k, p) in enumerate(zip(kinds, pieces)):
            if k == TOKEN_BYTE:
                assert name == "ms" and len(p) == 1 and tok.convert_ids_to_tokens(i) == f"<0x{p[0]:02X}>"
            elif k == TOKEN_TEXT and name != "ms":
                try:  # a whole-character token decodes as the HF decoder decodes it
                    assert tok.decode([i]) == p.decode("utf-8"), i
                except UnicodeDecodeError:
                    pass  # a piece of a multi-byte character
    ms = tokenizers["ms"]
    kinds, pieces = token_table(ms, len(ms))
    assert pieces[ms.convert_tokens_to_ids("▁the")] == b" the"


def test_byte_tables_of_a_metaspace_pre_tokenizer_and_the_refusal_of_wordpiece():
    """The newer HF Llama/Mistral layout (Metaspace pre-tokenizer and decoder) maps like the
    normalizer layout; a WordPiece tokenizer cannot spell text byte for byte and is refused."""
    from edgespec.export.token_bytes import dummy_prefix, token_table
    from tiny import corpus_lines
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from edgespec.errors import ExportError

    t = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    t.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=["▁", "\n"], show_progress=False
    )
    t.train_from_iterator(corpus_lines(50_000), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    kinds, pieces = token_table(tok, len(tok))
    prefix = dummy_prefix(tok, pieces)
    assert prefix == b" "
    _spells(tok, pieces, prefix, ["def f(x):\n    return x", "a  b", "x = 'y'"])

    w = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    w.pre_tokenizer = pre_tokenizers.Whitespace()
    w.decoder = decoders.WordPiece()
    w.train_from_iterator(
        corpus_lines(20_000), trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]"], show_progress=False)
    )
    with pytest.raises(ExportError, match="cannot be mapped to bytes"):
        token_table(PreTrainedTokenizerFast(tokenizer_object=w, unk_token="[UNK]"), 200)


def test_the_bundle_holds_the_tables_the_runtime_reads(bundles, tokenizers):
    from edgespec.export.token_bytes import token_table

    from edgespec import bundle

    b = bundle.load(bundles["main"])
    pairs = ((b.target, tokenizers["bl"]), (b.draft("xv"), tokenizers["bl384"]), (b.draft("ms"), tokenizers["ms"]))
    for m, tok in pairs:
        assert m.raw["files"]["token_bytes"] == bundle.TOKEN_BYTES
        kinds, pieces = bundle.read_token_bytes(m.file("token_bytes"))
        assert (kinds, pieces) == token_table(tok, m.raw["vocab_size"])


# ---- greedy: lossless, and exact when the drafter knows the text -------------------------------


@pytest.mark.parametrize("draft", ["self", "xv", "ms", "xvr", "msr"])
def test_greedy_cross_vocab_output_is_the_autoregressive_output(bundles, draft):
    plain, pipe = pipeline(bundles["main"], None), pipeline(bundles["main"], draft)
    assert pipe.draft_name == draft
    drafted = 0
    for prompt in (PROMPT,) + OTHER_PROMPTS:
        ref = plain.generate(prompt, max_new_tokens=32, policy="autoregressive", ignore_eos=True)
        for k in (1, 3, "auto"):
            res = pipe.generate(prompt, max_new_tokens=32, k=k, ignore_eos=True)
            assert res.tokens == ref.tokens, (draft, prompt, k)
            assert res.text == ref.text
            drafted += res.stats.drafted
    assert drafted > 0


@pytest.mark.parametrize("k", [1, 2, 4, 8])
@pytest.mark.parametrize("draft", ["self", "xv", "ms"])
def test_a_drafter_that_knows_the_text_gets_every_proposal_accepted(bundles, draft, k):
    """The target writes TEXT; "self" (its own weights and tokenizer, treated as another
    vocabulary), "xv" (byte-level BPE with other merges) and "ms" (metaspace with byte fallback)
    draft TEXT too. Each round proposes min(k, room - 1) target tokens -- the drafter drafts until
    its text gives k + 1 target tokens and the last one is held back, as it may merge with what
    follows -- and the target accepts all of them, through the emoji's split UTF-8 bytes, the
    dummy prefix and the indentation runs: target_calls is the least possible."""
    ref = pipeline(bundles["main"], None).generate(PROMPT, max_new_tokens=60, policy="autoregressive", ignore_eos=True)
    assert TEXT.startswith(PROMPT + ref.text)  # the target memorized TEXT
    res = pipeline(bundles["main"], draft).generate(PROMPT, max_new_tokens=60, k=k, ignore_eos=True)
    assert res.tokens == ref.tokens
    _bookkeeping(res.stats, k)


def test_a_metaspace_target_with_a_byte_level_drafter_translates_too(bundles):
    """The other direction: a Llama-2-style target (dummy prefix in its bytes, ids from its
    metaspace tokenizer) and the byte-level model drafting for it."""
    plain = pipeline(bundles["ms_target"], None)
    ref = plain.generate(PROMPT, max_new_tokens=60, policy="autoregressive", ignore_eos=True)
    assert TEXT.startswith(PROMPT + ref.text)
    for k in (2, 5):
        res = pipeline(bundles["ms_target"], "bl").generate(PROMPT, max_new_tokens=60, k=k, ignore_eos=True)
        assert res.tokens == ref.tokens
        _bookkeeping(res.stats, k)


def test_a_metaspace_targets_text_from_its_byte_table_is_the_detokenizers(bundles, tmp_path):
    """The metaspace target (dummy prefix, byte-fallback tokens for every non-ASCII byte) streams
    its text from its byte table exactly as its detokenizer renders it."""
    from engine_support import assert_streams_match, without_target_byte_table

    slow = without_target_byte_table(bundles["ms_target"], tmp_path / "detok")
    assert_streams_match(
        pipeline(bundles["ms_target"], None),
        pipeline(slow, None),
        (PROMPT, *OTHER_PROMPTS, "s = 'Grüße, 世界 🙂'  # café"),
    )


def test_streaming_large_rounds_never_splits_a_character(bundles):
    """k = 8 commits 9 tokens a round; the emoji is 4 one-byte tokens of the target, so a round
    can end inside it: the stream must hold the partial character back, not show it."""
    pipe = pipeline(bundles["main"], "self")
    with pipe.stream(PROMPT, max_new_tokens=60, k=8, ignore_eos=True) as st:
        chunks = list(st)  # a partial character would fail to decode here
    assert "".join(chunks) == st.result.text and "🙂" in st.result.text


def test_the_translation_cache_serves_the_steady_state_with_the_same_drafts(bundles):
    """The same generation again is served from the translation cache alone, and drafts exactly
    what fresh translations drafted (same drafted and accepted counts, same tokens): a cached
    translation is the one the tokenizer gives."""
    from edgespec import Pipeline

    pipe = Pipeline.load(bundles["main"], draft="ms", precision="f32", kv_precision="f32", translation_cache=False)
    r1, r2, r3 = (pipe.generate(p, max_new_tokens=40, k=3, ignore_eos=True) for p in (PROMPT, PROMPT, OTHER_PROMPTS[1]))
    assert r1.stats.translation_misses > 0 and r2.stats.translation_misses == 0
    assert r2.stats.translation_hits >= r1.stats.translation_hits + r1.stats.translation_misses - 1
    assert (r2.tokens, r2.stats.drafted, r2.stats.accepted_hist) == (
        r1.tokens,
        r1.stats.drafted,
        r1.stats.accepted_hist,
    )
    assert r3.stats.translation_hits + r3.stats.translation_misses > 0
    pipe.close()


@pytest.mark.parametrize("draft", ["self", "xv", "ms"])
def test_a_windowed_cross_vocab_drafter_slides_over_a_long_context_and_changes_no_token(bundles, draft):
    """draft_window bounds what a cross-vocabulary drafter reads too: its first 4 tokens and the
    latest text, re-read from a word start once a round would overflow the window. The target
    reads everything, so the output is the autoregressive one, and drafting goes on."""
    from edgespec import Pipeline

    prompt = "\n".join(OTHER_PROMPTS * 5) + "\n" + PROMPT
    plain = pipeline(bundles["main"], None)
    assert 250 < len(plain.tokenize(prompt)) < 400
    ref = plain.generate(prompt, max_new_tokens=60, policy="autoregressive", ignore_eos=True)
    pipe = Pipeline.load(bundles["main"], draft=draft, precision="f32", kv_precision="f32")
    for k in (1, 3, "auto"):
        res = pipe.generate(prompt, max_new_tokens=60, k=k, ignore_eos=True, draft_window=128)
        assert res.tokens == ref.tokens and res.text == ref.text, (draft, k)
        assert sum(res.stats.accepted_hist) == res.stats.target_calls - 1
        if k != "auto":  # greedy adaptive k drafts only where the measured call costs say it pays: timing
            slides = res.stats.draft_window_slides
            assert res.stats.drafted > 0 and slides >= 2, (draft, k, slides)  # the prompt alone is two windows
    # the default window (1024, within the drafter's 512-token context) holds it all: no slide
    res = pipe.generate(prompt, max_new_tokens=60, k=3, ignore_eos=True)
    assert res.tokens == ref.tokens and res.stats.draft_window_slides == 0


def test_a_cross_vocab_drafter_drafts_on_where_the_text_outgrows_its_context(bundles):
    """The default window is the drafter's own context (512 tokens here): generating up to the
    target's context, the drafter slides instead of stopping, and nothing changes."""
    from edgespec import Pipeline

    prompt = "\n".join(OTHER_PROMPTS * 6) + "\n" + PROMPT
    plain = pipeline(bundles["main"], None)
    assert 400 < len(plain.tokenize(prompt)) < 450
    ref = plain.generate(prompt, max_new_tokens=100, policy="autoregressive", ignore_eos=True)
    assert ref.stats.finish_reason == "context"  # up to the target's 512-token context
    pipe = Pipeline.load(bundles["main"], draft="self", precision="f32", kv_precision="f32")
    res = pipe.generate(prompt, max_new_tokens=100, k=3, ignore_eos=True)
    assert res.tokens == ref.tokens and res.stats.drafted > 0 and res.stats.draft_window_slides == 1


# ---- sampling: the target's distribution ------------------------------------------------------


@pytest.fixture(scope="module")
def random_bundle(tiny_bundle, tmp_path_factory):
    """The random llama engine bundle plus "self_xv": the target as a cross_vocab drafter."""
    base = engine_bundle(tiny_bundle, tmp_path_factory, "llama")
    manifest = json.loads((base / "edgespec.json").read_text())
    target = next(m for m in manifest["models"] if m["role"] == "target")
    out = tmp_path_factory.mktemp("xv-random") / "bundle"
    return _relink(base, out, manifest["models"] + [_as_drafter(target, "self_xv")])


def test_speculative_sampling_with_a_cross_vocab_drafter_keeps_the_target_distribution(random_bundle):
    """The drafter drafts greedily and proposes with q one-hot: accept with p(d), else draw from
    norm(p - onehot(d)). The 2nd token (the first through accept/resample) must be distributed
    as under plain sampling (two-sample chi-square)."""
    from scipy.stats import chi2_contingency

    plain, spec = pipeline(random_bundle, None), pipeline(random_bundle, "self_xv")
    prompt, n = "x = 1\ny = 2\nz = 3\n", 300

    def second(pipe, policy):
        res = [
            pipe.generate(prompt, max_new_tokens=3, policy=policy, k=1, temperature=1.0, seed=s, ignore_eos=True)
            for s in range(n)
        ]
        return Counter(r.tokens[1] for r in res), sum(r.stats.drafted for r in res), sum(r.stats.accepted for r in res)

    (a, _, _), (b, drafted, accepted) = second(plain, "autoregressive"), second(spec, "draft")
    assert drafted > n // 10 and 0 < accepted < drafted, (drafted, accepted)  # both paths taken
    common = [t for t in set(a) | set(b) if a[t] + b[t] >= 10]
    rows = [[c[t] for t in common] + [n - sum(c[t] for t in common)] for c in (a, b)]
    if rows[0][-1] + rows[1][-1] == 0:
        rows = [r[:-1] for r in rows]
    _, pval, _, _ = chi2_contingency(rows)
    assert pval > 1e-3, f"cross-vocabulary speculative sampling changed the distribution (p={pval:.2g}): {rows}"


# ---- choosing the drafter, bad bundles ----------------------------------------------------------


def test_the_default_drafter_prefers_same_vocab_and_falls_back_to_cross_vocab(bundles, random_bundle):
    from edgespec import Pipeline

    assert Pipeline.load(random_bundle).draft_name == "draft"  # same_vocab first, though "self_xv" is there
    assert Pipeline.load(bundles["main"]).draft_name == "xv"  # only cross_vocab drafters: the first one


def test_a_cross_vocab_drafter_without_byte_tables_is_refused_with_a_sentence(bundles, tmp_path):
    from edgespec import Pipeline
    from edgespec.errors import BundleError

    base = bundles["base"]
    models = json.loads((base / "edgespec.json").read_text())["models"]
    for m in models:
        m["files"].pop("token_bytes", None)  # as exported before byte tables existed
    old = _relink(base, tmp_path / "old", models)
    with pytest.raises(BundleError, match=r"cross_vocab.*token_bytes\.bin.*re-export"):
        Pipeline.load(old, draft="ms")
    assert Pipeline.load(old).draft_name is None  # the default choice skips it, as it always did
    res = Pipeline.load(old).generate(PROMPT, max_new_tokens=4)
    assert len(res.tokens) == 4

    models = json.loads((base / "edgespec.json").read_text())["models"]
    models[0]["files"].pop("token_bytes")  # the target's table missing
    with pytest.raises(BundleError, match="for the target"):
        Pipeline.load(_relink(base, tmp_path / "no_target_table", models), draft="xv")

    bad = tmp_path / "bad"  # a drafter whose table is not one
    models = json.loads((base / "edgespec.json").read_text())["models"]
    _relink(base, bad, [m for m in models if m["name"] != "xv"])
    os.makedirs(bad / "xv")
    for f in (base / "xv").iterdir():
        os.link(f.resolve(), bad / "xv" / f.name)
    (bad / "xv" / "token_bytes.bin").unlink()
    (bad / "xv" / "token_bytes.bin").write_bytes(b"not a table")
    manifest = json.loads((bad / "edgespec.json").read_text())
    manifest.pop("integrity", None)  # unchecked, so the runtime's own reading of the table is what fails
    manifest["models"].append(next(m for m in models if m["name"] == "xv"))
    (bad / "edgespec.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a token byte table.*re-export"):
        Pipeline.load(bad, draft="xv")


def test_run_draft_xv_from_the_cli(bundles):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgespec",
            "run",
            str(bundles["main"]),
            PROMPT,
            "--draft",
            "ms",
            "--max-new-tokens",
            "30",
            "--k",
            "4",
            "--precision",
            "f32",
            "--kv-precision",
            "f32",
            "--ignore-eos",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    ref = pipeline(bundles["main"], None).generate(PROMPT, max_new_tokens=30, policy="autoregressive", ignore_eos=True)
    assert rep["draft"] == "ms" and rep["tokens"] == ref.tokens
    assert rep["stats"]["accepted"] == rep["stats"]["drafted"] > 0


def test_the_translation_cache_persists_across_pipelines_and_serves_a_second_process(bundles, tmp_path):
    """Freed, a pipeline writes its translations to a file keyed by both tokenizers; the next one
    (here a second process) loads it: the same generation is then served from disk alone, and the
    tokens are the same."""
    import subprocess
    import sys

    from edgespec import Pipeline

    cache = tmp_path / "xc"
    with Pipeline.load(bundles["main"], draft="ms", precision="f32", kv_precision="f32", translation_cache=cache) as a:
        info = a.info["translation_cache"]
        assert info["loaded"] == 0 and info["warning"] == ""
        first = a.generate(PROMPT, max_new_tokens=40, k=3, ignore_eos=True)
    assert first.stats.translation_misses > 0 and first.stats.translation_disk_hits == 0
    files = list(cache.glob("xvocab-*.bin"))
    assert len(files) == 1 and info["file"] == str(files[0])
    code = (
        f"from edgespec import Pipeline\n"
        f"p = Pipeline.load({str(bundles['main'])!r}, draft='ms', precision='f32', kv_precision='f32', "
        f"translation_cache={str(cache)!r})\n"
        f"r = p.generate({PROMPT!r}, max_new_tokens=40, k=3, ignore_eos=True)\n"
        "print(p.info['translation_cache']['loaded'], r.stats.translation_misses, r.stats.translation_disk_hits, r.tokens)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded, misses, disk_hits, tokens = out.stdout.split(" ", 3)
    assert (
        int(loaded) > 0
        and int(misses) == 0
        and int(disk_hits) == first.stats.translation_hits + first.stats.translation_misses
    )
    assert tokens.strip() == str(first.tokens)
    # another drafter of the same target has its own file; no cache: no file
    with Pipeline.load(bundles["main"], draft="xv", translation_cache=cache) as b:
        b.generate(PROMPT, max_new_tokens=8, k=3)
    assert len(list(cache.glob("xvocab-*.bin"))) == 2
    with Pipeline.load(bundles["main"], draft="xv", translation_cache=False) as c:
        c.generate(OTHER_PROMPTS[0], max_new_tokens=8, k=3)
        assert c.info["translation_cache"]["file"] == ""


def test_a_corrupt_translation_cache_is_a_warning_and_a_fresh_cache(bundles, tmp_path):
    from edgespec import Pipeline

    cache = tmp_path / "xc"
    with Pipeline.load(bundles["main"], draft="ms", translation_cache=cache) as a:
        ref = a.generate(PROMPT, max_new_tokens=30, k=3, ignore_eos=True)
    (f,) = cache.glob("xvocab-*.bin")
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x5A
    f.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="is corrupt; starting with an empty one"):
        b = Pipeline.load(bundles["main"], draft="ms", translation_cache=cache)
    res = b.generate(PROMPT, max_new_tokens=30, k=3, ignore_eos=True)
    assert res.tokens == ref.tokens and res.stats.translation_disk_hits == 0
    b.close()  # rewrites a good file
    with Pipeline.load(bundles["main"], draft="ms", translation_cache=cache) as c:
        assert c.info["translation_cache"]["warning"] == "" and c.info["translation_cache"]["loaded"] > 0
    f.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="is corrupt"):
        Pipeline.load(bundles["main"], draft="ms", translation_cache=cache).close()


def test_adapt_teaches_a_random_cross_vocab_drafter_with_the_hybrid_loss(bundles, tmp_path):
    """OmniDraft's online adaptation across vocabularies: token-level KL where a drafter token
    spans one target token, sequence-level on the target's text elsewhere; the random metaspace
    drafter then drafts what the target writes on held-out prompts, and stays lossless."""
    from edgespec.export.draft import adapt as ad

    from edgespec import Pipeline

    bundle = link_tree(bundles["main"], tmp_path / "main")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": TEXT[:n]}) + "\n" for n in range(12, len(TEXT) - 30, 5)))
    rep = ad.run(
        bundle, prompts_file=prompts, drafter="msr", steps=100, batch=4, lr=1e-2, max_new_tokens=24, progress=False
    )
    assert rep["relation"] == "cross_vocab" and rep["token_level"] > 0 and rep["sequence_level"] > 0
    a, b = rep["acceptance"]["msr"], rep["acceptance"]["msr-adapted"]
    assert b["acceptance_rate"] > a["acceptance_rate"] + 0.08 and b["mean_accepted"] > a["mean_accepted"] + 0.2, rep
    with Pipeline.load(bundle, draft="msr-adapted", precision="f32", kv_precision="f32") as pipe:
        assert pipe.info["draft"]["kind"] == "cross_vocab"
        for p in (PROMPT, OTHER_PROMPTS[0]):
            spec = pipe.generate(p, max_new_tokens=30, k=3, ignore_eos=True)
            assert spec.tokens == pipe.generate(p, max_new_tokens=30, policy="autoregressive", ignore_eos=True).tokens
