"""`edgespec profile`: which backend, drafter, policy and k pay on this device, measured, reported
(JSON, CSV, one offline HTML page) and saved beside the bundle for `edgespec run` and
`Pipeline.load`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import EdgespecError, check_ranges

_FIXED_SHAPES = {"auto": None, "on": True, "off": False}


def parse_ks(value: str, max_k: int) -> tuple[list[int], bool]:
    """--k: "auto" (adaptive k only), "A..B" (a range), "A,B,..." or one number; every k in 1..max_k.
    Returns (fixed k values, whether adaptive k is measured too: always, beside fixed ones)."""
    v = value.strip().lower()
    if v in ("auto", "adaptive"):
        return [], True
    try:
        if ".." in v:
            lo, hi = (int(x) for x in v.split("..", 1))
            ks = list(range(lo, hi + 1))
        else:
            ks = [int(x) for x in v.split(",") if x.strip()]
    except ValueError:
        raise EdgespecError(f"--k must be 'auto', a range like 1..8 or a list like 2,3,4 (got {value!r}).") from None
    if not ks or not all(1 <= k <= max_k for k in ks):
        raise EdgespecError(f"--k values must lie in 1..{max_k} (got {value!r}); pass e.g. --k 1..8.")
    return sorted(set(ks)), True


def bundle_backends(bundle, wanted: str) -> tuple[list[str], set[str]]:
    """(backends to profile, those the cost probe can time) for --backends auto|LIST: an OpenVINO IR
    bundle runs on openvino; an ONNX bundle on onnxruntime (where its library loads) and openvino."""
    import importlib.util

    from ..pipeline import BACKENDS, _ort_library

    fmt = bundle.target.raw["format"]
    runnable = ["openvino"] if fmt == "openvino" else (["onnxruntime"] if _ort_library() else []) + ["openvino"]
    # the probe times OpenVINO IR, and ONNX graphs on ONNX Runtime through its Python package
    ort_probe = fmt == "onnx" and importlib.util.find_spec("onnxruntime") is not None
    probe = {"openvino"} if fmt == "openvino" else ({"onnxruntime"} if ort_probe else set())
    if wanted == "auto":
        return runnable, probe
    names = [b.strip() for b in wanted.split(",") if b.strip()]
    for b in names:
        if b not in BACKENDS:
            raise EdgespecError(f"--backends: unknown backend {b!r}; use auto or a list of {', '.join(BACKENDS)}.")
        if b == "onnxruntime" and fmt != "onnx":
            raise EdgespecError(
                "--backends onnxruntime needs an ONNX bundle (edgespec export --format onnx); this one is OpenVINO IR."
            )
        if b in ("openvino-paged", "openvino-stateful") and fmt != "openvino":
            raise EdgespecError(f"--backends {b} needs an OpenVINO IR bundle; this one is ONNX.")
    if not names:
        raise EdgespecError("--backends is empty; pass auto or a list like openvino,onnxruntime.")
    return names, {
        b
        for b in names
        if (b in ("openvino", "openvino-paged") and fmt == "openvino") or (b == "onnxruntime" and ort_probe)
    }


def resolve_bundle(arg: str) -> Path:
    """BUNDLE as given, or "demo": the built-in demo pair's bundle (exported on first use)."""
    p = Path(arg)
    if arg == "demo" and not p.exists():
        from ..demo import ensure_bundle

        return ensure_bundle()
    return p


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("bundle")
    @click.option(
        "--prompts",
        "prompts_file",
        type=click.Path(path_type=Path),
        default=None,
        help='Prompts: a .json list, a .jsonl file (objects with "prompt") or text, one per line '
        "(default: three short code prompts).",
    )
    @click.option(
        "--drafts",
        default="all",
        show_default=True,
        help="Drafters to profile: all, none, or a comma list of the bundle's drafter names.",
    )
    @click.option(
        "--backends",
        default="auto",
        show_default=True,
        help="auto (every backend the bundle runs on) or a comma list: openvino, openvino-paged, "
        "openvino-stateful, onnxruntime.",
    )
    @click.option(
        "--k",
        "k",
        default="2..4",
        show_default=True,
        help="Draft lengths to measure: a range (1..8), a list (2,4) or auto; adaptive k is always measured too.",
    )
    @click.option("--ngram-k", type=int, default=4, show_default=True, help="n-gram draft length (1..32).")
    @click.option(
        "--max-new-tokens", type=int, default=64, show_default=True, help="New tokens per generation (1..4096)."
    )
    @click.option(
        "--repeats",
        type=int,
        default=3,
        show_default=True,
        help="Timed runs per prompt and configuration (median and spread).",
    )
    @click.option(
        "--probe",
        "probe_effort",
        type=click.Choice(["full", "quick", "off"]),
        default="full",
        show_default=True,
        help="Per-call cost probe: full (8 calls a figure in 6 rounds, per pass), quick (3 in 2: large "
        "models on slow machines), off (no cost curve, no ideal speedup or efficiency).",
    )
    @click.option("--device", default="CPU", show_default=True, help="Target device: CPU, GPU, NPU, AUTO.")
    @click.option(
        "--precision",
        type=click.Choice(["f32", "f16", "bf16"]),
        default=None,
        help="Inference precision hint (default: the device's).",
    )
    @click.option(
        "--kv-precision",
        type=click.Choice(["f32", "f16", "bf16", "u8"]),
        default=None,
        help="KV-cache precision (default: the device's).",
    )
    @click.option("--threads", type=int, default=0, help="Inference threads (0 = device default; at most 1024).")
    @click.option("--fixed-shapes", type=click.Choice(list(_FIXED_SHAPES)), default="auto", show_default=True)
    @click.option(
        "-o",
        "--output",
        "out_dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Report directory (profile.json, profile.csv, profile.html) "
        "[default: BUNDLE/profiles/<device-key>-report, replaced each run].",
    )
    @click.option("--force", is_flag=True, help="Replace a non-empty --output directory.")
    @click.option("--no-save", is_flag=True, help="Do not save the recommendation beside the bundle.")
    @click.option("--json", "as_json", is_flag=True, help="Print the JSON report to stdout.")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def profile(
        bundle,
        prompts_file,
        drafts,
        backends,
        k,
        ngram_k,
        max_new_tokens,
        repeats,
        probe_effort,
        device,
        precision,
        kv_precision,
        threads,
        fixed_shapes,
        out_dir,
        force,
        no_save,
        as_json,
        quiet,
    ):
        """Measure which backend, drafter and k pay on this device, and recommend one.

        \b
        Times this device's per-call costs (the target's call against its number of input
        tokens, each drafter's calls, the drafter's prompt read), then runs plain decoding, each
        drafter at each k and adaptive, and n-gram on the prompts, interleaved, with warm-up and
        repeats. Writes a JSON, CSV and HTML report, and saves the recommended configuration in
        BUNDLE/profiles/ for this device: `edgespec run` and Pipeline.load start from it.
        Ctrl-C writes what was measured so far (no recommendation is saved)."""
        # one sentence for a number out of range (click's own check prints a usage block)
        check_ranges(
            ("--ngram-k", ngram_k, 1, 32),
            ("--max-new-tokens", max_new_tokens, 1, 4096),
            ("--repeats", repeats, 1, 100),
            ("--threads", threads, 0, 1024),
        )
        code = run_profile_command(
            bundle=bundle,
            prompts_file=prompts_file,
            drafts=drafts,
            backends=backends,
            k=k,
            ngram_k=ngram_k,
            max_new_tokens=max_new_tokens,
            repeats=repeats,
            probe_effort=probe_effort,
            device=device,
            precision=precision,
            kv_precision=kv_precision,
            threads=threads,
            fixed_shapes=fixed_shapes,
            out_dir=out_dir,
            force=force,
            save=not no_save,
            as_json=as_json,
            quiet=quiet,
        )
        if code:
            raise click.exceptions.Exit(code)


def _check_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise EdgespecError(f"{out} exists and is a file; pass another --output directory.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise EdgespecError(f"{out} exists and is not empty; pass --force to replace it or another --output.")


def run_profile_command(
    *,
    bundle: str,
    prompts_file,
    drafts: str,
    backends: str,
    k: str,
    ngram_k: int,
    max_new_tokens: int,
    repeats: int,
    probe_effort: str,
    device: str,
    precision,
    kv_precision,
    threads: int,
    fixed_shapes: str,
    out_dir: Path | None,
    force: bool,
    save: bool,
    as_json: bool,
    quiet: bool,
) -> int:
    """The profile command's work (every input checked before anything is measured); returns the
    exit code (130 after Ctrl-C, with the partial report written)."""
    from rich.console import Console

    from .. import __version__
    from .. import bundle as bundle_mod
    from .._native import MAX_DRAFT
    from .prompts import read_prompts
    from .recommend import bundle_identity, device_identity, device_key, recommend, save_recommendation
    from .report import json_safe, write_report
    from .runs import plan, profile, stamp, summarize

    con = Console(stderr=True)
    if not con.is_terminal:  # a log or a pipe: room for the table's columns
        con = Console(stderr=True, width=170)
    prompts = read_prompts(prompts_file)  # a bad prompt file is named before anything loads
    path = resolve_bundle(bundle)
    b = bundle_mod.load(path)
    ks, adaptive = parse_ks(k, MAX_DRAFT)
    names = [d.name for d in b.drafts]
    if drafts == "all":
        chosen = names
    elif drafts == "none":
        chosen = []
    else:
        chosen = [x.strip() for x in drafts.split(",") if x.strip()]
        unknown = [x for x in chosen if x not in names]
        if unknown:
            raise EdgespecError(
                f"--drafts: the bundle has no drafter {unknown[0]!r} (it has: "
                f"{', '.join(names) or 'none'}); pass all, none or some of those."
            )
    back, probe_backends = bundle_backends(b, backends)
    if probe_effort == "off":
        probe_backends = set()
    ident = device_identity(device)
    key = device_key(ident)
    default_out = out_dir is None
    out = (path / "profiles" / f"{key}-report") if default_out else out_dir
    _check_out_dir(out, force or default_out)
    notes = []
    if not b.drafts:
        notes.append(
            "the bundle has no drafter: profiled plain decoding and n-gram only (add one with edgespec export --draft)"
        )
    elif not chosen:
        notes.append("--drafts none: profiled plain decoding and n-gram only")
    unprobed = [x for x in back if x not in probe_backends]
    if probe_effort == "off":
        notes.append("--probe off: no per-call costs, so no cost curve, ideal speedup or efficiency")
    elif unprobed:
        notes.append(
            "the per-call cost probe times OpenVINO IR, and ONNX graphs on ONNX Runtime; "
            + ", ".join(unprobed)
            + " on this bundle has no per-call costs here, so no ideal speedup or "
            "efficiency for it"
        )
    rel = {d.name: d.relation for d in b.drafts}
    configs = plan(back, [(n, rel[n]) for n in chosen], ks, adaptive and bool(chosen), ngram_k)
    load_kw = {
        "device": device,
        "precision": precision,
        "kv_precision": kv_precision,
        "threads": threads,
        "fixed_shapes": _FIXED_SHAPES[fixed_shapes],
    }

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    n_probes = sum(
        max(1, len({c.draft for c in configs if c.backend == x and c.draft})) for x in back if x in probe_backends
    )  # one probe per drafter (or the target alone) per backend
    total = n_probes * (1 + repeats) + len(configs) * (1 + repeats * len(prompts))
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=con,
        disable=quiet,
        transient=True,
    )
    started = stamp()
    with bar:
        task = bar.add_task("starting", total=total)

        def tick(desc: str, n: int) -> None:
            if desc:
                bar.update(task, description=desc)
            if n:
                bar.advance(task, n)

        tok = None
        try:
            from ..pipeline import Pipeline

            with Pipeline.load(path, draft="none", device=device, profile=False) as p:
                lengths = {pr: len(p.tokenize(pr)) for pr in prompts}
            tok = lengths.__getitem__
        except Exception:  # noqa: BLE001 - lengths then come from characters (~3.2 per token)
            pass
        measured = profile(
            path,
            prompts,
            configs,
            max_new_tokens=max_new_tokens,
            repeats=repeats,
            load_kw=load_kw,
            probe_backends=probe_backends,
            progress=tick,
            prompt_tokens=tok,
            probe_effort="full" if probe_effort == "off" else probe_effort,
        )
    sizes = {None: _weight_bytes(b.target)} | {d.name: _weight_bytes(d) for d in b.drafts}
    results = summarize(configs, measured, len(prompts), sizes)
    from .runs import cost_curves

    rec = None if measured["partial"] else recommend(results)
    report = {
        "edgespec": __version__,
        "started": started,
        "finished": stamp(),
        "partial": measured["partial"],
        "device": ident,
        "device_key": key,
        "bundle": {
            "path": str(path.resolve()),
            "identity": bundle_identity(path),
            "models": {
                m.name: {
                    "role": m.role,
                    "relation": m.relation,
                    "format": m.raw["format"],
                    "precision": (m.raw.get("weights") or {}).get("precision"),
                    "weight_bytes": sizes.get(None if m.role == "target" else m.name),
                }
                for m in b.models
            },
        },
        "run": {
            "prompts": len(prompts),
            "prompt_tokens": [tok(p) for p in prompts] if tok else None,
            "max_new_tokens": max_new_tokens,
            "repeats": repeats,
            "k": ks,
            "adaptive": adaptive,
            "ngram_k": ngram_k,
            "probe": probe_effort,
            "backends": back,
            "drafts": chosen,
            "device": device,
            "precision": precision,
            "kv_precision": kv_precision,
            "threads": threads,
            "fixed_shapes": fixed_shapes,
            "probe_context": measured["context"],
        },
        "costs": cost_curves(measured),
        "configs": results,
        "recommendation": rec,
        "notes": notes + measured["notes"],
        "process_peak_rss_mb": measured["process_peak_rss_mb"],
    }
    saved = None
    if rec and save:
        saved = save_recommendation(path, rec, ident, str(out.resolve()))
        report["saved"] = str(saved)
    write_report(report, out, force=True)
    if as_json:
        sys.stdout.write(json.dumps(json_safe(report), indent=1, default=str) + "\n")
        for n in report["notes"]:
            con.print(f"note: {n}", soft_wrap=True)
    else:
        _print_summary(con, report, out)
    if measured["partial"]:
        con.print(f"interrupted: wrote what was measured so far to {out} (no recommendation saved)")
        return 130
    if saved:
        con.print(f"saved the recommendation for this device: {saved} (edgespec run and Pipeline.load start from it)")
    return 0


def _weight_bytes(m) -> int | None:
    w = (m.raw.get("weights") or {}).get("bytes")
    if w:
        return int(w)
    return (
        sum(p.stat().st_size for p in m.dir.glob("*.bin"))
        or sum(p.stat().st_size for p in m.dir.glob("*.onnx*"))
        or None
    )


def _print_summary(con, report: dict, out: Path) -> None:
    from rich.table import Table

    for backend, c in report["costs"].items():
        t = c.get("target")
        if t and t.get("steps"):
            con.print(
                f"{backend}: one target call over n tokens, in decode steps (T(1) = {t['T_ar_ms']:.2f} ms, "
                f"context {c['context']}): " + ", ".join(f"{n}: {v:.2f}" for n, v in t["steps"].items())
            )
    table = Table(
        title=f"edgespec profile: {report['run']['prompts']} prompts, {report['run']['max_new_tokens']} new "
        f"tokens, median of {report['run']['repeats']}"
    )
    cols = (
        "tokens_per_s",
        "speedup",
        "spread",
        "acceptance_rate",
        "mean_accepted",
        "ideal_speedup",
        "efficiency",
        "efficiency_loop",
        "other_share",
    )
    table.add_column("configuration")
    for col in cols:
        table.add_column(col, justify="right")
    for name, m in report["configs"].items():
        if m.get("error"):
            table.add_row(name, f"error: {m['error'][:60]}", *[""] * (len(cols) - 1))
            continue
        table.add_row(name, *("–" if m.get(col) is None else f"{m[col]:.2f}" for col in cols))
    con.print(table)
    for n in report["notes"]:
        con.print(f"note: {n}", soft_wrap=True)
    rec = report.get("recommendation")
    if rec:
        con.print(f"recommended: {rec['config']} — {rec['why']}")
    con.print(f"report: {out / 'profile.html'} (and profile.json, profile.csv)")
