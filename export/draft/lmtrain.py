"""A small, resumable causal-LM trainer (the demo target and FastDraft stage 1/2), CPU or CUDA.

Training state lives in ``OUT/.train/state.safetensors`` (see trainstate): the weights and the
optimizer's tensors as tensors; the step, the optimizer's settings, the training config, the loss
history and torch's RNG states as JSON in the file's metadata. Nothing is ever unpickled (a
pickle runs the code it names when loaded): a ``state.pt`` of an older edgespec is refused, never
read. The state is written to a temporary file and renamed, so an interrupted run never leaves a
corrupt checkpoint and re-running the same command resumes at the last saved step. The batch of
step ``s`` is a pure function of ``(seed, s)`` (the data position is the step), so a resumed run
sees exactly the batches an uninterrupted run would. The final HF checkpoint (safetensors + tokenizer) is written
into ``OUT`` the same way, ``config.json`` last. Temporary files carry their writer's pid; those
of a run that was killed are removed by the next run (one line in the log).

On a CUDA device the forward pass runs under bf16 autocast (weights and optimizer stay fp32);
on the CPU everything is fp32.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgespec.errors import EdgespecError

from ..leftovers import remove_stale_files, removed_on_error
from . import trainstate

STATE = ".train/state.safetensors"
LEGACY_STATE = ".train/state.pt"  # pickled by older versions: refused, never loaded
_STATE_FORMAT, _STATE_VERSION = "edgespec-train-state", 1
# the writer's pid in a temporary name: ".state.safetensors.123.tmp", ".tokens-ab12.123.npy", ".out.save-123"
_TMP_PID = re.compile(r"^\..*[.-](\d+)(\.tmp|\.npy)?$")


@dataclass
class TrainConfig:
    steps: int
    seq_len: int = 256
    batch_size: int = 32  # sequences per step
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every_s: float = 180.0
    log_every: int = 10
    threads: int | None = None
    device: str = "cpu"  # "cpu" | "cuda" | "cuda:N" (see resolve_device)
    precision: str = "auto"  # CPU arithmetic: "auto" | "bf16" | "fp32" (see cpu_bf16)
    eval_every: int = 0  # log the held-out loss every N steps (0: only at the end)
    extra: dict = field(default_factory=dict)


def resolve_device(name: str | None) -> str:
    """``auto`` (or None) -> ``cuda`` when torch sees a GPU, else ``cpu``; other names are checked."""
    import torch

    if name in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EdgespecError(f"device {name} was asked for but torch sees no CUDA GPU; use --device cpu.")
    if name != "cpu" and not name.startswith("cuda"):
        raise EdgespecError(f"unknown training device {name!r}; use cpu, cuda, cuda:N or auto.")
    return name


PRECISIONS = ("auto", "bf16", "fp32")


def cpu_bf16(precision: str = "auto") -> bool:
    """Whether CPU training runs under bf16 autocast: ``bf16`` always, ``fp32`` never, ``auto``
    where the CPU multiplies bf16 natively (AVX512-BF16 or AMX, as oneDNN reports it): there bf16
    matrix products run 2-3x as fast as fp32 (a 2-core AVX512-BF16 EPYC: 2.1-2.8x,
    lab/experiments/cpu_bf16_matmul.py), elsewhere they are emulated and slower."""
    if precision not in PRECISIONS:
        raise EdgespecError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision == "bf16"
    return _native_bf16()


@functools.cache
def _native_bf16() -> bool:
    """oneDNN's answer, asked once (``autocast`` runs every training step)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: str, precision: str = "fp32"):
    """bf16 autocast on CUDA; on the CPU only where ``cpu_bf16(precision)`` says so (training
    passes its ``precision``; measurements keep the default, fp32 on a CPU)."""
    import contextlib

    import torch

    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu_bf16(precision):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def tokenize_documents(tok, docs: list[str], cache_dir: Path | None = None):
    """All documents as one int32 stream: ``<s> doc </s> <s> doc </s> ...`` (cached by content hash)."""
    import numpy as np

    h = hashlib.sha256(tok.backend_tokenizer.to_str().encode())
    for d in docs:
        h.update(hashlib.sha256(d.encode("utf-8")).digest())
    key = h.hexdigest()[:20]
    if cache_dir is not None:
        f = Path(cache_dir) / f"tokens-{key}.npy"
        remove_leftovers(Path(cache_dir), ".tokens-*.npy", _stderr)
        if f.is_file():
            try:
                return np.load(f, allow_pickle=False)
            except (OSError, ValueError):
                pass  # not a plain int32 array (damaged or planted): tokenize again and overwrite it
    eos = tok.eos_token_id
    ids: list[int] = []
    enc = tok(docs, add_special_tokens=True)["input_ids"]  # <s> is added by the post-processor
    for e in enc:
        ids.extend(e)
        ids.append(eos)
    arr = np.asarray(ids, dtype=np.int32)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(cache_dir) / f".tokens-{key}.{os.getpid()}.npy"
        with removed_on_error(tmp):
            np.save(tmp, arr)
            tmp.replace(Path(cache_dir) / f"tokens-{key}.npy")
    return arr


def batch_at(data, step: int, seed: int, batch: int, seq: int):
    """The training batch of ``step``: random windows of ``seq + 1`` tokens (deterministic)."""
    import numpy as np
    import torch

    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(data) - seq - 1, size=batch)
    x = np.stack([data[s : s + seq + 1] for s in starts]).astype(np.int64)
    return torch.from_numpy(x)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def eval_loss(model, data, seq: int = 256, max_windows: int = 64, batch: int = 8) -> float:
    """Mean next-token loss on non-overlapping windows of ``data`` (the first ``max_windows``)."""
    import torch

    n = min(max_windows, (len(data) - 1) // seq)
    if n <= 0:
        raise EdgespecError("the evaluation text is shorter than one window; use more held-out text.")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for i in range(0, n, batch):
            rows = [
                torch.from_numpy(data[j * seq : j * seq + seq + 1].astype("int64")) for j in range(i, min(n, i + batch))
            ]
            x = torch.stack(rows).to(dev)
            with autocast(dev.type):
                out = model(input_ids=x[:, :-1])
            loss = torch.nn.functional.cross_entropy(
                out.logits.reshape(-1, out.logits.shape[-1]).float(), x[:, 1:].reshape(-1), reduction="sum"
            )
            tot += loss.item()
            cnt += x[:, 1:].numel()
    model.train(was)
    return tot / cnt


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def remove_leftovers(directory: Path, pattern: str, log: Callable[[str], None]) -> None:
    """Remove the temporary files matching ``pattern`` that killed runs left in ``directory``."""

    def writer(p: Path) -> int | None:
        m = _TMP_PID.match(p.name)
        return int(m.group(1)) if m else None

    gone = remove_stale_files(directory, pattern, writer)
    if gone:
        log(
            f"removed {len(gone)} partial file{'s' if len(gone) > 1 else ''} left by an interrupted run "
            f"({', '.join(p.name for p in gone)})"
        )


def _rng_state() -> dict:
    """torch's RNG states as text for the state's JSON (the batches need none: they are pure in the step)."""
    import base64

    import torch

    def text(t) -> str:
        return base64.b64encode(t.numpy().tobytes()).decode("ascii")

    out = {"torch": text(torch.get_rng_state())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [text(s) for s in torch.cuda.get_rng_state_all()]
    return out


def _set_rng_state(rng: dict) -> None:
    import base64

    import torch

    def tensor(text: str):
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(tensor(rng["torch"]))
    cuda = rng.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([tensor(t) for t in cuda])


def save_hf(model, tok, out: Path, extra_files: dict[str, str] | None = None, dtype=None) -> None:
    """Write an HF checkpoint into ``out`` atomically (a sibling temp dir, then file renames)."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out.parent, f".{out.name}.save-*", _stderr)
    tmp = out.parent / f".{out.name}.save-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    m = model
    if dtype is not None and dtype != torch.float32:
        import copy

        m = copy.deepcopy(model).to(dtype)
    with removed_on_error(tmp):
        m.save_pretrained(tmp, safe_serialization=True)
        if tok is not None:
            tok.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    # config.json last: until it is there, a kill midway leaves no directory that looks complete
    for f in sorted(tmp.iterdir(), key=lambda f: (f.name == "config.json", f.name)):
        os.replace(f, out / f.name)
    shutil.rmtree(tmp, ignore_errors=True)


def train(
    model,
    data,
    out: Path,
    cfg: TrainConfig,
    *,
    eval_data=None,
    loss_fn: Callable | None = None,
    batch_fn: Callable | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train ``model`` on the token stream ``data`` for ``cfg.steps`` steps; resumes from ``out``.

    ``loss_fn(model, batch) -> loss`` overrides plain next-token cross-entropy (distillation);
    ``batch_fn(step) -> batch`` overrides random windows of ``data``. ``stop_after`` ends this run
    at that step (checkpoint saved) as an interruption would; re-running continues. Returns a summary.
    """
    import torch

    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(out)
    state_path = out / STATE
    refuse_legacy_state(out)
    remove_leftovers(state_path.parent, ".*.tmp", log)
    model.to(device)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)
    step, history = 0, []
    if state_path.is_file():
        meta = trainstate.read_meta(state_path)
        if meta.get("format") != _STATE_FORMAT or meta.get("version") != _STATE_VERSION:
            raise EdgespecError(
                f"training checkpoint {state_path} was not written by this trainer; delete "
                f"{state_path.parent} to start over."
            )
        if meta.get("config", {}).get("seq_len") != cfg.seq_len or meta.get("n_params") != _n_params(model):
            raise EdgespecError(
                f"the checkpoint in {out} was made with other settings (model size or sequence "
                "length); use another output directory or the same settings."
            )
        try:
            trainstate.load_state(state_path, model, opt, device)
            _set_rng_state(meta["rng"])
        except (KeyError, ValueError, RuntimeError) as e:
            raise EdgespecError(
                f"training checkpoint {state_path} does not fit this model ({e.__class__.__name__}); "
                f"delete {state_path.parent} to start over."
            ) from None
        step, history = int(meta["step"]), meta.get("history", [])
        log(f"resuming from step {step} ({state_path})")
    if data is not None and batch_fn is None and len(data) < cfg.seq_len + 2:
        raise EdgespecError(
            f"the corpus has only {len(data)} tokens, fewer than one training window of "
            f"{cfg.seq_len}; use a larger corpus or a smaller --seq-len."
        )

    def save():
        meta = {
            "format": _STATE_FORMAT,
            "version": _STATE_VERSION,
            "step": step,
            "config": asdict(cfg),
            "n_params": _n_params(model),
            "history": history,
            "rng": _rng_state(),
        }
        with removed_on_error(state_path.with_name(f".{state_path.name}.{os.getpid()}.tmp")):
            trainstate.save_state(state_path, model, opt, meta)

    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True)
    model.train()
    t_last_ckpt = time.time()
    t0, tok0, ema = time.time(), 0, None
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    while step < end:
        batch = batch_fn(step) if batch_fn else batch_at(data, step, cfg.seed, cfg.batch_size, cfg.seq_len)
        batch = batch.to(device, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        with autocast(device, cfg.precision):
            if loss_fn is None:
                logits = model(input_ids=batch[:, :-1]).logits
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1)
                )
            else:
                loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        tok0 += batch.numel() if hasattr(batch, "numel") else 0
        lv = loss.item()
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        if step % cfg.log_every == 0 or step == cfg.steps:
            tps = tok0 / max(1e-9, time.time() - t0)
            history.append(
                {
                    "step": step,
                    "loss": round(lv, 4),
                    "loss_ema": round(ema, 4),
                    "tokens_per_s": round(tps, 1),
                    "lr": lr_at(step - 1, cfg),
                    "time": time.time(),
                }
            )
            if bar is None:
                log(
                    f"step {step}/{cfg.steps} loss {lv:.4f} (ema {ema:.4f}) lr {lr_at(step - 1, cfg):.2e} {tps:.0f} tok/s"
                )
        if cfg.eval_every and eval_data is not None and step % cfg.eval_every == 0 and step < cfg.steps:
            hl = eval_loss(model, eval_data, seq=min(cfg.seq_len, 256))
            history.append({"step": step, "heldout_loss": round(hl, 4), "time": time.time()})
            log(f"step {step}: held-out loss {hl:.4f}")
        if bar is not None:
            bar.set_postfix(loss=f"{ema:.3f}")
            bar.update(1)
        if time.time() - t_last_ckpt > cfg.checkpoint_every_s:
            save()
            t_last_ckpt = time.time()
    if bar is not None:
        bar.close()
    save()
    summary = {"steps": step, "final_loss_ema": ema, "history_tail": history[-5:]}
    if eval_data is not None and step >= cfg.steps:
        summary["heldout_loss"] = eval_loss(model, eval_data, seq=min(cfg.seq_len, 256))
    model.eval()
    return summary


def check_config(cfg: TrainConfig) -> None:
    """One sentence for a setting outside its range (the CLI names the flag; this guards the API)."""
    for name, value, ok, want in (
        ("steps", cfg.steps, cfg.steps >= 1, "at least 1"),
        ("seq_len", cfg.seq_len, cfg.seq_len >= 2, "at least 2"),
        ("batch_size", cfg.batch_size, cfg.batch_size >= 1, "at least 1"),
        ("lr", cfg.lr, math.isfinite(cfg.lr) and cfg.lr > 0, "a positive number"),
        ("warmup", cfg.warmup, cfg.warmup >= 0, "0 or more"),
        ("seed", cfg.seed, cfg.seed >= 0, "0 or more"),
    ):
        if not ok:
            raise EdgespecError(f"training {name} must be {want} (got {value}).")
    cpu_bf16(cfg.precision)  # one sentence for an unknown name


def refuse_legacy_state(out: Path) -> None:
    """A pickled ``state.pt`` of an older edgespec is never loaded: say how to start over."""
    legacy = Path(out) / LEGACY_STATE
    if legacy.is_file():
        raise EdgespecError(
            f"{legacy} is a training checkpoint in the old pickle format, which edgespec no longer "
            f"loads because unpickling can run code; delete {legacy.parent} to start over."
        )


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _param_groups(model, wd: float):
    decay, no_decay = [], []
    seen = set()
    for n, p in model.named_parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def llama_config(
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int | None = None,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    ctx: int = 512,
    tie: bool = True,
):
    """A LlamaConfig for a small model (ids 0/1/2 = unk/bos/eos as in the demo tokenizers)."""
    import transformers as tf

    heads = heads or max(1, hidden // 64)
    return tf.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        intermediate_size=intermediate or (8 * hidden // 3 + 63) // 64 * 64,
        max_position_embeddings=ctx,
        tie_word_embeddings=tie,
        rope_theta=10000.0,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        initializer_range=0.02,
    )


def write_json(path: Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with removed_on_error(tmp):
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, path)
