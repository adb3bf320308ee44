"""`edgespec adapt`: fine-tune a bundle's drafter on the target's outputs for the user's own data
(OmniDraft's online adaptation) and add it to the bundle. The work is in edgespec.export.draft.adapt.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import EdgespecError, check_ranges


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("bundle", type=click.Path(path_type=Path))
    @click.option(
        "--log",
        "log_dir",
        type=click.Path(path_type=Path),
        default=None,
        metavar="DIR",
        help="An adaptation log recorded with `edgespec run --adapt-log DIR` (prompts + the target's outputs).",
    )
    @click.option(
        "--prompts",
        "prompts_file",
        type=click.Path(path_type=Path),
        default=None,
        metavar="FILE",
        help='Or prompts (JSONL, {"prompt": ...} a line): the target writes the outputs first.',
    )
    @click.option("--drafter", default=None, metavar="NAME", help="The bundle's drafter to adapt (default: its first).")
    @click.option(
        "--source",
        type=click.Path(path_type=Path),
        default=None,
        metavar="DIR",
        help="The drafter's Hugging Face checkpoint (default: the one the bundle was exported from).",
    )
    @click.option("--steps", type=int, default=200, show_default=True, help="Training steps.")
    @click.option("--batch", type=int, default=8, show_default=True, help="Sequences per step.")
    @click.option("--lr", type=float, default=3e-4, show_default=True, help="Peak learning rate (AdamW, cosine).")
    @click.option(
        "--heldout",
        type=float,
        default=0.2,
        show_default=True,
        help="Share of the prompts kept out of training to measure acceptance on.",
    )
    @click.option(
        "--max-new-tokens",
        type=int,
        default=128,
        show_default=True,
        help="Output length the target writes per prompt (with --prompts) and per held-out measurement.",
    )
    @click.option("--k", "k", type=int, default=4, show_default=True, help="Draft length for the acceptance figures.")
    @click.option("--name", default=None, help="Name of the new drafter (default: DRAFTER-adapted).")
    @click.option("--seed", type=int, default=0)
    @click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
    def adapt(
        bundle,
        log_dir,
        prompts_file,
        drafter,
        source,
        steps,
        batch,
        lr,
        heldout,
        max_new_tokens,
        k,
        name,
        seed,
        as_json,
    ):
        """Adapt a drafter of BUNDLE to your data; it is added as a new drafter (the original stays).

        Reports acceptance_rate and mean_accepted before and after on the held-out prompts.
        """
        from .cli_draft import _export_side

        if (log_dir is None) == (prompts_file is None):
            raise EdgespecError(
                "pass either --log DIR (a recorded adaptation log) or --prompts FILE, not both or neither."
            )
        check_ranges(
            ("--steps", steps, 1, 10**7),
            ("--batch", batch, 1, 4096),
            ("--k", k, 1, 32),
            ("--max-new-tokens", max_new_tokens, 1, 1 << 20),
        )
        if not 0 < heldout < 1:
            raise EdgespecError(f"--heldout must be a share between 0 and 1 (got {heldout}).")
        if not lr > 0:
            raise EdgespecError(f"--lr must be positive (got {lr}).")
        _export_side()
        from .export.draft import adapt as ad

        report = ad.run(
            bundle,
            log_dir=log_dir,
            prompts_file=prompts_file,
            drafter=drafter,
            source=source,
            steps=steps,
            batch=batch,
            lr=lr,
            heldout=heldout,
            max_new_tokens=max_new_tokens,
            k=k,
            name=name,
            seed=seed,
            progress=not as_json,
        )
        if as_json:
            click.echo(json.dumps(report, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(
            title=f"{report['parent']} -> {report['name']} on {report['heldout_prompts']} held-out prompts (k={k})"
        )
        for c in ("drafter", "acceptance_rate", "mean_accepted"):
            t.add_column(c, justify="left" if c == "drafter" else "right")
        for who in (report["parent"], report["name"]):
            f = report["acceptance"][who]
            t.add_row(who, f"{f['acceptance_rate']:.3f}", f"{f['mean_accepted']:.3f}")
        con = Console(stderr=True)
        con.print(t)
        con.print(
            f"{report['steps_run']} of {report['steps']} steps on {report['train_samples']} samples in "
            f"{report['train_seconds']:.0f} s, the weights of step {report['best_step']} kept (lowest loss on "
            f"{report['validation_samples']} validation samples); "
            f'run it with: edgespec run {bundle} "..." --draft {report["name"]}'
        )
