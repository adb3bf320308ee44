"""EAGLE-3 heads: training (``edgespec draft train --method eagle3``) and acceptance figures.

A head (eagle3_head.py) drafts from the target's own hidden states: at every position it reads the
target's residual stream after three decoder layers (``eagle_config.eagle_aux_hidden_state_layer_ids``:
the output of layer i, before any final norm, as OpenVINO GenAI taps it), fused by ``fc``, plus the
embedding of the next token, and predicts the token after it over a draft vocabulary of K tokens.

Training (``train``):
  1. data: the target's own continuations of corpus prompts, written by the FastDraft stage-2
     generator (``fastdraft.generate_shards``: resumable shards, half greedy, half sampled); with
     ``n_sequences=0`` the corpus text itself (cheaper: the target still supplies the features and
     the distributions the head learns, only the text it reads is not the target's own);
  2. draft vocabulary: the K target ids the target emits most often in those continuations (or
     the corpus) (VocabTrim's frequency count, ``vocabtrim.choose_keep``), stored as ``d2t``/``t2d``;
  3. every step, the target runs on a batch of windows (no gradient) and gives the features and
     its logits; the head is unrolled ``ttt_steps`` draft steps over its own outputs (training-
     time test) and learns the target's distribution over the draft vocabulary (cross-entropy to
     the target's softmax = KL up to a constant);
  4. state (head weights, AdamW moments, step, history) in ``OUT/.train/eagle3-state.safetensors``
     (trainstate.py, no pickle) every ``checkpoint_every_s`` and at the end, and the head itself in
     OUT each time, so a run can be evaluated while it trains and re-running resumes it. The batch
     of step s is a pure function of (seed, s), so a resumed run sees the batches an
     uninterrupted one would.
  Under ``torchrun`` (WORLD_SIZE > 1) it runs data-parallel with DistributedDataParallel (gloo on
  CPUs, nccl on GPUs): each rank takes its share of every step's windows; rank 0 writes.

The checkpoint is the published EAGLE-3 format optimum-intel's export loads
(``architectures: ["LlamaForCausalLMEagle3"]``; see eagle3_head.py), plus the target's tokenizer
and ``edgespec_eagle3.json`` (recipe, progress, figures).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from edgespec.errors import EdgespecError

from . import corpus as corpus_mod
from . import lmtrain
from .fastdraft import (
    GEN_DIR,  # noqa: F401 (where a head's generated shards go, OUT/GEN_DIR, for callers)
    Generation,
    _log,
    _progress,
    generation_dir,
    load_model,
    read_shards,
    token_stream,
)

ARCHS = ("LlamaForCausalLMEagle3", "Eagle3LlamaForCausalLM")
STATE = ".train/eagle3-state.safetensors"
META_FILE = "edgespec_eagle3.json"


def is_head(path: Path) -> bool:
    """Whether ``path`` holds an EAGLE-3 head checkpoint (by its config's architectures)."""
    f = Path(path) / "config.json"
    if not f.is_file():
        return False
    try:
        archs = json.loads(f.read_text()).get("architectures") or []
    except ValueError:
        return False
    return any(a in ARCHS for a in archs)


def default_aux_layers(n_layers: int) -> list[int]:
    """The target layers a head reads: SpecForge's [1, L/2 - 1, L - 4] from 8 layers on, else
    [0, L/2, L - 1] (small targets, where that rule would repeat a layer)."""
    if n_layers < 3:
        raise EdgespecError(f"an EAGLE-3 head reads three distinct target layers; this target has only {n_layers}.")
    if n_layers >= 8:
        return [1, n_layers // 2 - 1, n_layers - 4]
    return [0, n_layers // 2, n_layers - 1]


def aux_layers_of(config) -> list[int]:
    ec = getattr(config, "eagle_config", None) or {}
    ids = ec.get("eagle_aux_hidden_state_layer_ids")
    if not ids or len(ids) != 3:
        raise EdgespecError(
            "the head's config.json lacks eagle_config.eagle_aux_hidden_state_layer_ids (three "
            "target layer ids); it is not an EAGLE-3 head this tool can run."
        )
    return [int(i) for i in ids]


def head_config(tcfg, draft_vocab_size: int, aux_layers: list[int], intermediate: int | None = None):
    """The head's LlamaConfig for target config ``tcfg``: the target's width, heads, RoPE and norms."""
    import transformers as tf

    h = tcfg.hidden_size
    nh = tcfg.num_attention_heads
    d = getattr(tcfg, "head_dim", None) or h // nh
    kw = {}
    if getattr(tcfg, "rope_parameters", None):
        kw["rope_parameters"] = dict(tcfg.rope_parameters)
    elif getattr(tcfg, "rope_theta", None):
        kw["rope_theta"] = tcfg.rope_theta
    cfg = tf.LlamaConfig(
        vocab_size=tcfg.vocab_size,
        hidden_size=h,
        num_hidden_layers=1,
        num_attention_heads=nh,
        num_key_value_heads=getattr(tcfg, "num_key_value_heads", None) or nh,
        head_dim=d,
        intermediate_size=intermediate or tcfg.intermediate_size,
        hidden_act=getattr(tcfg, "hidden_act", "silu"),
        rms_norm_eps=tcfg.rms_norm_eps,
        max_position_embeddings=tcfg.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tcfg.bos_token_id,
        eos_token_id=tcfg.eos_token_id,
        pad_token_id=getattr(tcfg, "pad_token_id", None),
        attention_bias=False,
        mlp_bias=False,
        **kw,
    )
    cfg.architectures = [ARCHS[0]]
    cfg.draft_vocab_size = int(draft_vocab_size)
    cfg.target_hidden_size = h
    cfg.eagle_config = {"eagle_aux_hidden_state_layer_ids": [int(i) for i in aux_layers], "use_aux_hidden_state": True}
    return cfg


def new_head(target, kept, aux_layers: list[int], intermediate: int | None = None, seed: int = 0):
    """A freshly initialised head for ``target`` over the draft vocabulary ``kept`` (sorted target ids)."""
    import torch

    from .eagle3_head import Eagle3Head

    torch.manual_seed(seed)
    head = Eagle3Head(head_config(target.config, len(kept), aux_layers, intermediate))
    with torch.no_grad():
        head.embed_tokens.weight.copy_(target.get_input_embeddings().weight.float())
        ids = torch.as_tensor(kept, dtype=torch.long)
        head.d2t.copy_(ids - torch.arange(len(ids)))
        head.t2d.zero_()
        head.t2d[ids] = True
    return head


def load_head(path: Path):
    """An Eagle3Head from a checkpoint directory (float32)."""
    import transformers as tf
    from safetensors.torch import load_file

    from .eagle3_head import Eagle3Head

    path = Path(path)
    if not is_head(path):
        raise EdgespecError(f"{path} is not an EAGLE-3 head (its config.json does not name LlamaForCausalLMEagle3).")
    cfg = tf.LlamaConfig.from_pretrained(path)
    aux_layers_of(cfg)
    head = Eagle3Head(cfg)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise EdgespecError(f"the head {path} has no *.safetensors weights.")
    sd = {}
    for f in files:
        sd.update(load_file(str(f)))
    sd = {k.removeprefix("model."): v for k, v in sd.items()}
    missing = set(head.state_dict()) - set(sd) - {"embed_tokens.weight"}
    if missing:
        raise EdgespecError(f"the head {path} lacks {sorted(missing)[:3]}; it is not in the EAGLE-3 format.")
    head.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
    return head.eval()


def check_head_fits(head, target, head_dir, target_dir) -> None:
    """One sentence when ``head`` was made for a target of another vocabulary, width or depth."""
    if (
        head.config.vocab_size != target.config.vocab_size
        or head.config.target_hidden_size != target.config.hidden_size
    ):
        raise EdgespecError(
            f"the head {head_dir} was made for another target (vocabulary {head.config.vocab_size}, "
            f"hidden {head.config.target_hidden_size}) than {target_dir}."
        )
    if max(aux_layers_of(head.config)) >= target.config.num_hidden_layers:
        raise EdgespecError(
            f"the head {head_dir} reads target layers {aux_layers_of(head.config)}, but {target_dir} "
            f"has {target.config.num_hidden_layers}."
        )


def attach_target_embedding(head, target) -> None:
    """Published heads may omit ``embed_tokens`` (the runtime shares the target's): fill it in."""
    import torch

    with torch.no_grad():
        head.embed_tokens.weight.copy_(target.get_input_embeddings().weight.float())


def save_head(head, out: Path, tok=None, meta: dict | None = None, dtype=None, embedding: bool = True) -> None:
    """Write the head into ``out`` (config.json, model.safetensors, tokenizer, META_FILE).

    Files are written into a sibling temporary directory and renamed one by one, so ``OUT/.train``
    stays and a reader never sees a half-written file. ``embedding=False`` leaves out
    ``embed_tokens.weight`` (the target's own table, which the export and the runtimes take from
    the target): a much smaller file.
    """
    import torch
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.save-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    dtype = dtype or torch.float32
    sd = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in head.state_dict().items()
        if embedding or k != "embed_tokens.weight"
    }
    save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    cfg = head.config
    cfg.torch_dtype = str(dtype).removeprefix("torch.")
    cfg.save_pretrained(tmp)
    if tok is not None:
        tok.save_pretrained(tmp)
    if meta is not None:
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
    for f in sorted(tmp.iterdir()):
        os.replace(f, out / f.name)
    shutil.rmtree(tmp, ignore_errors=True)


class layer_outputs:
    """Context manager: the outputs of the target's decoder layers ``layers`` during the calls inside
    it, as ``self.features()`` [B, T, 3·H] (concatenated in that order).

    Hooks on the layers, not ``output_hidden_states``: transformers hands the last layer's output
    back after the final norm, while the runtime taps the residual stream itself.
    """

    def __init__(self, model, layers: list[int]):
        base = getattr(model, "model", None)
        blocks = getattr(base, "layers", None)
        if blocks is None:
            raise EdgespecError(
                f"cannot find the decoder layers of this {model.__class__.__name__}; EAGLE-3 heads "
                "support Llama/Qwen2-family targets."
            )
        self.blocks, self.layers, self.out, self.handles = blocks, list(layers), {}, []

    def __enter__(self):
        for i in self.layers:

            def hook(mod, args, out, i=i):
                self.out[i] = out[0] if isinstance(out, tuple) else out

            self.handles.append(self.blocks[i].register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def features(self):
        import torch

        return torch.cat([self.out[i] for i in self.layers], dim=-1).float()


def target_features(target, ids, aux_layers: list[int], kept=None, precision: str = "fp32"):
    """The head's inputs from one target call on ``ids`` [B, T] (no gradient).

    Returns (features [B, T, 3·H], logits [B, T, K] over the draft vocabulary ``kept`` or all of
    them, full-vocabulary argmax [B, T]).
    """
    import torch

    with torch.no_grad(), lmtrain.autocast(ids.device.type, precision), layer_outputs(target, aux_layers) as cap:
        out = target(input_ids=ids)
    feats = cap.features()
    logits = out.logits
    top = logits.argmax(-1)
    if kept is not None:
        logits = logits[..., kept]
    return feats, logits.float(), top


# ---------------------------------------------------------------------------------------------
# training


def _dist():
    """(rank, world size, local rank), initialising torch.distributed under torchrun."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        import torch

        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


class _TTT:
    """A torch module wrapping the head's training-time-test loss, so DDP sees one forward per step."""

    @staticmethod
    def make(head, steps: int):
        import torch

        class TTTLoss(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.head = head

            def forward(self, feats, ids, tlogits, tok):
                return self.head.ttt_loss(feats, ids, tlogits, tok, steps)

        return TTTLoss()


def token_counts(seqs, vocab_size: int):
    """How often each target id occurs in ``seqs`` (id sequences), as an int64 array."""
    import numpy as np

    counts = np.zeros(vocab_size, dtype=np.int64)
    for ids in seqs:
        counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return counts


def choose_vocab(seqs, tok, vocab_size: int, keep: int | None, coverage: float | None):
    """Draft vocabulary: VocabTrim's most frequent target ids in ``seqs`` (plus the specials)."""

    from .vocabtrim import choose_keep

    counts = token_counts(seqs, vocab_size)
    if keep is not None:
        keep = min(keep, vocab_size)
    specials = [s for s in list(tok.all_special_ids) + [tok.bos_token_id, tok.eos_token_id] if isinstance(s, int)]
    kept = choose_keep(counts, specials, keep=keep, coverage=None if keep is not None else (coverage or 0.99))
    return kept, float(counts[kept].sum() / max(1, counts.sum()))


def train(
    target: Path,
    corpus: Path,
    out: Path,
    *,
    draft_vocab: int | None = None,
    coverage: float | None = None,
    aux_layers: list[int] | None = None,
    intermediate: int | None = None,
    ttt_steps: int = 5,
    steps: int = 1000,
    seq_len: int = 256,
    batch_size: int = 16,
    lr: float = 1e-3,
    warmup: int = 50,
    seed: int = 0,
    n_sequences: int = 512,
    prompt_tokens: int = 64,
    new_tokens: int = 192,
    gen_batch: int = 16,
    temperature: float = 0.8,
    gen_dir: Path | None = None,
    threads: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    eval_prompts: list[str] | None = None,
    k: int = 4,
    checkpoint_every_s: float = 180.0,
    log_every: int = 10,
    log: Callable[[str], None] = _log,
    stop_after: int | None = None,
    init: Path | None = None,
) -> dict | None:
    """Train an EAGLE-3 head for ``target`` (see the module docstring); returns the report, or None
    when ``stop_after`` ended the run early (the checkpoint is kept; re-run to continue).

    ``init``: start from this head's weights, draft vocabulary and target layers (fine-tuning a
    published or earlier head on new data, e.g. the target's own continuations) instead of a fresh
    head; ``draft_vocab``, ``coverage`` and ``aux_layers`` must then be left unset.
    """
    import torch

    from . import trainstate

    rank, world, local_rank = _dist()
    say = log if rank == 0 else (lambda s: None)
    if threads:
        torch.set_num_threads(threads)
    device = lmtrain.resolve_device(device)
    if device == "cuda" and world > 1:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if ttt_steps < 1:
        raise EdgespecError("--ttt-steps must be at least 1.")
    if batch_size < world:
        raise EdgespecError(f"--batch-size {batch_size} is smaller than the {world} ranks; each rank needs a window.")
    target_dir, out = Path(target), Path(out)
    gen_dir = generation_dir(gen_dir, out)
    tmodel, ttok = load_model(target_dir, "target")
    tmodel.requires_grad_(False)
    tmodel.to(device)
    n_layers = tmodel.config.num_hidden_layers
    start = None
    if init is not None:
        if draft_vocab is not None or coverage is not None or aux_layers:
            raise EdgespecError(
                "a head trained from --init keeps its draft vocabulary and target layers; leave out "
                "--draft-vocab, --coverage and --aux-layers."
            )
        start = load_head(init)
        check_head_fits(start, tmodel, init, target_dir)
        aux_layers = aux_layers_of(start.config)
    aux = list(aux_layers) if aux_layers else default_aux_layers(n_layers)
    if len(aux) != 3 or len(set(aux)) != 3 or not all(0 <= i < n_layers for i in aux):
        raise EdgespecError(f"--aux-layers needs three distinct target layer ids in 0..{n_layers - 1}, not {aux}.")

    # 1. the target's continuations (rank 0 writes the shards; the others wait and read them), or
    #    with n_sequences == 0 the corpus text itself (the target still gives features and labels)
    t0 = time.time()
    docs = corpus_mod.load_documents(corpus)
    gen = Generation(n_sequences, prompt_tokens, new_tokens, gen_batch, temperature, seed)
    if n_sequences > 0:
        if rank == 0:
            shards = gen.write(tmodel, ttok, docs, gen_dir, say)
        else:
            shards = gen.plan(tmodel, ttok, docs, gen_dir)[1]
        _barrier(world)
        rows = read_shards(shards)
        data = token_stream([r["prompt_ids"] + r["ids"] for r in rows], ttok.eos_token_id)
        emitted = [r["ids"] for r in rows]
    else:
        if rank == 0:
            lmtrain.tokenize_documents(ttok, docs, out / ".train" / "tokens")
        _barrier(world)
        data = lmtrain.tokenize_documents(ttok, docs, out / ".train" / "tokens")
        rows, emitted = [], [data]
    gen_s = time.time() - t0
    if len(data) < seq_len + 2:
        raise EdgespecError(
            f"the training text holds only {len(data)} tokens, fewer than one window of {seq_len}; "
            "use more --sequences (or corpus text) or a smaller --seq-len."
        )

    # 2. the draft vocabulary (the --init head's, or counted in the training text)
    if start is not None:
        kept = (start.d2t + torch.arange(len(start.d2t))).numpy()
        counts = token_counts(emitted, tmodel.config.vocab_size)
        covered = float(counts[kept].sum() / max(1, counts.sum()))
        attach_target_embedding(start, tmodel)
        head = start.to(device)
    else:
        kept, covered = choose_vocab(emitted, ttok, tmodel.config.vocab_size, draft_vocab, coverage)
        head = new_head(tmodel, kept, aux, intermediate, seed=seed).to(device)
    kept_t = torch.as_tensor(kept, dtype=torch.long, device=device)
    vocab_hash = hashlib.sha256(kept.astype("<i8").tobytes()).hexdigest()
    n_train = sum(p.numel() for p in head.parameters() if p.requires_grad)
    source = f"{len(rows)} target continuations" if n_sequences > 0 else "corpus text"
    say(
        f"eagle3: head {n_train / 1e6:.2f} M trainable params (draft vocabulary {len(kept)} of "
        f"{tmodel.config.vocab_size}, covering {covered:.4f} of the training tokens), target layers {aux}, "
        f"{source} ({len(data):,} tokens), {steps} steps of {batch_size}x{seq_len}, "
        f"{ttt_steps} TTT steps" + (f", {world} ranks" if world > 1 else "")
    )
    if world > 1:
        log(f"eagle3: rank {rank}/{world} ready on {device}")

    # 3. training
    cfg = lmtrain.TrainConfig(
        steps=steps,
        seq_len=seq_len,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        seed=seed,
        threads=threads,
        device=device,
        precision=precision,
        checkpoint_every_s=checkpoint_every_s,
        log_every=log_every,
    )
    opt = torch.optim.AdamW(lmtrain._param_groups(head, cfg.weight_decay), lr=lr, betas=(0.9, 0.95), eps=1e-8)
    state_path = out / STATE
    step, history = 0, []
    settings = {
        "seq_len": seq_len,
        "ttt_steps": ttt_steps,
        "vocab_sha256": vocab_hash,
        "aux_layers": aux,
        "n_params": n_train,
        "batch_size": batch_size,
    }
    if state_path.is_file():
        meta = trainstate.read_meta(state_path)
        if meta.get("settings") != settings:
            raise EdgespecError(
                f"the checkpoint in {out} was made with other settings (draft vocabulary, target "
                "layers, sequence length, TTT steps or batch size); use another output directory "
                "or the same settings."
            )
        trainstate.load_state(state_path, head, opt, device="cpu")
        head.to(device)
        step, history = meta["step"], meta.get("history", [])
        say(f"resuming from step {step} ({state_path})")
    model = _TTT.make(head, ttt_steps)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[local_rank] if device.startswith("cuda") else None)
    recipe = {
        "method": "eagle3",
        "target": str(target_dir),
        "corpus": str(corpus),
        "corpus_sha256": corpus_mod.text_sha256(docs),
        **gen.recipe(len(rows)),
        "steps": steps,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "lr": lr,
        "warmup": warmup,
        "seed": seed,
        "ttt_steps": ttt_steps,
        "aux_layers": aux,
        "init": str(init) if init is not None else None,
        "draft_vocab_size": len(kept),
        "vocab_coverage": round(covered, 6),
        "device": device,
        "cpu_bf16": device == "cpu" and lmtrain.cpu_bf16(precision),
        "world_size": world,
        "data_tokens": len(data),
    }

    def report(done: bool) -> dict:
        return {
            "method": "eagle3",
            "complete": done,
            "step": step,
            "params_trainable": n_train,
            "recipe": recipe,
            "generation_s": round(gen_s, 1),
            "history_tail": history[-5:],
        }

    def checkpoint(done: bool = False) -> None:
        if rank != 0:
            return
        meta = {"step": step, "settings": settings, "history": history, "config": recipe}
        trainstate.save_state(state_path, head, opt, meta)
        save_head(head, out, ttok, report(done))
        say(f"eagle3: checkpoint at step {step} written to {out}")

    bar = _progress(steps, "eagle3") if rank == 0 else None
    if bar is not None:
        bar.update(step)
    head.train()
    t_ckpt, t_run, tokens, ema = time.time(), time.time(), 0, None
    end = steps if stop_after is None else min(steps, stop_after)
    while step < end:
        batch = lmtrain.batch_at(data, step, seed, batch_size, seq_len)[rank::world].to(device)
        for g in opt.param_groups:
            g["lr"] = lmtrain.lr_at(step, cfg)
        feats, tlogits, top = target_features(tmodel, batch, aux, kept_t, precision)
        with lmtrain.autocast(device, precision):
            loss, agree = model(feats, batch, tlogits, head.t2d[top])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        tokens += batch.numel() * world
        lv = loss.item()
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        if step % cfg.log_every == 0 or step == end:
            tps = tokens / max(1e-9, time.time() - t_run)
            history.append(
                {
                    "step": step,
                    "loss": round(lv, 4),
                    "loss_ema": round(ema, 4),
                    "top1_per_ttt_step": [round(a, 3) for a in agree],
                    "tokens_per_s": round(tps, 1),
                    "lr": lmtrain.lr_at(step - 1, cfg),
                    "time": time.time(),
                }
            )
            if bar is None:
                say(
                    f"step {step}/{steps} loss {lv:.4f} (ema {ema:.4f}) top-1 by TTT step "
                    f"{' '.join(f'{a:.2f}' for a in agree)} {tps:.0f} tok/s"
                )
        if bar is not None:
            bar.set_postfix(loss=f"{ema:.3f}", top1=f"{agree[0]:.2f}")
            bar.update(1)
        if time.time() - t_ckpt > checkpoint_every_s:
            checkpoint()
            t_ckpt = time.time()
    if bar is not None:
        bar.close()
    done = step >= steps
    checkpoint(done)
    _barrier(world)
    if not done:
        return None
    rep = report(True)
    rep["wall_s_this_run"] = round(time.time() - t_run, 1)
    if eval_prompts and rank == 0:
        head.eval()
        fig = simulate_head(tmodel.cpu(), ttok, head.cpu(), eval_prompts, k=k)
        rep["acceptance"] = fig.to_dict()
        say(
            f"acceptance vs target at k={k}: alpha {fig.alpha:.3f}, acceptance_rate {fig.acceptance_rate:.3f}, "
            f"mean_accepted {fig.mean_accepted:.3f} ({len(eval_prompts)} prompts)"
        )
    if rank == 0:
        lmtrain.write_json(out / META_FILE, rep)
    return rep


# ---------------------------------------------------------------------------------------------
# acceptance


def head_weight_params(head) -> int:
    """Parameters one head call reads: fc, the layer, the norm and the LM head (not the embedding
    table: a lookup reads one row)."""
    return sum(p.numel() for n, p in head.named_parameters() if not n.startswith("embed_tokens"))


class HeadContext:
    """The head's KV cache over the real context pairs of one sequence (grows as tokens are accepted)."""

    def __init__(self):
        self.past, self.n = None, 0  # cache of the pairs at positions 0..n-1
        self.logits = self.g = None  # the last pair's outputs

    def extend(self, head, feats, seq: list[int]) -> None:
        """Add the pairs (feature p, token p+1) for p up to len(seq) - 2 that the cache lacks."""
        import torch

        n = len(seq) - 1
        if n > self.n:
            with torch.no_grad():
                self.logits, self.g, self.past = head(
                    torch.tensor([seq[self.n + 1 : n + 1]]), feats[:, self.n : n], past=self.past
                )
            self.n = n


def propose(head, feats, seq: list[int], k: int, ctx: HeadContext | None = None) -> list[int]:
    """``k`` greedy draft tokens (target ids) after ``seq``, from the target's features of seq[:-1].

    The head's context is the pairs (feature of position p, token p+1) for p < len(seq) - 1 at
    positions p (cached in ``ctx`` across calls); the last pair drafts the first token, and each
    further step feeds the head's own output g and the token it just drafted at the next
    position, as the runtime does. The draft steps never enter ``ctx``.
    """
    import torch

    ctx = ctx or HeadContext()
    ctx.extend(head, feats, seq)
    logits, g, past = ctx.logits, ctx.g, ctx.past
    out = []
    with torch.no_grad():
        for _ in range(k):
            d = int(logits[0, -1].argmax())
            out.append(d + int(head.d2t[d]))
            if len(out) == k:
                break
            logits, g, past = head(torch.tensor([[out[-1]]]), g[:, -1:], past=past)
    return out


def simulate_head(target, tok, head, prompts: list[str], *, k: int = 4, max_new_tokens: int = 64, progress=None):
    """Greedy speculative decoding with an EAGLE-3 head; figures as :func:`acceptance.simulate`.

    The target's first call (the prompt) yields the first token and the features the head needs,
    so it drafts from the second call on; every call counts in ``target_calls``.
    """
    from .acceptance import Figures, _Cache, _Verifier, weight_params

    if k < 1:
        raise EdgespecError("k must be at least 1.")
    aux = aux_layers_of(head.config)
    fig = Figures(k=k, s_draft=head_weight_params(head), s_target=weight_params(target))
    eos = tok.eos_token_id
    for p in prompts:
        tc = _Cache(target, aux)
        seq = tok(p)["input_ids"]
        n_prompt = len(seq)
        seq = seq + [int(tc.logits_after(seq)[-1].argmax())]
        ver = _Verifier(tc, calls=1)
        ctx = HeadContext()
        while len(seq) - n_prompt < max_new_tokens and eos not in seq[n_prompt:]:
            seq = ver.step(seq, propose(head, tc.feats, seq, k, ctx))
        if eos in seq[n_prompt:]:
            seq = seq[: seq.index(eos, n_prompt) + 1]
        ver.add_to(fig, seq[n_prompt : n_prompt + max_new_tokens])
        if progress:
            progress()
    return fig


def evaluate_head(
    target_dir: Path,
    head_dir: Path,
    prompts: list[str],
    *,
    k: int = 4,
    max_new_tokens: int = 64,
    show_progress: bool = True,
):
    """Load a target and a head and run :func:`simulate_head`."""
    target, tok = load_model(Path(target_dir), "target")
    head = load_head(head_dir)
    check_head_fits(head, target, head_dir, target_dir)
    attach_target_embedding(head, target)
    from .acceptance import prompt_progress

    with prompt_progress(show_progress, len(prompts), k) as progress:
        return simulate_head(target, tok, head, prompts, k=k, max_new_tokens=max_new_tokens, progress=progress)
