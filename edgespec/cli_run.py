"""`edgespec run` (stream a generation to the terminal) and `edgespec profile` (autoregressive vs
speculative vs n-gram, side by side on the same prompts, on this machine)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import click

from .errors import EdgespecError

_POLICIES = ("auto", "autoregressive", "draft", "ngram")


def _k(value: str) -> int:
    if value in ("auto", "-1"):
        return -1
    try:
        return int(value)
    except ValueError:
        raise EdgespecError(f"--k must be a number or 'auto' (got {value!r}).") from None


_FIXED_SHAPES = {"auto": None, "on": True, "off": False}


def _load(bundle, draft, device, draft_device, precision, kv_precision, threads, backend="openvino", fixed_shapes="auto",
          verify=True, adapt_log=None):
    from .pipeline import Pipeline

    return Pipeline.load(bundle, draft=None if draft == "none" else (draft or "auto"), device=device,
                         draft_device=draft_device, precision=precision, kv_precision=kv_precision, threads=threads,
                         backend=backend, fixed_shapes=_FIXED_SHAPES[fixed_shapes], verify=verify, adapt_log=adapt_log)


def _device_options(f):
    for opt in reversed([
        click.option("--draft", "draft", default=None, metavar="NAME|none",
                     help="Drafter from the bundle (default: the first same-vocabulary or trimmed one, else "
                          "the first cross-vocabulary one; 'none' loads no drafter)."),
        click.option("--device", default="CPU", show_default=True, help="Target device: CPU, GPU, NPU, AUTO."),
        click.option("--draft-device", default=None, help="Drafter device (default: the target's)."),
        click.option("--precision", type=click.Choice(["f32", "f16", "bf16"]), default=None,
                     help="Inference precision hint (default: the device's)."),
        click.option("--kv-precision", type=click.Choice(["f32", "f16", "bf16", "u8"]), default=None,
                     help="KV-cache precision (default: the device's)."),
        click.option("--threads", type=int, default=0, help="Inference threads (0 = device default)."),
        click.option("--backend", type=click.Choice(["openvino", "openvino-paged", "openvino-stateful", "onnxruntime"]),
                     default="openvino", show_default=True,
                     help="Inference backend: openvino (IR with paged attention on the CPU where it converts, else "
                          "the stateful graph), openvino-paged / openvino-stateful (force one), onnxruntime (ONNX "
                          "bundles on the CPU)."),
        click.option("--fixed-shapes", type=click.Choice(list(_FIXED_SHAPES)), default="auto", show_default=True,
                     help="Fixed-width copies of the paged CPU models for the loop's most frequent call widths "
                          "(faster calls, each copy holds the weights again): auto = models up to 64 MiB of weights."),
        click.option("--no-verify", "no_verify", is_flag=True,
                     help="Check only the sizes of the bundle's files, not the digests the manifest records."),
    ]):
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
    @click.option("--policy", type=click.Choice(_POLICIES), default="auto", show_default=True,
                  help="auto = the drafter if one is loaded, else plain decoding.")
    @click.option("--k", "k", default="auto", show_default=True, help="Draft tokens per round (1..32) or 'auto'.")
    @click.option("--k-max", type=int, default=8, show_default=True, help="Upper bound of adaptive k.")
    @click.option("--draft-window", type=int, default=None,
                  help="The most context tokens the drafter reads (its first 4 and the latest ones; the output "
                       "does not change); 0 = all its context holds.  [default: the runtime's, 1024]")
    @click.option("--max-new-tokens", type=int, default=128, show_default=True)
    @click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy.")
    @click.option("--top-k", type=int, default=0)
    @click.option("--top-p", type=float, default=1.0)
    @click.option("--seed", type=int, default=0)
    @click.option("--stop", multiple=True, help="Stop string (repeatable).")
    @click.option("--ignore-eos", is_flag=True)
    @_device_options
    @click.option("--stats", "show_stats", is_flag=True, help="Print the generation's stats (stderr).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (text, tokens, stats) instead of streaming.")
    @click.option("--adapt-log", type=click.Path(path_type=Path), default=None, metavar="DIR",
                  help="Opt-in: append this prompt and its output to DIR/adapt-log.jsonl, the data `edgespec adapt` "
                       "fine-tunes drafters on (nothing is recorded without it).")
    def run(bundle, prompt, policy, k, k_max, draft_window, max_new_tokens, temperature, top_k, top_p, seed, stop, ignore_eos,
            draft, device, draft_device, precision, kv_precision, threads, backend, fixed_shapes, no_verify, show_stats, as_json,
            adapt_log):
        """Generate from PROMPT with the models of BUNDLE, streaming text to the terminal (Ctrl-C stops it, exit 130)."""
        pipe = _load(bundle, draft, device, draft_device, precision, kv_precision, threads, backend, fixed_shapes,
                     not no_verify, adapt_log=adapt_log)
        config = dict(max_new_tokens=max_new_tokens, policy=policy, k=_k(k), k_max=k_max, draft_window=draft_window,
                      temperature=temperature,
                      top_k=top_k, top_p=top_p, seed=seed, stop=list(stop), ignore_eos=ignore_eos)
        if as_json:
            res = pipe.generate(prompt, **config)
            click.echo(json.dumps({"text": res.text, "tokens": res.tokens, "draft": pipe.draft_name,
                                   "runtime": pipe.info, "stats": res.stats.to_dict()}, ensure_ascii=False))
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
                d[key] = "; ".join(f"{who} {','.join(map(str, m[key]))}" for who, m in
                                   (("target", info["target"]), ("draft", info["draft"] or {})) if m.get(key)) or "none"
            Console(stderr=True).print(_stats_table({"value": d}, "edgespec run"))

    @cli.command()
    @click.argument("bundle", type=click.Path(path_type=Path))
    @click.option("--prompts", "prompts_file", type=click.Path(path_type=Path), default=None,
                  help="A .json list of prompts, a .jsonl file with a \"prompt\" per line, or a text file with "
                       "one prompt per line.")
    @click.option("--k", "k", default="4", show_default=True, help="Draft length (1..32) or 'auto'.")
    @click.option("--max-new-tokens", type=int, default=64, show_default=True)
    @click.option("--repeats", type=int, default=3, show_default=True, help="Timed runs per prompt and configuration.")
    @_device_options
    @click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
    def profile(bundle, prompts_file, k, max_new_tokens, repeats, draft, device, draft_device, precision, kv_precision,
                threads, backend, fixed_shapes, no_verify, as_json):
        """Autoregressive vs speculative vs n-gram on the same prompts, on this machine.

        Greedy, ignore_eos, the same max_new_tokens for all; one warm-up run per configuration,
        then runs interleaved (configuration after configuration, prompt after prompt) and the
        median per configuration. Speedup = tokens/s over autoregressive's, from this run."""
        for flag, value in (("--max-new-tokens", max_new_tokens), ("--repeats", repeats)):
            if value < 1:
                raise EdgespecError(f"{flag} must be at least 1 (got {value}).")
        prompts = _read_prompts(prompts_file)
        pipe = _load(bundle, draft, device, draft_device, precision, kv_precision, threads, backend, fixed_shapes,
                     not no_verify)
        configs = {"autoregressive": dict(policy="autoregressive")}
        if pipe.draft_name:
            configs[f"draft:{pipe.draft_name}"] = dict(policy="draft", k=_k(k))
        configs["ngram"] = dict(policy="ngram", k=_k(k))
        report = run_profile(pipe, prompts, configs, max_new_tokens, repeats)
        report.update(bundle=str(bundle), backend=backend, device=device, draft_device=draft_device or device, k=k,
                      max_new_tokens=max_new_tokens, repeats=repeats, prompts=len(prompts))
        if as_json:
            click.echo(json.dumps(report, indent=2))
            return
        from rich.console import Console

        Console().print(_stats_table(report["configs"], f"edgespec profile — {len(prompts)} prompts, "
                                     f"{max_new_tokens} new tokens, median of {repeats}"))


_DEFAULT_PROMPTS = [
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "import os\n\n\ndef walk(root):\n    for dirpath, dirnames, filenames in os.walk(root):\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
]


_PROMPT_FORMS = ("a .json list of strings, a .jsonl file with a \"prompt\" per line, or a text file with one "
                 "prompt per line")


def _read_prompts(path: Path | None) -> list[str]:
    """The prompts of ``edgespec profile --prompts``: one sentence for a file that holds none."""
    if path is None:
        return list(_DEFAULT_PROMPTS)
    if not path.exists():
        raise EdgespecError(f"prompt file {path} does not exist; pass {_PROMPT_FORMS}.")
    if path.is_dir():
        raise EdgespecError(f"prompt file {path} is a directory; pass {_PROMPT_FORMS}.")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise EdgespecError(f"prompt file {path} cannot be read ({e.strerror}); check its permissions.") from None
    if b"\0" in raw:
        raise EdgespecError(f"prompt file {path} is not a text file (it holds NUL bytes); pass {_PROMPT_FORMS}.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise EdgespecError(f"prompt file {path} is not UTF-8 text (byte {e.start} is not UTF-8); save it as "
                            "UTF-8.") from None
    if path.suffix == ".json":
        try:
            prompts = json.loads(text)
        except json.JSONDecodeError as e:
            raise EdgespecError(f"prompt file {path} is not valid JSON ({e.msg} at line {e.lineno}); it must hold "
                                "a JSON list of strings.") from None
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise EdgespecError(f"prompt file {path} must hold a JSON list of strings.")
    elif path.suffix == ".jsonl":
        prompts = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not (isinstance(row, dict) and isinstance(row.get("prompt"), str)):
                raise EdgespecError(f"line {n} of prompt file {path} is not a JSON object with a \"prompt\" string; "
                                    "each line of a .jsonl prompt file must be one.")
            prompts.append(row["prompt"])
    else:
        prompts = text.splitlines()
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise EdgespecError(f"prompt file {path} holds no prompts; add at least one.")
    return prompts


def run_profile(pipe, prompts: list[str], configs: dict[str, dict], max_new_tokens: int, repeats: int) -> dict:
    """Interleaved runs; returns {"configs": {name: metrics}} with medians and phase shares."""
    common = dict(max_new_tokens=max_new_tokens, ignore_eos=True)
    for cfg in configs.values():  # warm-up: compile caches, allocator pools
        pipe.generate(prompts[0], **common, **cfg)
    runs: dict[str, list] = {name: [] for name in configs}
    for _ in range(repeats):
        for prompt in prompts:
            for name, cfg in configs.items():
                runs[name].append(pipe.generate(prompt, **common, **cfg).stats)
    out: dict[str, dict] = {}
    for name, stats in runs.items():
        total = sum(s.total_ms for s in stats)
        gen = sum(s.generated_tokens for s in stats)
        out[name] = {
            "tokens_per_s": statistics.median(s.tokens_per_s for s in stats),
            "tpot_ms": statistics.median(s.tpot_ms for s in stats),
            "ttft_ms": statistics.median(s.ttft_ms for s in stats),
            "mean_accepted": statistics.median(s.mean_accepted for s in stats),
            "acceptance_rate": statistics.median(s.acceptance_rate for s in stats),
            "draft_ms_per_token": sum(s.draft_ms for s in stats) / gen,
            "verify_ms_per_token": sum(s.verify_ms for s in stats) / gen,
            "other_ms_per_token": sum(s.other_ms for s in stats) / gen,
            "other_share": sum(s.other_ms for s in stats) / total,
        }
    ar = out["autoregressive"]["tokens_per_s"]
    for m in out.values():
        m["speedup"] = m["tokens_per_s"] / ar if ar else 0.0
    return {"configs": out}
