"""`edgespec run`: stream a generation to the terminal (`edgespec profile` lives in edgespec.profiling)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import EdgespecError
from .profiling.cli import _FIXED_SHAPES

_POLICIES = ("auto", "autoregressive", "draft", "ngram")


def _k(value: str) -> int:
    if value in ("auto", "-1"):
        return -1
    try:
        return int(value)
    except ValueError:
        raise EdgespecError(f"--k must be a number or 'auto' (got {value!r}).") from None


def _load(
    bundle,
    *,
    draft,
    device,
    draft_device,
    precision,
    kv_precision,
    threads,
    backend,
    fixed_shapes,
    no_verify,
    profile,
    adapt_log=None,
):
    """Pipeline.load with the CLI's options (those of _device_options, by parameter name); profile:
    "auto" (this device's saved profile, if it matches), "none", or a profile file (which must
    match). Says in one line (stderr) what a saved profile changes, or why one is not used."""
    from .pipeline import Pipeline

    pipe = Pipeline.load(
        bundle,
        draft=None if draft == "none" else (draft or "auto"),
        device=device,
        draft_device=draft_device,
        precision=precision,
        kv_precision=kv_precision,
        threads=threads,
        backend=backend,
        fixed_shapes=_FIXED_SHAPES[fixed_shapes],
        profile={"auto": True, "none": False}.get(profile, profile),
        verify=not no_verify,
        adapt_log=adapt_log,
    )
    if pipe.profile is not None and pipe.profile.note:
        click.echo(pipe.profile.note, err=True)
    return pipe


def _device_options(f):
    for opt in reversed(
        [
            click.option(
                "--draft",
                "draft",
                default=None,
                metavar="NAME|none",
                help="Drafter from the bundle (default: the first same-vocabulary or trimmed one, else "
                "the first cross-vocabulary one; 'none' loads no drafter).",
            ),
            click.option("--device", default="CPU", show_default=True, help="Target device: CPU, GPU, NPU, AUTO."),
            click.option("--draft-device", default=None, help="Drafter device (default: the target's)."),
            click.option(
                "--precision",
                type=click.Choice(["f32", "f16", "bf16"]),
                default=None,
                help="Inference precision hint (default: the device's).",
            ),
            click.option(
                "--kv-precision",
                type=click.Choice(["f32", "f16", "bf16", "u8"]),
                default=None,
                help="KV-cache precision (default: the device's).",
            ),
            click.option("--threads", type=int, default=0, help="Inference threads (0 = device default)."),
            click.option(
                "--backend",
                type=click.Choice(["openvino", "openvino-paged", "openvino-stateful", "onnxruntime"]),
                default=None,
                help="Inference backend (default: the saved profile's, else openvino): openvino (IR with paged "
                "attention on the CPU where it converts, else "
                "the stateful graph), openvino-paged / openvino-stateful (force one), onnxruntime (ONNX "
                "bundles on the CPU).",
            ),
            click.option(
                "--fixed-shapes",
                type=click.Choice(list(_FIXED_SHAPES)),
                default="auto",
                show_default=True,
                help="Fixed-width copies of the paged CPU models for the loop's most frequent call widths "
                "(faster calls, each copy holds the weights again): auto = models up to 64 MiB of weights.",
            ),
            click.option(
                "--no-verify",
                "no_verify",
                is_flag=True,
                help="Check only the sizes of the bundle's files, not the digests the manifest records.",
            ),
            click.option(
                "--profile",
                "profile",
                default="auto",
                show_default=True,
                metavar="auto|none|FILE",
                help="Start from the configuration `edgespec profile` saved for this device and bundle "
                "(backend, drafter, policy, k; flags given here win): auto = if one matches, none = "
                "ignore it, FILE = that profile (an error if it was measured elsewhere).",
            ),
        ]
    ):
        f = opt(f)
    return f


def _stats_table(rows: dict[str, dict], title: str):
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    for name in rows:
        t.add_column(name, justify="right")
    keys = next(iter(rows.values())).keys()
    for key in keys:
        vals = []
        for r in rows.values():
            v = r.get(key)
            vals.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        t.add_row(key, *vals)
    return t


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("bundle", type=click.Path(path_type=Path))
    @click.argument("prompt")
    @click.option(
        "--policy",
        type=click.Choice(_POLICIES),
        default="auto",
        show_default=True,
        help="auto = the drafter if one is loaded, else plain decoding.",
    )
    @click.option("--k", "k", default="auto", show_default=True, help="Draft tokens per round (1..32) or 'auto'.")
    @click.option("--k-max", type=int, default=8, show_default=True, help="Upper bound of adaptive k.")
    @click.option(
        "--draft-window",
        type=int,
        default=None,
        help="The most context tokens the drafter reads (its first 4 and the latest ones; the output "
        "does not change); 0 = all its context holds.  [default: the runtime's, 1024]",
    )
    @click.option(
        "--lookup/--no-lookup",
        default=True,
        show_default=True,
        help="With a drafter: a round whose context ends with 3-4 tokens seen before proposes what "
        "followed them there instead of calling the drafter (the output does not change).",
    )
    @click.option("--max-new-tokens", type=int, default=128, show_default=True)
    @click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy.")
    @click.option("--top-k", type=int, default=0)
    @click.option("--top-p", type=float, default=1.0)
    @click.option("--seed", type=int, default=0)
    @click.option("--stop", multiple=True, help="Stop string (repeatable).")
    @click.option("--ignore-eos", is_flag=True)
    @_device_options
    @click.option("--stats", "show_stats", is_flag=True, help="Print the generation's stats (stderr).")
    @click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object (text, tokens, stats) instead of streaming."
    )
    @click.option(
        "--adapt-log",
        type=click.Path(path_type=Path),
        default=None,
        metavar="DIR",
        help="Opt-in: append this prompt and its output to DIR/adapt-log.jsonl, the data `edgespec adapt` "
        "fine-tunes drafters on (nothing is recorded without it).",
    )
    def run(
        bundle,
        prompt,
        policy,
        k,
        k_max,
        draft_window,
        lookup,
        max_new_tokens,
        temperature,
        top_k,
        top_p,
        seed,
        stop,
        ignore_eos,
        show_stats,
        as_json,
        adapt_log,
        **load_options,  # _device_options' options, for _load
    ):
        """Generate from PROMPT with the models of BUNDLE, streaming text to the terminal (Ctrl-C stops it, exit 130)."""
        pipe = _load(bundle, adapt_log=adapt_log, **load_options)
        ctx = click.get_current_context()
        given = {n: ctx.get_parameter_source(n) != click.core.ParameterSource.DEFAULT for n in ("policy", "k")}
        # a flag left at its default leaves the saved profile's choice (pipe.defaults) in force
        if pipe.defaults:
            policy = policy if given["policy"] else None
            k = k if given["k"] else None
        config = dict(
            max_new_tokens=max_new_tokens,
            policy=policy,
            k=None if k is None else _k(k),
            k_max=k_max,
            draft_window=draft_window,
            lookup=lookup,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            stop=list(stop),
            ignore_eos=ignore_eos,
        )
        if as_json:
            res = pipe.generate(prompt, **config)
            click.echo(
                json.dumps(
                    {
                        "text": res.text,
                        "tokens": res.tokens,
                        "draft": pipe.draft_name,
                        "runtime": pipe.info,
                        "stats": res.stats.to_dict(),
                    },
                    ensure_ascii=False,
                )
            )
            return

        def write(chunk: str) -> None:
            sys.stdout.write(chunk)
            sys.stdout.flush()

        try:
            res = pipe.generate(prompt, streamer=write, **config)
        except KeyboardInterrupt:
            sys.stdout.write("\n")  # the partial text ends its line; the CLI reports the interruption
            raise
        sys.stdout.write("\n")
        if show_stats:
            from rich.console import Console

            d = res.stats.to_dict()
            info = pipe.info
            d["draft"] = f"{pipe.draft_name} ({info['draft']['kind']})" if info["draft"] else "none"
            d["backend"] = info["target"]["backend"] + (f" / draft {info['draft']['backend']}" if info["draft"] else "")
            d["text"] = info["text"]
            d["integrity"] = info["integrity"]  # verified | sizes | none (a bundle exported before digests)
            for key in ("fixed_widths", "split_widths"):
                d[key] = (
                    "; ".join(
                        f"{who} {','.join(map(str, m[key]))}"
                        for who, m in (("target", info["target"]), ("draft", info["draft"] or {}))
                        if m.get(key)
                    )
                    or "none"
                )
            Console(stderr=True).print(_stats_table({"value": d}, "edgespec run"))
