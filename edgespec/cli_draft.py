"""`edgespec draft train|trim|eval` (drafter tooling) and `edgespec demo`.

Heavy imports (torch, transformers, the export side) happen inside the commands, so that
`edgespec --help` and the light runtime install never pay for them.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import click

from .errors import EdgespecError, check_ranges


def _export_side():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise EdgespecError("drafter tooling needs the export extra: pip install 'edgespec[export]'.") from None


def _prompts(path: Path | None, n: int | None) -> list[str]:
    from edgespec.export.draft import acceptance, corpus

    if path is None:
        return acceptance.default_prompts(n)
    return [r["prompt"] for r in corpus.load_prompts(path)][:n]


def _check_dir(path: Path, what: str) -> Path:
    if not Path(path).is_dir():
        raise EdgespecError(f"{what} {path} does not exist; pass a directory.")
    return Path(path)


def _training_options(o, *, generation: bool) -> dict:
    """`draft train`'s options that FastDraft's stages and EAGLE-3 training take alike, by their
    keyword (``o``: the command's options); ``generation`` adds those of the target's generation
    (stage 2 and EAGLE-3)."""
    kw = dict(
        seq_len=o.seq_len,
        batch_size=o.batch_size,
        seed=o.seed,
        threads=o.threads,
        k=o.k,
        stop_after=o.stop_after,
        device=o.device,
        precision=o.precision,
        checkpoint_every_s=o.checkpoint_every,
    )
    if generation:
        kw.update(n_sequences=o.sequences, new_tokens=o.new_tokens, gen_batch=o.gen_batch, gen_dir=o.gen_dir)
    return kw


@contextlib.contextmanager
def _disk_errors(out: Path, what: str):
    """A disk that fills up while ``what`` writes ``out`` becomes one sentence, not a traceback."""
    try:
        yield
    except EdgespecError:
        raise
    except Exception as e:
        from edgespec.export.leftovers import disk_error, disk_sentence

        kind = disk_error(e, out)
        if kind is None:
            raise
        raise EdgespecError(disk_sentence(kind, out, what)) from None


def _print_figures(title: str, rows: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in ("drafter", "acceptance_rate", "alpha", "mean_accepted", "mbsu", "size_ratio", "draft_ms_per_token"):
        t.add_column(c, justify="right" if c != "drafter" else "left", no_wrap=True)
    for name, d in rows.items():
        if not isinstance(d, dict) or "mean_accepted" not in d:
            continue
        t.add_row(
            name,
            f"{d['acceptance_rate']:.3f}",
            f"{d.get('alpha', 0.0):.3f}",
            f"{d['mean_accepted']:.3f}",
            f"{d['mbsu']:.3f}",
            f"{d['size_ratio']:.3f}",
            "" if d.get("draft_ms_per_token") is None else f"{d['draft_ms_per_token']:.2f}",
        )
    con = Console()
    if not con.is_terminal:
        con = Console(width=130)
    con.print(t)


def register(cli: click.Group) -> None:
    @cli.group()
    def draft() -> None:
        """Build drafters: FastDraft training, VocabTrim, acceptance figures."""

    @draft.command()
    @click.option(
        "--method",
        type=click.Choice(["fastdraft", "eagle3"]),
        default="fastdraft",
        show_default=True,
        help="fastdraft: a small drafter LM (needs --stage); eagle3: a head over the target's hidden states.",
    )
    @click.option(
        "--stage",
        type=click.Choice(["pretrain", "distill"]),
        default=None,
        help="FastDraft: pretrain (stage 1 from scratch) or distill (stage 2 on target-generated data).",
    )
    @click.option(
        "--corpus",
        type=click.Path(path_type=Path),
        required=True,
        help='Directory of text/Python files, or a .jsonl ({"text": ...}) / text file.',
    )
    @click.option(
        "--target", type=click.Path(path_type=Path), help="Target HF checkpoint (stage 2; stage 1: its tokenizer)."
    )
    @click.option("--draft", "draft_dir", type=click.Path(path_type=Path), help="Stage-1 drafter to distil (stage 2).")
    @click.option("--tokenizer", type=click.Path(path_type=Path), help="Drafter's own tokenizer (stage 1).")
    @click.option("--arch", type=click.Choice(["llama"]), default="llama", show_default=True)
    @click.option("--hidden", type=int, default=256, show_default=True)
    @click.option("--layers", type=int, default=2, show_default=True)
    @click.option("--heads", type=int, default=None, help="Attention heads (default hidden/64).")
    @click.option("--steps", type=int, default=None, help="Optimizer steps (default 1000 stage 1, 300 stage 2).")
    @click.option("--seq-len", type=int, default=256, show_default=True)
    @click.option("--batch-size", type=int, default=16, show_default=True)
    @click.option("--lr", type=float, default=None, help="Peak learning rate (default 2e-3 stage 1, 5e-4 stage 2).")
    @click.option(
        "--sequences",
        type=int,
        default=512,
        show_default=True,
        help="Stage 2 and EAGLE-3: target sequences to generate (EAGLE-3: 0 trains on the corpus text itself).",
    )
    @click.option(
        "--new-tokens", type=int, default=192, show_default=True, help="Stage 2: tokens per generated sequence."
    )
    @click.option("--gen-batch", type=int, default=16, show_default=True, help="Stage 2: generation batch size.")
    @click.option(
        "--kl-weight",
        type=float,
        default=0.0,
        show_default=True,
        help="Stage 2: weight of the token-level KL to the target's logits (same vocabulary only).",
    )
    @click.option(
        "--gen-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Stage 2: where generated shards live (default OUT/.distill/gen; share it between drafters).",
    )
    @click.option(
        "--eval-corpus", type=click.Path(path_type=Path), default=None, help="Held-out text for a held-out loss."
    )
    @click.option(
        "--prompts",
        type=click.Path(path_type=Path),
        default=None,
        help="Prompt file for the acceptance figures (default: the demo's held-out prompts).",
    )
    @click.option(
        "--eval-prompts",
        "n_eval",
        type=int,
        default=16,
        show_default=True,
        help="How many prompts the acceptance figures use (0: skip).",
    )
    @click.option("--k", type=int, default=4, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--threads", type=int, default=None, help="torch threads.")
    @click.option(
        "--device",
        default="auto",
        show_default=True,
        help="Training device: cpu, cuda, cuda:N, or auto (a CUDA GPU when torch sees one).",
    )
    @click.option(
        "--precision",
        type=click.Choice(["auto", "bf16", "fp32"]),
        default="auto",
        show_default=True,
        help="CPU training arithmetic (weights and optimizer stay fp32): auto = bf16 autocast where "
        "the CPU multiplies bf16 natively (AVX512-BF16, AMX; 2-3x faster), else fp32. GPUs always "
        "train under bf16 autocast.",
    )
    @click.option(
        "--ctx",
        type=int,
        default=None,
        help="Stage 1: the drafter's context length (max positions; default max(512, --seq-len)).",
    )
    @click.option(
        "--draft-vocab",
        type=int,
        default=None,
        help="EAGLE-3: draft vocabulary size K (the K ids the target emits most; default: 99 %% coverage).",
    )
    @click.option(
        "--coverage",
        type=float,
        default=None,
        help="EAGLE-3: the fewest ids covering this share of the target's tokens (default 0.99).",
    )
    @click.option(
        "--ttt-steps",
        type=int,
        default=5,
        show_default=True,
        help="EAGLE-3: draft steps unrolled in training (training-time test).",
    )
    @click.option(
        "--aux-layers",
        default=None,
        help="EAGLE-3: the three target layers the head reads, e.g. 1,15,28 (default: see the docs).",
    )
    @click.option(
        "--intermediate", type=int, default=None, help="EAGLE-3: the head's MLP width (default: the target's)."
    )
    @click.option(
        "--init",
        type=click.Path(path_type=Path),
        default=None,
        help="EAGLE-3: start from this head (its weights, draft vocabulary and target layers), e.g. to "
        "fine-tune a published head on the target's own continuations.",
    )
    @click.option(
        "--resume/--no-resume",
        default=True,
        show_default=True,
        help="Continue from OUT's checkpoint when there is one.",
    )
    @click.option(
        "--checkpoint-every",
        "checkpoint_every",
        type=float,
        default=180.0,
        show_default=True,
        metavar="SECONDS",
        help="Save the training state this often (a re-run resumes from the last save; "
        "EAGLE-3 also writes a usable head to OUT).",
    )
    @click.option(
        "--stop-after",
        type=int,
        default=None,
        hidden=True,
        help="End this run at that step (checkpoint kept); re-run to continue.",
    )
    @click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
    def train(**options):
        """Train a drafter (FastDraft) or an EAGLE-3 head. Resumable: re-run the same command to continue.

        \b
        stage 1:  edgespec draft train --stage pretrain --corpus DIR --target T --hidden 192 --layers 2 -o D1
        stage 2:  edgespec draft train --stage distill --target T --draft D1 --corpus DIR -o D2
        EAGLE-3:  edgespec draft train --method eagle3 --target T --corpus DIR -o HEAD
                  (data parallel: torchrun --nproc_per_node N $(which edgespec) draft train --method eagle3 ...)
        """
        o = SimpleNamespace(**options)
        check_ranges(
            ("--hidden", o.hidden, 1, None),
            ("--layers", o.layers, 1, None),
            ("--heads", o.heads, 1, o.hidden),
            ("--steps", o.steps, 1, None),
            ("--seq-len", o.seq_len, 2, None),
            ("--batch-size", o.batch_size, 1, None),
            # 0 is EAGLE-3's "train on the corpus text itself"; FastDraft's stage 2 needs sequences.
            ("--sequences", o.sequences, 0 if o.method == "eagle3" else 1, None),
            ("--new-tokens", o.new_tokens, 1, None),
            ("--gen-batch", o.gen_batch, 1, None),
            ("--kl-weight", o.kl_weight, 0.0, 1.0),
            ("--eval-prompts", o.n_eval, 0, None),
            ("--k", o.k, 1, 32),
            ("--seed", o.seed, 0, None),
            ("--threads", o.threads, 1, None),
            ("--ctx", o.ctx, 2, None),
            ("--stop-after", o.stop_after, 1, None),
            ("--checkpoint-every", o.checkpoint_every, 0.0, None),
        )
        if o.lr is not None and not (o.lr > 0 and o.lr < float("inf")):
            raise EdgespecError(f"--lr must be a positive number (got {o.lr}).")
        heads_eff = o.heads or max(1, o.hidden // 64)
        if o.hidden % heads_eff:
            raise EdgespecError(
                f"--hidden {o.hidden} must be a multiple of the number of attention heads ({heads_eff}); "
                "change --hidden or --heads."
            )
        _export_side()
        from edgespec.export.draft import fastdraft, lmtrain

        if not Path(o.corpus).exists():
            raise EdgespecError(
                f"corpus {o.corpus} does not exist; pass a directory of text/Python files or a .jsonl/.txt file."
            )
        if o.method == "eagle3":
            _train_eagle3(o)
            return
        if o.init is not None:
            raise EdgespecError(
                "--init starts from an EAGLE-3 head (--method eagle3); FastDraft stage 2 takes --draft."
            )
        if o.stage is None:
            raise EdgespecError(
                "FastDraft training needs --stage pretrain or --stage distill (or pass --method eagle3)."
            )
        lmtrain.refuse_legacy_state(o.out)
        if (Path(o.out) / lmtrain.STATE).is_file() and not o.resume:
            raise EdgespecError(
                f"{o.out} holds a training checkpoint; pass --resume to continue it or choose another -o."
            )
        eval_prompts = _prompts(o.prompts, o.n_eval) if (o.n_eval and o.target) else None
        with _disk_errors(o.out, "training"):
            if o.stage == "pretrain":
                if o.target:
                    _check_dir(o.target, "target")
                rep = fastdraft.pretrain(
                    o.corpus,
                    o.out,
                    tokenizer=o.tokenizer,
                    target=o.target,
                    hidden=o.hidden,
                    layers=o.layers,
                    heads=o.heads,
                    steps=1000 if o.steps is None else o.steps,
                    lr=o.lr or 2e-3,
                    eval_corpus=o.eval_corpus,
                    eval_prompts=eval_prompts,
                    ctx=o.ctx,
                    **_training_options(o, generation=False),
                )
            else:
                if not o.target or not o.draft_dir:
                    raise EdgespecError(
                        "stage 2 needs --target DIR (the model that writes the data) and --draft DIR "
                        "(the stage-1 drafter)."
                    )
                rep = fastdraft.distill(
                    _check_dir(o.target, "target"),
                    _check_dir(o.draft_dir, "drafter"),
                    o.corpus,
                    o.out,
                    steps=300 if o.steps is None else o.steps,
                    lr=o.lr or 5e-4,
                    kl_weight=o.kl_weight,
                    eval_prompts=eval_prompts,
                    eval_corpus=o.eval_corpus,
                    **_training_options(o, generation=True),
                )
        if rep is None:
            click.echo(f"stopped at step {o.stop_after} (--stop-after); re-run the same command to continue")
            return
        line = {
            "stage": rep["stage"],
            "out": str(o.out),
            "params": rep["params"],
            "heldout_loss": rep["train"].get("heldout_loss"),
            "acceptance": rep.get("acceptance"),
        }
        click.echo(json.dumps(line))

    def _train_eagle3(o):
        """EAGLE-3 arm of `draft train`: ``o`` holds the command's options, by parameter name."""
        from edgespec.export.draft import eagle3

        if not o.target:
            raise EdgespecError("--method eagle3 needs --target DIR (the model whose hidden states the head reads).")
        if o.draft_vocab is not None and o.coverage is not None:
            raise EdgespecError("pass either --draft-vocab or --coverage, not both.")
        if (Path(o.out) / eagle3.STATE).is_file() and not o.resume:
            raise EdgespecError(
                f"{o.out} holds a training checkpoint; pass --resume to continue it or choose another -o."
            )
        aux = None
        if o.aux_layers:
            try:
                aux = [int(x) for x in o.aux_layers.split(",")]
            except ValueError:
                raise EdgespecError(
                    f"--aux-layers takes three comma-separated layer ids (e.g. 1,15,28), not {o.aux_layers!r}."
                ) from None
        eval_prompts = _prompts(o.prompts, o.n_eval) if o.n_eval else None
        rep = eagle3.train(
            _check_dir(o.target, "target"),
            o.corpus,
            o.out,
            draft_vocab=o.draft_vocab,
            coverage=o.coverage,
            aux_layers=aux,
            intermediate=o.intermediate,
            ttt_steps=o.ttt_steps,
            steps=o.steps or 1000,
            lr=o.lr or 1e-3,
            eval_prompts=eval_prompts,
            init=_check_dir(o.init, "--init head") if o.init else None,
            **_training_options(o, generation=True),
        )
        if int(os.environ.get("RANK", "0")) != 0:
            return  # under torchrun, rank 0 reports
        if rep is None:
            click.echo(f"stopped at step {o.stop_after} (--stop-after); re-run the same command to continue")
            return
        click.echo(
            json.dumps(
                {
                    "method": "eagle3",
                    "out": str(o.out),
                    "params": rep["params_trainable"],
                    "draft_vocab_size": rep["recipe"]["draft_vocab_size"],
                    "acceptance": rep.get("acceptance"),
                }
            )
        )

    @draft.command()
    @click.option("--draft", "draft_dir", type=click.Path(path_type=Path), required=True, help="Drafter to trim.")
    @click.option(
        "--target",
        type=click.Path(path_type=Path),
        default=None,
        help="Target that writes calibration text (and the reference for the figures).",
    )
    @click.option(
        "--calibration",
        type=click.Path(path_type=Path),
        default=None,
        help='Calibration text instead of generating it (.jsonl with "text", a text file, or a directory).',
    )
    @click.option("--keep", type=int, default=None, help="Keep this many tokens.")
    @click.option(
        "--coverage", type=float, default=None, help="Keep the fewest tokens covering this share (default 0.99)."
    )
    @click.option("--sequences", type=int, default=128, show_default=True, help="Generated calibration sequences.")
    @click.option("--prompts", type=click.Path(path_type=Path), default=None, help="Prompt file for the figures.")
    @click.option("--eval-prompts", "n_eval", type=int, default=16, show_default=True, help="0: skip the figures.")
    @click.option("--k", type=int, default=4, show_default=True)
    @click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
    def trim(draft_dir, target, calibration, keep, coverage, sequences, prompts, n_eval, k, out):
        """Trim a drafter's LM head to the tokens its target emits (VocabTrim)."""
        check_ranges(
            ("--keep", keep, 1, None),
            ("--coverage", coverage, None, 1.0),
            ("--sequences", sequences, 1, None),
            ("--eval-prompts", n_eval, 0, None),
            ("--k", k, 1, 32),
        )
        if coverage is not None and not coverage > 0:
            raise EdgespecError(f"--coverage must be above 0 and at most 1 (got {coverage}).")
        _export_side()
        from edgespec.export.draft import vocabtrim

        if calibration is None and target is None:
            raise EdgespecError("trim needs calibration text: pass --target DIR (generates it) or --calibration FILE.")
        if keep is not None and coverage is not None:
            raise EdgespecError("pass either --keep or --coverage, not both.")
        with _disk_errors(out, "the trim"):
            rep = vocabtrim.trim(
                _check_dir(draft_dir, "drafter"),
                out,
                target=target,
                calibration=calibration,
                keep=keep,
                coverage=coverage if keep is None else None,
                n_sequences=sequences,
            )
        if target and n_eval:
            rep["figures"] = vocabtrim.compare(Path(target), Path(draft_dir), Path(out), _prompts(prompts, n_eval), k=k)
            vocabtrim.write_report(Path(out), rep)
            _print_figures(
                f"VocabTrim: keep {rep['keep']} of {rep['original_vocab_size']} (k={k})", rep["figures"], False
            )
        click.echo(json.dumps({k_: rep[k_] for k_ in ("keep", "coverage", "original_vocab_size")}))

    @draft.command(name="eval")
    @click.option("--target", type=click.Path(path_type=Path), required=True)
    @click.option(
        "--draft",
        "drafts",
        type=click.Path(path_type=Path),
        multiple=True,
        required=True,
        help="Drafter checkpoint (repeat to compare several).",
    )
    @click.option("--k", "ks", type=int, multiple=True, help="Draft length (repeat for several; default 4).")
    @click.option(
        "--prompts",
        type=click.Path(path_type=Path),
        default=None,
        help='Prompt file (.jsonl with "prompt", or one per line); default: the demo\'s held-out prompts.',
    )
    @click.option("-n", "--num-prompts", type=int, default=None, help="Use the first N prompts.")
    @click.option("--max-new-tokens", type=int, default=64, show_default=True)
    @click.option("--timing", is_flag=True, help="Also time one drafter call (ms per drafted token).")
    @click.option("--json", "as_json", is_flag=True)
    def eval_(target, drafts, ks, prompts, num_prompts, max_new_tokens, timing, as_json):
        """acceptance_rate, alpha, mean_accepted and mbsu of drafters or EAGLE-3 heads (greedy simulation)."""
        check_ranges(
            ("--num-prompts", num_prompts, 1, None),
            ("--max-new-tokens", max_new_tokens, 1, None),
            *(("--k", k, 1, 32) for k in ks),
        )
        _export_side()
        from edgespec.export.draft import acceptance, eagle3

        _check_dir(target, "target")
        ps = _prompts(prompts, num_prompts)
        ks = ks or (4,)
        rows = {}
        for d in drafts:
            for k in ks:
                name = str(d) if len(ks) == 1 else f"{d} k={k}"
                if eagle3.is_head(_check_dir(d, "drafter")):
                    fig = eagle3.evaluate_head(Path(target), Path(d), ps, k=k, max_new_tokens=max_new_tokens)
                else:
                    fig = acceptance.evaluate(
                        Path(target), Path(d), ps, k=k, max_new_tokens=max_new_tokens, timing=timing
                    )
                rows[name] = fig.to_dict()
        _print_figures(f"drafters vs {target} (k={','.join(map(str, ks))}, {len(ps)} prompts)", rows, as_json)

    from .demo import register_demo

    register_demo(cli)
