"""`edgespec export`: HF checkpoints -> a bundle. Heavy modules are imported inside the command."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import click

from .errors import EdgespecError


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool):
    """With --json, stdout carries only the JSON: route everything else (C libraries too) to stderr."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _load_api():
    """export.api itself is light (numpy); the heavy extra is checked here, imported when used."""
    import importlib.util

    missing = [m for m in ("torch", "transformers", "optimum", "nncf") if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgespecError(
            f"The export extra is not installed ({', '.join(missing)} missing); pip install 'edgespec[export]'."
        )
    from .export import api  # edgespec.export is the repo's export/ (see pyproject's wheel.packages)

    return api


def register(cli: click.Group) -> None:
    @cli.command("export")
    @click.argument("target", required=False)
    @click.option(
        "--draft",
        "drafts",
        multiple=True,
        metavar="DRAFT",
        help="A drafter checkpoint (repeatable); its relation to the target is detected.",
    )
    @click.option("-o", "--output", "out", required=True, metavar="BUNDLE", help="Bundle directory to create.")
    @click.option("--format", "fmt", type=click.Choice(["openvino", "onnx"]), default="openvino", show_default=True)
    @click.option(
        "--weights",
        type=click.Choice(["int4", "int8", "fp16", "fp32"]),
        default="int4",
        show_default=True,
        help="Weight precision (of the target; drafters: --draft-weights).",
    )
    @click.option(
        "--draft-weights",
        type=click.Choice(["int4", "int8", "fp16", "fp32"]),
        default=None,
        help="Drafter weight precision (default: int8 under an int4 target, else --weights).",
    )
    @click.option(
        "--group-size",
        type=int,
        default=None,
        help="INT4 group size (-1 = channel-wise; default: the family preset, usually 128).",
    )
    @click.option("--ratio", type=float, default=None, help="Share of weights in INT4, the rest INT8 (0, 1].")
    @click.option("--sym", is_flag=True, default=None, help="Symmetric INT4 (default asymmetric).")
    @click.option("--awq", is_flag=True, help="Activation-aware INT4 (needs --dataset).")
    @click.option("--scale-estimation", is_flag=True, help="Data-aware INT4 scales (needs --dataset).")
    @click.option(
        "--dataset",
        type=click.Path(),
        default=None,
        metavar="PROMPTS",
        help="Text file, one prompt per line: calibration and validation prompts.",
    )
    @click.option(
        "--preset",
        type=click.Choice(["npu"]),
        default=None,
        help="Device preset: npu = symmetric INT4, ratio 1, channel-wise above 1B parameters.",
    )
    @click.option("--pair", default=None, metavar="NAME", help="A known pair from models/pairs.json.")
    @click.option(
        "--models-dir",
        type=click.Path(),
        default=None,
        help="Where --pair looks for checkpoints (default: the current directory and the "
        "repository; hub ids also in the HF cache).",
    )
    @click.option(
        "--draft-name",
        "draft_names",
        multiple=True,
        help="Names for the drafters, in --draft order (default: their directory names).",
    )
    @click.option(
        "--accuracy-level",
        type=click.IntRange(0, 4),
        default=None,
        help="ONNX only: MatMulNBits accuracy_level of the int4/int8 models (4 = int8 compute, the "
        "fastest on CPUs; default unset = float32 compute).",
    )
    @click.option(
        "--min-agreement",
        type=float,
        default=None,
        help="Fail below this top-1 agreement with torch (default per precision).",
    )
    @click.option("--no-validate", is_flag=True, help="Skip the comparison with torch.")
    @click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
    @click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
    def export_cmd(
        target,
        drafts,
        out,
        fmt,
        weights,
        draft_weights,
        group_size,
        ratio,
        sym,
        awq,
        scale_estimation,
        dataset,
        preset,
        pair,
        models_dir,
        draft_names,
        accuracy_level,
        min_agreement,
        no_validate,
        force,
        as_json,
    ):
        """Export TARGET (and --draft drafters) to an OpenVINO or ONNX bundle.

        \b
        TARGET and DRAFT are local Hugging Face model directories (a hub id works where the
        HF cache or the hub has it). Examples:
          edgespec export ./Llama-3.1-8B --draft ./FastDraft-150M -o bundle
          edgespec export ./phi3 -o bundle-npu --preset npu
          edgespec export --pair demo -o demo-bundle
        """
        from . import registry

        if pair:
            if target or drafts:
                raise EdgespecError("--pair names both target and drafters; drop TARGET and --draft, or --pair.")
            target_dir, draft_dirs, pair_names = registry.resolve_pair(pair, models_dir)
            target, drafts = str(target_dir), tuple(str(d) for d in draft_dirs)
            draft_names = draft_names or tuple(pair_names or ())
        if not target:
            raise EdgespecError("Name the model to export: `edgespec export TARGET -o BUNDLE` (or --pair NAME).")
        sym = True if sym else None  # absent: the family/preset decides
        api = _load_api()
        # export_bundle checks the options (check_options) before it writes or loads anything
        with _stdout_to_stderr(as_json):
            manifest = api.export_bundle(
                target,
                out,
                list(drafts),
                format=fmt,
                weights=weights,
                group_size=group_size,
                ratio=ratio,
                sym=sym,
                awq=awq,
                scale_estimation=scale_estimation,
                dataset=dataset,
                preset=preset,
                draft_names=list(draft_names) or None,
                force=force,
                validate=not no_validate,
                min_agreement=min_agreement,
                progress=True,
                draft_weights=draft_weights,
                accuracy_level=accuracy_level,
            )
        if as_json:
            click.echo(json.dumps(api.summary(manifest, out), indent=2))
