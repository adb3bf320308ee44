"""Would a 3-token tree beat the 2-token chain for an EAGLE-3 head? Greedy rounds at k=2 (torch, the
demo target and head): per round, whether the head's top-1 first token is the target's, its second
token given the first, and, where the top-1 is rejected, whether its second choice is the target's.
A verify of width 3 can hold either the chain (t1, t2) or the tree (t1, t2 | alt1); the tree adds
P(not t1) * P(alt1 | not t1) tokens per round for no extra head call.
    .venv/bin/python lab/experiments/head_second_choice.py [--target models/demo/target]
        [--head models/demo/head-eagle3] [-n 16] [--max-new-tokens 64]
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from exp_common import user_errors  # noqa: E402

from export.draft.acceptance import _Cache, default_prompts  # noqa: E402
from export.draft.eagle3 import (  # noqa: E402
    HeadContext,
    attach_target_embedding,
    aux_layers_of,
    check_head_fits,
    load_head,
    load_model,
)

ap = argparse.ArgumentParser()
ap.add_argument("--target", default=str(ROOT / "models/demo/target"))
ap.add_argument("--head", default=str(ROOT / "models/demo/head-eagle3"))
ap.add_argument("-n", type=int, default=16)
ap.add_argument("--max-new-tokens", type=int, default=64)
a = ap.parse_args()

import torch  # noqa: E402

with user_errors():
    target, tok = load_model(Path(a.target), "target")
    head = load_head(Path(a.head))
    check_head_fits(head, target, Path(a.head), Path(a.target))
    attach_target_embedding(head, target)
aux = aux_layers_of(head.config)

rounds = t1 = t2 = alt = miss1 = 0
for i, p in enumerate(default_prompts(a.n)):
    tc = _Cache(target, aux)
    seq = tok(p)["input_ids"]
    n_prompt = len(seq)
    seq = seq + [int(tc.logits_after(seq)[-1].argmax())]
    ctx = HeadContext()
    while len(seq) - n_prompt < a.max_new_tokens:
        ctx.extend(head, tc.feats, seq)
        top = torch.topk(ctx.logits[0, -1], 2).indices.tolist()
        d1, d_alt = (d + int(head.d2t[d]) for d in top)
        with torch.no_grad():
            logits, _, _ = head(torch.tensor([[d1]]), ctx.g[:, -1:], past=ctx.past)
        d = int(logits[0, -1].argmax())
        d2 = d + int(head.d2t[d])
        # the target's greedy tokens after seq, after seq + d1
        rows = tc.logits_after(seq + [d1, d2])
        g1, g2, g3 = (int(x) for x in rows[-3:].argmax(-1))
        rounds += 1
        if d1 == g1:
            t1 += 1
            if d2 == g2:
                t2 += 1
                seq = seq + [d1, d2, g3]
            else:
                seq = seq + [d1, g2]
        else:
            miss1 += 1
            alt += d_alt == g1
            seq = seq + [g1]
    print(f"prompt {i + 1}/{a.n}", file=sys.stderr, flush=True)

p1, p2, pa = t1 / rounds, t2 / max(1, t1), alt / max(1, miss1)
chain = 1 + p1 + p1 * p2
tree = chain + (1 - p1) * pa
print(f"{a.head} on {a.target}: {a.n} prompts x {a.max_new_tokens} tokens, {rounds} rounds at k=2")
print(f"P(t1) {p1:.3f}  P(t2 | t1) {p2:.3f}  P(alt1 | not t1) {pa:.3f} ({alt} of {miss1})")
print(f"tokens per width-3 verify: chain (t1, t2) {chain:.3f}, tree (t1, t2 | alt1) {tree:.3f}: x{tree / chain:.3f}")
