"""Helpers shared by the engine tests (tests/test_engine_*.py): bundles and cached pipelines."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

ARCHS = ("llama", "qwen2", "phi3")
PROMPTS = ("def fib(n):", "import os\nclass Walker:\n    def __init__(self, root):", "s = 'Grüße, 世界'  # café")

_bundles: dict = {}
_pipes: dict = {}


def link_tree(src: Path, dst: Path) -> Path:
    """A copy of directory src at dst made of hard links (no bytes copied). Bundles may not hold
    symbolic links that lead out of them, so test bundles over another's models link this way; a
    test that changes a file in the copy must unlink it first (the inode is shared)."""
    shutil.copytree(Path(src).resolve(), dst, copy_function=os.link)
    return dst


def with_self_drafter(base: Path, out: Path) -> Path:
    """A bundle beside ``base`` whose manifest adds the target itself as drafter "self" (hard-linked
    model directories, no re-export): the drafter then agrees with the target on every token."""
    if (out / "edgespec.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((base / "edgespec.json").read_text())
    for m in manifest["models"]:
        link = out / m["path"]
        if not link.exists():
            link_tree(base / m["path"], link)
    target = next(m for m in manifest["models"] if m["role"] == "target")
    me = dict(target, name="self", role="draft", relation={"kind": "same_vocab"})
    manifest["models"].append(me)
    (out / "edgespec.json").write_text(json.dumps(manifest, indent=1))
    return out


def engine_bundle(tiny_bundle, tmp_path_factory, arch: str = "llama") -> Path:
    """The fp32 tiny bundle of ``arch`` (target + random drafter "draft") plus drafter "self"."""
    if arch not in _bundles:
        base = Path(tiny_bundle(arch, drafts=1, weights="fp32"))
        _bundles[arch] = with_self_drafter(base, tmp_path_factory.mktemp(f"engine-{arch}") / "bundle")
    return _bundles[arch]


def pipeline(bundle: Path, draft: str | None = "draft", **kw):
    """A cached f32 pipeline (exact comparisons need f32 inference and KV cache)."""
    from edgespec import Pipeline

    key = (str(bundle), draft, tuple(sorted(kw.items())))
    if key not in _pipes:
        _pipes[key] = Pipeline.load(bundle, draft=draft, precision="f32", kv_precision="f32", **kw)
    return _pipes[key]


def hf_greedy(model, ids, max_new_tokens: int = 20) -> list[int]:
    """torch's greedy continuation of ``ids`` (1 x n) by a tiny model (EOS 2, pad 0), without a final
    EOS: the engine reports EOS as the finish reason, not as a token."""
    import torch

    with torch.no_grad():
        hf = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=2,
            pad_token_id=0,
        )[0, ids.shape[1] :].tolist()
    return hf[:-1] if hf and hf[-1] == 2 else hf


def engine_ready() -> bool:
    """The native library loads and the exporter imports (what engine tests on exported bundles need)."""
    try:
        from edgespec.export import api  # noqa: F401

        from edgespec import _native

        _native.lib().es_pipeline_load  # noqa: B018
        return True
    except Exception:
        return False


def without_target_byte_table(base: Path, out: Path) -> Path:
    """The models of ``base`` under a manifest without the target's token_bytes.bin (and without
    the cross_vocab drafters that need it): streamed text then comes from the detokenizer on every
    round, where ``base`` spells it from the byte table."""
    if (out / "edgespec.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((base / "edgespec.json").read_text())
    manifest["models"] = [m for m in manifest["models"] if (m.get("relation") or {}).get("kind") != "cross_vocab"]
    for m in manifest["models"]:
        link = out / m["path"]
        if not link.exists():
            link_tree(base / m["path"], link)
        if m["role"] == "target":
            m["files"].pop("token_bytes", None)
    (out / "edgespec.json").write_text(json.dumps(manifest, indent=1))
    return out


def assert_streams_match(fast, slow, prompts) -> None:
    """``fast`` (text from the byte table) and ``slow`` (the detokenizer) stream the same chunks
    and text: greedy, cut by a stop string, and sampled at temperature 1 (which emits lone bytes
    of multi-byte characters), with n-gram rounds committing several tokens at once."""
    assert fast.info["text"] == "byte-table", fast.info
    assert slow.info["text"] == "detokenizer", slow.info

    def run(pipe, prompt, **cfg):
        with pipe.stream(prompt, max_new_tokens=40, ignore_eos=True, **cfg) as st:
            chunks = list(st)
        assert "".join(chunks) == st.result.text
        return chunks, st.result.tokens

    for prompt in prompts:
        greedy = run(fast, prompt, policy="autoregressive")
        assert greedy == run(slow, prompt, policy="autoregressive")
        text = "".join(greedy[0])
        if len(text) > 14:
            stop = text[10:14]
            assert run(fast, prompt, policy="ngram", k=3, stop=[stop]) == run(
                slow, prompt, policy="ngram", k=3, stop=[stop]
            )
        for seed in range(4):
            cfg = dict(policy="ngram", k=3, temperature=1.0, seed=seed)
            assert run(fast, prompt, **cfg) == run(slow, prompt, **cfg), (prompt, seed)
