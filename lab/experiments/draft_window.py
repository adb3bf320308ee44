"""Drafter window on long prompts: per window, acceptance, draft time per drafted token, decode tpot,
TTFT, whether the tokens equal plain decoding's, and the drafter's prompt catch-up (draft_ms of a
generation with a single k=1 round), windows interleaved prompt by prompt:
    .venv/bin/python lab/experiments/draft_window.py BUNDLE [max_new_tokens] [windows] [k] [repeats]
windows: comma list, 0 = the drafter's whole context (default '0,1024,512,256'); k: fixed k or -1 (adaptive).
"""

import json
import statistics
import sys

import edgespec

B = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
windows = [int(w) for w in (sys.argv[3] if len(sys.argv) > 3 else "0,1024,512,256").split(",")]
k = int(sys.argv[4]) if len(sys.argv) > 4 else 2
repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 2
prompts = [json.loads(line)["prompt"] for line in open("lab/prompts/long.jsonl")]
pipe = edgespec.Pipeline.load(B, draft="draft", kv_precision="u8", threads=2)
pipe.generate(prompts[0][:300], max_new_tokens=8)
res = {w: [] for w in windows}
catchup = {w: [] for w in windows}
for rep in range(repeats):
    for i, prompt in enumerate(prompts):
        ref = pipe.generate(prompt, max_new_tokens=n, ignore_eos=True, policy="autoregressive")
        order = windows if (rep + i) % 2 == 0 else windows[::-1]
        for w in order:
            r = pipe.generate(prompt, max_new_tokens=n, ignore_eos=True, policy="draft", k=k, draft_window=w)
            s = r.stats
            one = pipe.generate(prompt, max_new_tokens=3, ignore_eos=True, policy="draft", k=1, draft_window=w)
            catchup[w].append(one.stats.draft_ms)
            res[w].append(
                dict(
                    acc=s.accepted / max(s.drafted, 1),
                    draft=s.draft_ms / max(s.drafted, 1),
                    tpot=s.tpot_ms,
                    ttft=s.ttft_ms,
                    ar=ref.stats.tpot_ms,
                    same=r.tokens == ref.tokens,
                    ptok=s.prompt_tokens,
                )
            )
print(
    f"{len(prompts)} prompts ({min(x['ptok'] for x in res[windows[0]])}-{max(x['ptok'] for x in res[windows[0]])} tokens) x {repeats}, k={k}, {n} new tokens"
)
base = windows[0]
for w in windows:
    rows = res[w]
    med = lambda key: statistics.median(x[key] for x in rows)  # noqa: E731
    paired = statistics.median(b["tpot"] / x["tpot"] for x, b in zip(rows, res[base]))
    print(
        f"window {w:5d}: acceptance {med('acc'):.3f}  draft ms/token {med('draft'):.2f}  tpot {med('tpot'):.2f} ms "
        f"(AR {med('ar'):.2f})  ttft {med('ttft'):.0f} ms  speed vs window {base}: {paired:.3f}  "
        f"same as AR: {all(x['same'] for x in rows)}  prompt catch-up {statistics.median(catchup[w]):.1f} ms"
    )
