"""`edgespec demo`: speculative code completion where speculation is meant to pay, next to plain decoding.

The demo pair (models/demo/target and models/demo/draft, trained by tools/train_demo.py and
`edgespec draft train`, see models/demo/RECIPE.md) is exported once into
``~/.cache/edgespec/demo-*-<hash>`` (hash of the model files, the settings and the edgespec
version; export_bundle builds beside it and renames, so an interrupted export leaves nothing).

By default the target is the *twin* of the 17M demo target (edgespec.export.twin): the same
model widened to ~1B parameters so that every added weight contributes exactly zero. It writes
what the small model writes, at what a 1B model costs per call: a cost at which drafting with a
4M drafter can pay (a 17M target costs about what its drafter costs, so nothing can pay there;
``--small`` still runs it). The twin is built in a temporary directory (~4 GB of fp32
safetensors), exported to INT4 and deleted; only the ~0.6 GB bundle is cached.

A run then: picks the drafting that measures fastest on this machine (or a saved
recommendation, see recommended_drafting), streams the completion of a held-out prompt with it,
stopping where code-completion tools stop (the end of the function), decodes the same prompt
plainly, checks that both wrote the same text, and explains the speedup from the costs it
measured: what a verify call of several tokens costs here in decode steps, the acceptance the
drafter reached, the speedup those allow, and what the same drafter would give where verify
calls cost about one decode step (a projection).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import string
import tempfile
import time
from pathlib import Path

import click

from . import __version__
from .errors import EdgespecError

# INT8 keeps the 17M target's greedy choices (INT4 of a 17M model disagrees too often; see RECIPE.md).
DEMO_WEIGHTS = "int8"
# The twin is INT4, as a 1B model on a PC ships: its original channels fall into whole INT4 groups.
TWIN_WEIGHTS = "int4"
# hidden, layers, intermediate, kv heads, context: ~1.0B parameters, the lab's `twin` rung.
TWIN_SHAPE = (2048, 16, 8192, 8, 2048)
DEMO_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "trim_id_map.i32",
)
# The held-out prompts the demo completes: ones each target (the INT4 twin; --small: the INT8 17M
# target) completes greedily as a whole, plausible function and ends (most prompts make a 17M model
# loop); and the one the drafting probe runs on (another held-out function).
DEMO_PROMPT_ID = "asyncio.tasks:current_task:35"
SMALL_PROMPT_ID = "distutils.msvc9compiler:read_keys:71"
PROBE_PROMPT_ID = "queue:get:154"
# Drafting configurations the demo measures: adaptive k, and two fixed lengths (whose verify
# calls give the verify-cost curve).
CANDIDATES = (("adaptive k", "auto"), ("k=2", 2), ("k=4", 4))
PROBE_TOKENS = 24


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
            raise EdgespecError(
                f"the demo weights are missing ({p}); build them with tools/build_corpus.py, "
                "tools/train_demo.py and `edgespec draft train` as models/demo/RECIPE.md describes."
            )
    return target, drafter


def demo_hash(paths: list[Path], settings: str) -> str:
    h = hashlib.sha256(f"edgespec {__version__} {settings}\0".encode())
    for p in paths:
        for name in DEMO_FILES:
            f = p / name
            if f.is_file():
                h.update(f"{p.name}/{name}\0".encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _export_api():
    """export_bundle, or one sentence when the export extra (torch, NNCF, ...) is missing."""
    from .cli_export import _load_api

    try:
        return _load_api().export_bundle
    except EdgespecError as e:
        raise EdgespecError(f"the demo builds its bundle on first use, which needs the export extra: {e}") from None


def ensure_bundle(weights: str = DEMO_WEIGHTS, draft: str = "draft", quiet: bool = False) -> Path:
    """The exported 17M demo bundle (``--small``) in the cache, exported now if absent."""
    target, drafter = demo_pair(draft)
    out = cache_root() / f"demo-{draft}-{demo_hash([target, drafter], f'weights={weights}')}"
    if (out / "edgespec.json").is_file():
        return out
    export_bundle = _export_api()
    if not quiet:
        click.echo(f"exporting the demo pair ({weights} target) to {out} (first run only)...", err=True)
    export_bundle(
        str(target),
        str(out),
        drafts=[str(drafter)],
        weights=weights,
        force=True,
        progress=not quiet,
        draft_names=[draft],
    )
    return out


def parse_twin_shape(text: str) -> tuple[int, ...]:
    """'HIDDEN,LAYERS,INTERMEDIATE,KV_HEADS,CONTEXT' (the hidden --twin-shape option) -> a tuple."""
    try:
        shape = tuple(int(x) for x in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 5 or min(shape) < 1:
        raise EdgespecError(
            f"--twin-shape takes five positive numbers HIDDEN,LAYERS,INTERMEDIATE,KV_HEADS,CONTEXT, not {text!r}."
        )
    return shape


def ensure_twin_bundle(draft: str = "draft", shape: tuple[int, ...] = TWIN_SHAPE, quiet: bool = False) -> Path:
    """The exported twin bundle (the demo target widened to ``shape``, INT4; the drafter INT8) in
    the cache; built and exported now if absent, the fp32 twin deleted afterwards."""
    target, drafter = demo_pair(draft)
    settings = f"twin={','.join(map(str, shape))} weights={TWIN_WEIGHTS}"
    out = cache_root() / f"demo-twin-{draft}-{demo_hash([target, drafter], settings)}"
    if (out / "edgespec.json").is_file():
        return out
    export_bundle = _export_api()
    out.parent.mkdir(parents=True, exist_ok=True)
    # before minutes of building: the fp32 twin, and the export's own rule (3x the checkpoints)
    need = 4 * 4 * twin_parameters(target, shape)
    free = shutil.disk_usage(out.parent).free
    if free < need:
        raise EdgespecError(
            f"the demo's first run needs about {need / 2**30:.0f} GiB free at {out.parent} to build "
            f"and export its 1B target, but {free / 2**30:.1f} GiB are free; free some space, set "
            "EDGESPEC_CACHE to a roomier directory, or run `edgespec demo --small`."
        )
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=".demo-twin-hf-", dir=out.parent))
    try:
        params = build_twin(target, work, shape, progress=not quiet)
        if not quiet:
            click.echo(
                f"exporting the {_size(params)} twin ({TWIN_WEIGHTS}) and the drafter to {out} (first run only)...",
                err=True,
            )
        export_bundle(
            str(work),
            str(out),
            drafts=[str(drafter)],
            weights=TWIN_WEIGHTS,
            force=True,
            progress=not quiet,
            draft_names=[draft],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the fp32 twin: ~4 GB at the default shape
    if not quiet:
        click.echo(
            f"first run: twin built and exported in {time.perf_counter() - t0:.0f} s; later runs reuse {out}", err=True
        )
    return out


def twin_parameters(source: Path, shape: tuple[int, ...]) -> int:
    """Parameters of the twin of ``source`` at ``shape``, from the configs alone (no torch)."""
    from types import SimpleNamespace

    from .export.twin import parameter_count

    cfg = json.loads((source / "config.json").read_text(encoding="utf-8"))
    hidden, layers, intermediate, kv_heads, _ = shape
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    return parameter_count(
        SimpleNamespace(
            **{
                **cfg,
                "hidden_size": hidden,
                "num_hidden_layers": layers,
                "intermediate_size": intermediate,
                "head_dim": d,
                "num_attention_heads": hidden // d,
                "num_key_value_heads": kv_heads,
            }
        )
    )


def build_twin(source: Path, out: Path, shape: tuple[int, ...], progress: bool = True) -> int:
    """Widen the HF Llama at ``source`` to ``shape`` (see TWIN_SHAPE) and save it, with its
    tokenizer files, as fp32 safetensors in ``out``; returns the twin's parameter count."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM

    from edgespec.export.api import _HF_FILES
    from edgespec.export.source import _quiet_transformers
    from edgespec.export.twin import parameter_count, widen_llama

    _quiet_transformers()  # this progress bar replaces transformers' own
    hidden, layers, intermediate, kv_heads, context = shape
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not progress,
    )
    with bar:
        task = bar.add_task(f"twin: loading {source.name}", total=3)
        src = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
        bar.update(
            task, advance=1, description=f"twin: widening to hidden {hidden}, {layers} layers, MLP {intermediate}"
        )
        twin = widen_llama(src, hidden, layers, intermediate, kv_heads=kv_heads, context=context)
        params = parameter_count(twin.config)
        bar.update(
            task,
            advance=1,
            description=f"twin: saving {_size(params)} parameters (fp32, "
            f"{params * 4 / 2**30:.1f} GiB, deleted after the export)",
        )
        twin.save_pretrained(out, safe_serialization=True)
        bar.advance(task)
    for name in _HF_FILES:
        if (source / name).is_file() and not (out / name).exists():
            shutil.copy2(source / name, out / name)
    if progress:
        Console(stderr=True).print(
            f"twin: {_size(parameter_count(src.config))} -> {_size(params)} "
            f"parameters (hidden {src.config.hidden_size}->{hidden}, layers "
            f"{src.config.num_hidden_layers}->{layers}), the same next-token choices"
        )
    del twin, src
    gc.collect()
    return params


def _heldout() -> dict[str, str]:
    f = demo_models_dir() / "prompts_heldout.jsonl"
    if not f.is_file():
        return {}
    rows = (json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip())
    return {r["id"]: r["prompt"] for r in rows}


def default_prompt(small: bool = False) -> str:
    """The held-out prompt the demo completes (``small``: the one for the 17M target)."""
    return _heldout().get(SMALL_PROMPT_ID if small else DEMO_PROMPT_ID) or (
        'def median(values):\n    """Return the median of a non-empty list of numbers."""'
    )


def probe_prompt() -> str:
    """Another held-out prompt, for the drafting probe (so the choice is not tuned on the demo's)."""
    return _heldout().get(PROBE_PROMPT_ID) or 'def mean(values):\n    """Return the mean of a list of numbers."""'


# Characters that can start a Python line; a line starting with one at or left of the `def`
# ends the function (a decorator, the next def or class, a comment, module code).
_LINE_STARTS = [c for c in string.printable if not c.isspace()]


def function_stops(prompt: str) -> list[str]:
    """Stop strings that end a completion where code-completion tools end it: at the first
    non-empty line indented at or left of the prompt's last ``def`` (the function is over).

    Stop strings are matched by the runtime on the text, so plain and speculative decoding stop
    at the same character (the comparison stays lossless) and the stop line is not part of the text.
    """
    lines = prompt.splitlines()
    defs = [ln for ln in lines if ln.lstrip().startswith(("def ", "async def "))]
    if not defs:
        return []
    indent = len(defs[-1]) - len(defs[-1].lstrip(" "))
    return ["\n" + " " * i + c for i in range(indent + 1) for c in _LINE_STARTS]


def recommended_drafting(bundle: Path, device: str) -> dict | None:
    """The drafting a saved per-device profile recommends for ``bundle`` on ``device``
    (``{"k": "auto" | int, "source": str}``), or None when none is saved for this device and bundle
    or it does not recommend drafting with the bundle's drafter (the demo then measures the
    candidates itself: choose_drafting)."""
    from .profiling import load_recommendation

    match = load_recommendation(bundle, device=device)
    rec = match.recommendation
    if not rec or rec.get("policy") != "draft" or rec.get("k") is None:
        return None
    return {"k": rec["k"], "source": match.note or "the saved profile of this device"}


def _per_call(stats) -> tuple[float, float, int]:
    """(mean ms of a target call after the prefill, mean tokens it checked, such calls)."""
    rounds = max(stats.target_calls - 1, 0)
    if not rounds:
        return 0.0, 1.0, 0
    return (stats.verify_ms - stats.prefill_ms) / rounds, 1.0 + stats.drafted / rounds, rounds


def choose_drafting(pipe, prompt: str, candidates=CANDIDATES, tokens: int = PROBE_TOKENS) -> dict:
    """Warm up, then time plain decoding and each drafting candidate on ``prompt`` (``tokens`` new
    tokens each, ignore_eos). Returns the fastest candidate's k, the decode-step cost and each
    candidate's figures (its verify calls' width and cost: the verify curve)."""
    common = dict(max_new_tokens=tokens, ignore_eos=True)
    pipe.generate(prompt, max_new_tokens=4, policy="autoregressive")  # first calls pay one-time costs
    for _, k in candidates:
        pipe.generate(prompt, max_new_tokens=4, policy="draft", k=k)
    plain = pipe.generate(prompt, policy="autoregressive", **common).stats
    step_ms = _per_call(plain)[0]
    runs = {}
    for name, k in candidates:
        s = pipe.generate(prompt, policy="draft", k=k, **common).stats
        call_ms, width, _ = _per_call(s)
        runs[name] = {
            "k": k,
            "tokens_per_s": s.tokens_per_s,
            "speedup": s.tokens_per_s / plain.tokens_per_s,
            "acceptance_rate": s.acceptance_rate,
            "verify_width": width,
            "verify_ms": call_ms,
            "verify_steps": call_ms / step_ms if step_ms else None,
        }
    best = max(runs, key=lambda n: runs[n]["tokens_per_s"])
    return {
        "k": runs[best]["k"],
        "name": best,
        "decode_step_ms": step_ms,
        "plain_tokens_per_s": plain.tokens_per_s,
        "candidates": runs,
    }


def explain(spec, plain, step_ms: float) -> dict:
    """The figures behind a speedup, from one speculative and one plain generation of the same text.

    decode_step_ms: a one-token target call (from ``plain``; ``step_ms`` when it made none).
    Per verify call of the speculative run: its mean width and cost in decode steps, the drafting
    it needed, the tokens it committed (tau). allowed_speedup = tau / (verify steps + drafting
    steps): what these call costs allow; projected_flat_verify = tau / (1 + drafting steps): the
    same rounds where a verify call costs one decode step (VNNI/AMX CPUs, GPUs) - a projection."""
    step = _per_call(plain)[0] or step_ms
    call_ms, width, rounds = _per_call(spec)
    tau = (spec.generated_tokens - 1) / rounds if rounds else 1.0
    draft_steps = spec.draft_ms / rounds / step if rounds and step else 0.0
    verify_steps = call_ms / step if step else 0.0
    return {
        "decode_step_ms": step,
        "verify_width": width,
        "verify_ms": call_ms,
        "verify_steps": verify_steps,
        # per token the drafter drafted (prompt lookup's tokens cost no model call)
        "draft_ms_per_token": spec.draft_ms / own if (own := spec.drafted - spec.lookup_drafted) else 0.0,
        "lookup_drafted": spec.lookup_drafted,
        "lookup_accepted": spec.lookup_accepted,
        "draft_steps_per_round": draft_steps,
        "tokens_per_verify": tau,
        "acceptance_rate": spec.acceptance_rate,
        "allowed_speedup": tau / (verify_steps + draft_steps) if verify_steps else None,
        "projected_flat_verify": tau / (1.0 + draft_steps),
    }


def _size(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 0.95e9 else f"{n / 1e6:.0f}M"


def _describe_target(bundle: Path, twin: bool) -> str:
    from types import SimpleNamespace

    from .bundle import load
    from .export.twin import parameter_count  # arithmetic on the config: no torch

    b = load(bundle)
    cfg = json.loads((b.target.dir / "config.json").read_text(encoding="utf-8"))
    n = parameter_count(SimpleNamespace(**{"tie_word_embeddings": False, "head_dim": None, **cfg}))
    w = b.target.raw["weights"]["precision"].upper()
    d = b.draft()
    dw = d.raw["weights"]["precision"].upper() if d else ""
    if twin:
        return (
            f"target: the 17M demo target widened to {_size(n)} parameters ({w}): the small model's "
            f"outputs at a {_size(n)} model's cost; drafter: {d.name} ({dw})"
        )
    return f"target: the 17M demo target ({w}), as cheap per call as its drafter {d.name} ({dw})"


def register_demo(cli: click.Group) -> None:
    @cli.command()
    @click.option("--prompt", default=None, help="Code to complete (default: a held-out standard-library function).")
    @click.option(
        "--max-new-tokens",
        type=int,
        default=192,
        show_default=True,
        help="At most this many tokens (the completion stops earlier at the end of the function).",
    )
    @click.option(
        "--k",
        default="best",
        show_default=True,
        help="Draft length: 'best' (the fastest here of adaptive k, k=2 and k=4, measured at start), "
        "'auto' (adaptive) or 1..32 (fixed).",
    )
    @click.option(
        "--small", is_flag=True, help="The 17M target itself (quick, but too cheap per call for drafting to pay)."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text and a table.")
    @click.option("--device", default="CPU", show_default=True)
    @click.option(
        "--drafter",
        type=click.Choice(["draft", "draft-trimmed", "draft-xvocab"]),
        default="draft",
        show_default=True,
        help="Which demo drafter.",
    )
    @click.option(
        "--twin-shape",
        default=None,
        hidden=True,
        help="HIDDEN,LAYERS,INTERMEDIATE,KV_HEADS,CONTEXT of the twin (tests build small ones).",
    )
    def demo(prompt, max_new_tokens, k, small, as_json, device, drafter, twin_shape):
        """Speculative code completion with the built-in demo pair, next to plain decoding.

        \b
        The target is the 17M demo target widened to ~1B parameters (INT4): the small model's
        outputs at a 1B model's cost, built and exported on the first run (a few minutes),
        cached after. --small runs the 17M target itself."""
        if k not in ("best", "auto"):
            try:
                k = int(k)
            except ValueError:
                raise EdgespecError(f"--k must be 'best', 'auto' or a number from 1 to 32, not {k!r}.") from None
            if not 1 <= k <= 32:
                raise EdgespecError(f"--k must be from 1 to 32, not {k}.")
        if max_new_tokens < 1:
            raise EdgespecError("--max-new-tokens must be at least 1.")
        if small and twin_shape:
            raise EdgespecError("--small runs the 17M target itself; drop --twin-shape or --small.")
        shape = parse_twin_shape(twin_shape) if twin_shape else TWIN_SHAPE
        from .cli_export import _stdout_to_stderr
        from .pipeline import Pipeline

        with _stdout_to_stderr(as_json):  # --json: stdout carries the JSON only, whatever the exporters print
            bundle = (
                ensure_bundle(DEMO_WEIGHTS, drafter, quiet=as_json)
                if small
                else ensure_twin_bundle(drafter, shape, quiet=as_json)
            )

        what = _describe_target(bundle, twin=not small)
        prompt = prompt if prompt is not None else default_prompt(small)
        # f32 compute and KV cache: with the CPU's defaults (bf16 where it has it, a u8 KV cache) a
        # k+1-token verify call rounds differently from k+1 one-token calls, and near-ties can then
        # go the other way: the output would still be the target's, but not token for token plain's
        pipe = Pipeline.load(bundle, device=device, precision="f32", kv_precision="f32")
        if not as_json:
            click.echo(what, err=True)
            click.echo("measuring this machine's call costs and picking the drafting...", err=True)
        probe = choose_drafting(pipe, probe_prompt())
        saved = recommended_drafting(bundle, device)
        if k != "best":
            chosen, by = k, "--k"
        elif saved is not None:
            chosen, by = saved["k"], saved["source"]
        else:
            chosen, by = probe["k"], f"fastest of {', '.join(n for n, _ in CANDIDATES)} on a probe prompt"
        opts = dict(max_new_tokens=max_new_tokens, stop=function_stops(prompt) or None)
        if as_json:
            spec = pipe.generate(prompt, policy="draft", k=chosen, **opts)
        else:
            from rich.console import Console

            con = Console(highlight=False)
            con.print(prompt, style="dim", end="")
            # streamed on this thread, as `edgespec run` does: no hand-off to another thread per delta
            spec = pipe.generate(
                prompt, policy="draft", k=chosen, streamer=lambda chunk: con.print(chunk, end="", style="bold"), **opts
            )
            con.print()
        base = pipe.generate(prompt, policy="autoregressive", **opts)
        # lossless: the same text, and the same tokens up to where plain decoding stopped (a
        # speculative round may have committed a few tokens past a stop string, cut from the text)
        same = spec.text == base.text and spec.tokens[: len(base.tokens)] == base.tokens
        # the same text in both: time for it is the honest comparison (tokens/s would count the
        # speculative run's tokens past the stop)
        speedup = base.stats.total_ms / spec.stats.total_ms if spec.stats.total_ms else 0.0
        fig = explain(spec.stats, base.stats, probe["decode_step_ms"])
        # the fixed-k probes: verify calls of up to k+1 tokens (fewer in a round cut by max_new_tokens)
        curve = {
            c["k"] + 1: (c["verify_width"], c["verify_steps"])
            for c in probe["candidates"].values()
            if isinstance(c["k"], int) and c["verify_steps"]
        }
        n_text = len(base.tokens)
        rows = {}
        for name, r in (("speculative", spec), ("plain", base)):
            d = r.stats.to_dict()
            d["completion_tokens"] = n_text
            d["completion_tokens_per_s"] = n_text / r.stats.total_ms * 1000 if r.stats.total_ms else 0.0
            rows[name] = d
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "bundle": str(bundle),
                        "target": what,
                        "prompt": prompt,
                        "text": spec.text,
                        "identical_to_plain": same,
                        "speedup": speedup,
                        "acceptance_rate": spec.stats.acceptance_rate,
                        "mean_accepted": spec.stats.mean_accepted,
                        "finish_reason": base.stats.finish_reason,
                        "drafting": {"k": chosen, "chosen_by": by, "probe": probe},
                        "verify_curve": {
                            str(n): {"mean_width": w, "decode_steps": s} for n, (w, s) in sorted(curve.items())
                        },
                        "explanation": fig,
                        "stats": rows,
                    },
                    indent=2,
                )
            )
            return
        _print_report(con, rows, speedup, same, chosen, by, fig, curve, pipe.draft_name)


_ROWS = (
    ("completion_tokens_per_s", "tokens/s", "{:.1f}"),
    ("total_ms", "time ms", "{:.0f}"),
    ("completion_tokens", "tokens", "{}"),
    ("target_calls", "target calls", "{}"),
    ("drafted", "drafted", "{}"),
    ("accepted", "accepted", "{}"),
    ("acceptance_rate", "acceptance", "{:.2f}"),
    ("ttft_ms", "ttft ms", "{:.0f}"),
)


def _print_report(con, rows, speedup, same, k, by, fig, curve, draft_name) -> None:
    from rich.table import Table

    t = Table(title=f"speculative ({draft_name} drafter, k={k}) vs plain decoding")
    t.add_column("")
    for name in rows:
        t.add_column(name, justify="right")
    for key, label, fmt in _ROWS:
        vals = [
            None if name == "plain" and key in ("drafted", "accepted", "acceptance_rate") else rows[name].get(key)
            for name in rows
        ]
        t.add_row(label, *["" if v is None else fmt.format(v) for v in vals])
    t.add_row("speedup", f"{speedup:.2f}x", "1.00x")
    con.print(t)
    con.print(
        "speculative output "
        + ("[green]identical[/green] to plain decoding" if same else "[red]differs[/red] from plain decoding")
    )
    con.print(f"k={k}: {by}")
    step = fig["decode_step_ms"]
    pts = ", ".join(f"{n} tokens {s:.1f} steps" for n, (_, s) in sorted(curve.items()))
    con.print(f"\n[bold]Why {speedup:.2f}x[/bold] (this machine's measured costs):")
    con.print(
        f"  verify: one decode step (a 1-token target call) costs {step:.1f} ms; checking several tokens in "
        f"one call costs {pts}" + (" (flat would be 1.0)" if pts else "")
    )
    con.print(
        f"  drafter: {fig['draft_ms_per_token']:.2f} ms a token ({fig['draft_ms_per_token'] / step:.1%} of a "
        f"decode step); acceptance {fig['acceptance_rate']:.2f}, {fig['tokens_per_verify']:.2f} tokens per "
        f"verify call of {fig['verify_width']:.1f} tokens on average"
        + (
            f"; prompt lookup proposed {fig['lookup_drafted']} of the drafted tokens without a drafter call "
            f"({fig['lookup_accepted']} accepted)"
            if fig.get("lookup_drafted")
            else ""
        )
    )
    if fig["allowed_speedup"] is not None:
        con.print(
            f"  allowed here: {fig['tokens_per_verify']:.2f} tokens / ({fig['verify_steps']:.2f} steps per verify "
            f"+ {fig['draft_steps_per_round']:.2f} of drafting) = {fig['allowed_speedup']:.2f}x in decoding "
            f"(measured {speedup:.2f}x end to end)"
        )
    con.print(
        f"  projection, not measured here: where a verify call costs about one decode step (VNNI/AMX "
        f"CPUs, GPUs), the same drafter and rounds give {fig['projected_flat_verify']:.2f}x"
    )
