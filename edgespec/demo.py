"""`edgespec demo`: the built-in demo pair, exported on first use, speculative vs plain decoding.

The demo pair (models/demo/target and models/demo/draft, trained by tools/train_demo.py and
`edgespec draft train`, see models/demo/RECIPE.md) is exported once into
``~/.cache/edgespec/demo-<hash>`` (hash of the model files, the weight format and the edgespec
version; built in a temporary directory and renamed, so an interrupted export leaves nothing
half-written). The command then streams a code completion of a held-out prompt with speculative
decoding and prints its stats next to plain decoding of the same prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import click

from . import __version__
from .errors import EdgespecError

# INT8 keeps the demo target's greedy choices (INT4 of a 17M model disagrees too often; see RECIPE.md).
DEMO_WEIGHTS = "int8"
DEMO_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "generation_config.json", "trim_id_map.i32")


def demo_models_dir() -> Path:
    import edgespec.models as m

    return Path(list(m.__path__)[0]) / "demo"


def cache_root() -> Path:
    env = os.environ.get("EDGESPEC_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgespec"


def demo_pair(draft: str = "draft") -> tuple[Path, Path]:
    d = demo_models_dir()
    target, drafter = d / "target", d / draft
    for p in (target, drafter):
        if not (p / "config.json").is_file() or not any(p.glob("*.safetensors")):
            raise EdgespecError(f"the demo weights are missing ({p}); build them with tools/build_corpus.py, "
                                "tools/train_demo.py and `edgespec draft train` as models/demo/RECIPE.md describes.")
    return target, drafter


def demo_hash(paths: list[Path], weights: str) -> str:
    h = hashlib.sha256(f"edgespec {__version__} weights={weights}\0".encode())
    for p in paths:
        for name in DEMO_FILES:
            f = p / name
            if f.is_file():
                h.update(f"{p.name}/{name}\0".encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def ensure_bundle(weights: str = DEMO_WEIGHTS, draft: str = "draft", quiet: bool = False) -> Path:
    """The exported demo bundle in the cache (exported now if absent)."""
    target, drafter = demo_pair(draft)
    out = cache_root() / f"demo-{draft}-{demo_hash([target, drafter], weights)}"
    if (out / "edgespec.json").is_file():
        return out
    try:
        from edgespec.export.api import export_bundle
    except ImportError as e:
        raise EdgespecError(f"the demo is exported on first use, which needs the export extra "
                            f"(pip install 'edgespec[export]'; missing: {e.name}).")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if not quiet:
        click.echo(f"exporting the demo pair ({weights} target) to {out} (first run only)...", err=True)
    try:
        export_bundle(str(target), str(tmp), drafts=[str(drafter)], weights=weights, force=True, progress=not quiet,
                      draft_names=["draft"])
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / "edgespec.json").is_file():  # someone else won the race only if theirs is complete
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def default_prompt() -> str:
    f = demo_models_dir() / "prompts_heldout.jsonl"
    if not f.is_file():
        return 'def median(values):\n    """Return the median of a non-empty list of numbers."""\n    '
    first = f.read_text(encoding="utf-8").splitlines()[0]
    return json.loads(first)["prompt"]


_ROWS = (("tokens_per_s", "tokens/s", "{:.1f}"), ("speedup", "speedup", "{:.2f}x"),
         ("acceptance_rate", "acceptance_rate", "{:.3f}"), ("mean_accepted", "mean_accepted", "{:.2f}"),
         ("ttft_ms", "ttft_ms", "{:.1f}"), ("tpot_ms", "tpot_ms", "{:.2f}"), ("generated_tokens", "tokens", "{}"),
         ("target_calls", "target_calls", "{}"), ("drafted", "drafted", "{}"), ("accepted", "accepted", "{}"))


def register_demo(cli: click.Group) -> None:
    @cli.command()
    @click.option("--prompt", default=None, help="Code to complete (default: a held-out standard-library function).")
    @click.option("--max-new-tokens", type=int, default=128, show_default=True)
    @click.option("--k", default="auto", show_default=True, help="Draft length: 1..32 (fixed) or 'auto' (adaptive).")
    @click.option("--no-baseline", is_flag=True, help="Skip plain decoding (no speedup figure).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text and a table.")
    @click.option("--device", default="CPU", show_default=True)
    @click.option("--weights", type=click.Choice(["int4", "int8", "fp16", "fp32"]), default=DEMO_WEIGHTS,
                  show_default=True, help="Target weight format of the demo export.")
    @click.option("--drafter", type=click.Choice(["draft", "draft-trimmed", "draft-xvocab"]), default="draft",
                  show_default=True, help="Which demo drafter.")
    def demo(prompt, max_new_tokens, k, no_baseline, as_json, device, weights, drafter):
        """Speculative code completion with the built-in demo pair, next to plain decoding."""
        if k != "auto":
            try:
                k = int(k)
            except ValueError:
                raise EdgespecError(f"--k must be a number from 1 to 32 or 'auto', not {k!r}.")
            if not 1 <= k <= 32:
                raise EdgespecError(f"--k must be from 1 to 32, not {k}.")
        if max_new_tokens < 1:
            raise EdgespecError("--max-new-tokens must be at least 1.")
        bundle = ensure_bundle(weights, drafter, quiet=as_json)
        from .pipeline import Pipeline

        prompt = prompt if prompt is not None else default_prompt()
        pipe = Pipeline.load(bundle, device=device)
        opts = dict(max_new_tokens=max_new_tokens, k=k)
        # warm-up: the first call of each compiled model pays one-time costs
        pipe.generate(prompt, max_new_tokens=4, policy="draft", k=k)
        if not no_baseline:
            pipe.generate(prompt, max_new_tokens=4, policy="autoregressive")
        if as_json:
            spec = pipe.generate(prompt, policy="draft", **opts)
        else:
            from rich.console import Console

            con = Console(highlight=False)
            con.print(prompt, style="dim", end="")
            # streamed on this thread, as `edgespec run` does: no hand-off to another thread per delta
            spec = pipe.generate(prompt, policy="draft", streamer=lambda chunk: con.print(chunk, end="", style="bold"),
                                 **opts)
            con.print()
        base = pipe.generate(prompt, policy="autoregressive", max_new_tokens=max_new_tokens) if not no_baseline else None
        rows = {"speculative": spec.stats.to_dict()}
        if base is not None:
            rows["plain"] = base.stats.to_dict()
            rows["speculative"]["speedup"] = (spec.stats.tokens_per_s / base.stats.tokens_per_s
                                              if base.stats.tokens_per_s else 0.0)
            rows["plain"]["speedup"] = 1.0
            rows["plain"]["acceptance_rate"] = rows["plain"]["mean_accepted"] = None
        if as_json:
            click.echo(json.dumps({"bundle": str(bundle), "prompt": prompt, "text": spec.text, "k": k,
                                   "identical_to_plain": None if base is None else base.tokens == spec.tokens,
                                   "stats": rows}, indent=2))
            return
        from rich.table import Table

        t = Table(title=f"edgespec demo: {pipe.draft_name or 'no drafter'} drafting for the demo target ({weights}, k={k})")
        t.add_column("metric")
        for name in rows:
            t.add_column(name, justify="right")
        for key, label, fmt in _ROWS:
            vals = [rows[n].get(key) for n in rows]
            t.add_row(label, *["" if v is None else fmt.format(v) for v in vals])
        con.print(t)
        if base is not None:
            same = base.tokens == spec.tokens
            con.print("speculative output " + ("[green]identical[/green] to plain decoding" if same
                                               else "[red]differs[/red] from plain decoding"))
