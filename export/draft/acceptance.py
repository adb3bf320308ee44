"""Acceptance figures of a drafter against its target: a greedy speculative simulation in torch.

For every prompt, the loop below runs greedy speculative decoding at a fixed draft length ``k``:
the drafter proposes ``k`` tokens greedily, the target scores them in one call, the longest
agreeing prefix is accepted and the target's own token is appended (the correction, or the bonus
token when all ``k`` agree). The output is exactly the target's greedy output (the test oracle).

Metric names as in docs/metrics.md:
  acceptance_rate  = accepted / drafted
  alpha            = accepted / (accepted + rounds that rejected a token)   (per-token acceptance:
                     the chance a drafted token is accepted when the ones before it were)
  mean_accepted    = generated tokens / target calls              (τ, block efficiency)
  mbsu             = τ / (1 + k · S_draft / S_target)

``S`` is the weight bytes one forward call loads: every parameter except an *untied* input
embedding table (a lookup reads one row, not the table; a tied table is read in full by the LM
head). Both models are taken at the same precision, so bytes are proportional to parameters.

Drafter kinds:
  same     same vocabulary: proposals are target ids.
  trimmed  VocabTrim'd (``trim_id_map.i32`` in its directory): inputs are mapped target id ->
           trimmed id (ids outside the kept set become the trimmed ``<unk>``), proposals are mapped
           back with the id map. Proposals stay lossless.
  cross    its own tokenizer (OmniDraft-style, approximated): the drafter reads the decoded text
           re-tokenized with its tokenizer, proposes ``k`` of its tokens, their text is
           re-tokenized with the target tokenizer and the first ``k`` target tokens are the
           proposal. The runtime's translator caches these spans (n-gram cache) instead of
           re-tokenizing; the acceptance it sees is the same as long as the cache is warm.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgespec.errors import EdgespecError


@dataclass
class Figures:
    k: int
    prompts: int = 0
    generated: int = 0
    target_calls: int = 0
    drafted: int = 0
    accepted: int = 0
    rejected_rounds: int = 0  # verification rounds that rejected a drafted token (the rest accepted all)
    s_draft: int = 0
    s_target: int = 0
    draft_ms_per_token: float | None = None
    per_prompt: list = field(default_factory=list)

    def add_prompt(self, output_ids: list[int], calls: int, drafted: int, accepted: int, rejected: int) -> None:
        """Counts one prompt's simulated generation (its output ids, cut at max_new_tokens)."""
        self.prompts += 1
        self.generated += len(output_ids)
        self.target_calls += calls
        self.drafted += drafted
        self.accepted += accepted
        self.rejected_rounds += rejected
        self.per_prompt.append(
            {
                "generated": len(output_ids),
                "target_calls": calls,
                "accepted": accepted,
                "drafted": drafted,
                "output_ids": output_ids,
            }
        )

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def alpha(self) -> float:
        """Per-token acceptance: P(a drafted token is accepted | the ones before it were)."""
        tested = self.accepted + self.rejected_rounds
        return self.accepted / tested if tested else 0.0

    @property
    def mean_accepted(self) -> float:
        return self.generated / self.target_calls if self.target_calls else 0.0

    @property
    def mbsu(self) -> float:
        return mbsu(self.mean_accepted, self.k, self.s_draft, self.s_target)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("per_prompt")
        d.update(
            acceptance_rate=round(self.acceptance_rate, 4),
            alpha=round(self.alpha, 4),
            mean_accepted=round(self.mean_accepted, 4),
            mbsu=round(self.mbsu, 4),
            size_ratio=round(self.s_draft / self.s_target, 4) if self.s_target else None,
        )
        return d


def mbsu(tau: float, k: int, s_draft: float, s_target: float) -> float:
    return tau / (1.0 + k * s_draft / s_target)


def weight_params(model) -> int:
    """Parameters one forward call reads (an untied input embedding table counts as zero)."""
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is emb
    n, seen = 0, set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if p is emb and not tied:
            continue
        n += p.numel()
    return n


class _Cache:
    """A model with a KV cache over a prefix of an id sequence; feeds only what the cache lacks.

    With ``feature_layers`` (an EAGLE-3 head's target), ``self.feats`` [1, len(ids), 3·H] also
    holds the outputs of those layers at every cached position (the head's input).
    """

    def __init__(self, model, feature_layers: list[int] | None = None):
        self.model, self.ids, self.past = model, [], None
        self.layers, self.feats = feature_layers, None

    def logits_after(self, ids: list[int]):
        """Logits of the next token after each position of ``ids`` beyond the cached prefix."""
        import torch

        n = 0
        while n < len(self.ids) and n < len(ids) - 1 and self.ids[n] == ids[n]:
            n += 1
        if n < len(self.ids):
            if n == 0 or self.past is None:
                self.past, self.ids, self.feats = None, [], None
                n = 0
            else:
                self.past.crop(n)
                self.ids = self.ids[:n]
                self.feats = self.feats[:, :n] if self.feats is not None else None
        new = ids[n:]
        if self.layers is None:
            with torch.no_grad():
                out = self.model(input_ids=torch.tensor([new]), past_key_values=self.past, use_cache=True)
        else:
            from .eagle3 import layer_outputs

            with torch.no_grad(), layer_outputs(self.model, self.layers) as cap:
                out = self.model(input_ids=torch.tensor([new]), past_key_values=self.past, use_cache=True)
            f = cap.features()
            self.feats = f if self.feats is None else torch.cat((self.feats, f), dim=1)
        self.past, self.ids = out.past_key_values, list(ids)
        return out.logits[0]


class _Verifier:
    """Greedy verification by the target (``tc``) of one prompt's proposals, with its counters."""

    def __init__(self, tc: _Cache, calls: int = 0):
        self.tc = tc
        self.calls, self.drafted, self.accepted, self.rejected = calls, 0, 0, 0

    def step(self, seq: list[int], props: list[int]) -> list[int]:
        """One target call over ``seq + props``: ``seq`` plus the proposals the target agrees with,
        then the target's own next token."""
        logits = self.tc.logits_after(seq + props)
        self.calls += 1
        # positions: logits[-(len(props)+1)] predicts the token after seq
        choice = logits[logits.shape[0] - len(props) - 1 :].argmax(-1).tolist()
        n_acc = 0
        while n_acc < len(props) and props[n_acc] == choice[n_acc]:
            n_acc += 1
        self.drafted += len(props)
        self.accepted += n_acc
        self.rejected += n_acc < len(props)
        return seq + props[:n_acc] + [choice[n_acc]]

    def add_to(self, fig: Figures, output_ids: list[int]) -> None:
        """Record this prompt's output and counters in ``fig``."""
        fig.add_prompt(output_ids, self.calls, self.drafted, self.accepted, self.rejected)


def _load(path: Path):
    from .fastdraft import load_model

    return load_model(Path(path))


def read_id_map(path: Path):
    import numpy as np

    return np.fromfile(Path(path) / "trim_id_map.i32", dtype="<i4")


def drafter_kind(draft_dir: Path, draft_tok, target_tok) -> str:
    if (Path(draft_dir) / "trim_id_map.i32").is_file():
        return "trimmed"
    if draft_tok.get_vocab() == target_tok.get_vocab():
        return "same"
    return "cross"


def simulate(
    target,
    target_tok,
    draft,
    draft_tok,
    prompts: list[str],
    *,
    k: int = 4,
    max_new_tokens: int = 64,
    kind: str = "same",
    id_map=None,
    progress=None,
) -> Figures:
    """Greedy speculative decoding of every prompt; returns the counters (see module docstring)."""
    import numpy as np

    if k < 1:
        raise EdgespecError("k must be at least 1.")
    fig = Figures(k=k, s_draft=weight_params(draft), s_target=weight_params(target))
    eos = target_tok.eos_token_id
    inv = None
    if kind == "trimmed":
        inv = np.full(
            max(len(target_tok), int(id_map.max()) + 1),
            int(np.nonzero(id_map == target_tok.unk_token_id)[0][0])
            if (id_map == target_tok.unk_token_id).any()
            else 0,
            dtype=np.int64,
        )
        inv[id_map] = np.arange(len(id_map))
    for p in prompts:
        ver, dc = _Verifier(_Cache(target)), _Cache(draft)
        seq = target_tok(p)["input_ids"]
        n_prompt = len(seq)
        while len(seq) - n_prompt < max_new_tokens:
            props = _propose(dc, seq, k, kind, inv, id_map, draft_tok, target_tok, n_prompt)
            seq = ver.step(seq, props)
            if eos in seq[n_prompt:]:
                seq = seq[: seq.index(eos, n_prompt) + 1]
                break
        ver.add_to(fig, seq[n_prompt : n_prompt + max_new_tokens])
        if progress:
            progress()
    return fig


def _propose(dc: _Cache, seq: list[int], k: int, kind: str, inv, id_map, draft_tok, target_tok, n_prompt: int):
    if kind in ("same", "trimmed"):
        ids = seq if kind == "same" else inv[seq].tolist()
        out = []
        for _ in range(k):
            nxt = int(dc.logits_after(ids + out)[-1].argmax())
            out.append(nxt)
        return out if kind == "same" else [int(id_map[i]) for i in out]
    # cross vocabulary: text -> draft ids -> k draft tokens -> text -> target ids
    text = target_tok.decode(seq, skip_special_tokens=True)
    ctx = draft_tok(text)["input_ids"]
    new = []
    for _ in range(k):
        new.append(int(dc.logits_after(ctx + new)[-1].argmax()))
        if new[-1] == draft_tok.eos_token_id:
            break
    full = draft_tok.decode(ctx + new, skip_special_tokens=True)
    head = draft_tok.decode(ctx, skip_special_tokens=True)
    if not full.startswith(head) or len(full) == len(head):
        return []
    props = target_tok(full[len(head) :], add_special_tokens=False)["input_ids"][:k]
    if new and new[-1] == draft_tok.eos_token_id and len(props) < k:
        props.append(target_tok.eos_token_id)
    return props


def draft_step_ms(draft, n_ctx: int = 128, steps: int = 32) -> float:
    """Wall-clock of one single-token drafter call (KV cache of ``n_ctx`` tokens), median of ``steps``."""
    import statistics

    import torch

    vocab = draft.config.vocab_size
    with torch.no_grad():
        out = draft(input_ids=torch.randint(3, vocab, (1, n_ctx)), use_cache=True)
        past = out.past_key_values
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            out = draft(input_ids=torch.tensor([[5]]), past_key_values=past, use_cache=True)
            times.append((time.perf_counter() - t) * 1000)
            past.crop(n_ctx)
    return statistics.median(times)


@contextlib.contextmanager
def prompt_progress(show: bool, n: int, k: int):
    """A bar over ``n`` simulated prompts on a terminal's stderr (when ``show``): yields its update
    callback for a simulation's ``progress``, or None without a bar."""
    bar = None
    if show and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=n, desc=f"acceptance k={k}", unit="prompt")
    try:
        yield bar.update if bar else None
    finally:
        if bar:
            bar.close()


def evaluate(
    target_dir: Path,
    draft_dir: Path,
    prompts: list[str],
    *,
    k: int = 4,
    max_new_tokens: int = 64,
    timing: bool = False,
    show_progress: bool = True,
) -> Figures:
    """Load both checkpoints and run :func:`simulate`; the drafter kind is detected from the files."""
    target, target_tok = _load(target_dir)
    draft, draft_tok = _load(draft_dir)
    kind = drafter_kind(draft_dir, draft_tok, target_tok)
    id_map = read_id_map(draft_dir) if kind == "trimmed" else None
    with prompt_progress(show_progress, len(prompts), k) as progress:
        fig = simulate(
            target,
            target_tok,
            draft,
            draft_tok,
            prompts,
            k=k,
            max_new_tokens=max_new_tokens,
            kind=kind,
            id_map=id_map,
            progress=progress,
        )
    if timing:
        fig.draft_ms_per_token = round(draft_step_ms(draft), 3)
    return fig


def default_prompts(n: int | None = None) -> list[str]:
    """The held-out demo prompts (models/demo/prompts_heldout.jsonl)."""
    from edgespec.export.draft.corpus import load_prompts

    f = demo_dir() / "prompts_heldout.jsonl"
    rows = load_prompts(f)
    return [r["prompt"] for r in rows[:n]]


def demo_dir() -> Path:
    import edgespec.models as m

    return Path(list(m.__path__)[0]) / "demo"


def save_figures(path: Path, key: str, fig: Figures) -> None:
    """Merge ``fig`` under ``key`` into the JSON file ``path`` (created if absent)."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = fig.to_dict()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
