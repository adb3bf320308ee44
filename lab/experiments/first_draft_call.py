"""Why a round's first drafter call costs more than the drafter's later calls: plain OpenVINO,
no edgespec code.
    .venv/bin/python lab/experiments/first_draft_call.py BUNDLE [CTX] [ROUNDS] [SWEEP_MB] [VARIANT;...]
Per round, the drafter's three 1-token calls in a row, timed one by one (inputs set before the
clock starts), right after each of these, interleaved round by round in rotating order:
  drafter      the drafter's own previous call (back to back, as the cost probe times it);
  target       one 3-token verify call of the target (as in a k=2 round);
  sleep        time.sleep for about a verify's time: OpenVINO's threads idle, caches kept;
  spin         this thread busy-waiting as long, touching no memory: the same, one core busy;
  sweep        numpy reading SWEEP_MB of memory (default: twice the target's weight file) on
               this thread: caches evicted, OpenVINO's threads idle;
  sweep-small  the same reading 1 MB (stays in the L2/L3 caches).
A VARIANT is name=PROP:VALUE,... for the drafter's compile properties (e.g.
't1=INFERENCE_NUM_THREADS:1'); each is timed beside the runtime's (2 threads, LATENCY, u8 KV).
A variant with EXCLUSIVE_ASYNC_REQUESTS gets its own target compiled with it too (all CPU models
so compiled: OpenVINO's internal switch for one task executor shared by them).
Prints the median ms of the 1st, 2nd and 3rd call after each. `sweep` against `sleep` and `spin`
separates the two readings of the first call's extra cost: the drafter's weights evicted from the
CPU caches by the target, or the drafter's threads (and, on a VM, its vCPUs) idle while the target
runs; on the 2-core reference VM all three cost about the same, and more than `target`."""

import os
import statistics
import sys
import time

import numpy as np
import openvino as ov

sys.path.insert(0, os.path.dirname(__file__))
from pa_vs_stateful_calls_lib import paged_call, paged_request, set_paged_inputs  # noqa: E402

bundle = sys.argv[1]
ctx = int(sys.argv[2]) if len(sys.argv) > 2 else 200
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 60
target_xml, draft_xml = f"{bundle}/target/openvino_model.xml", f"{bundle}/draft/openvino_model.xml"
target_mb = os.path.getsize(target_xml.replace(".xml", ".bin")) / 2**20
sweep_mb = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else 2 * target_mb
variants = {"base": {}}
for v in sys.argv[5].split(";") if len(sys.argv) > 5 and sys.argv[5] else []:
    vname, _, spec = v.partition("=")
    variants[vname] = dict(p.split(":", 1) for p in spec.split(",") if p)
core = ov.Core()
props = {"KV_CACHE_PRECISION": "u8", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2}
blocks = (ctx + 64) // 32 + 2
base_target = paged_request(core, target_xml, props, blocks)
targets = {
    v: paged_request(core, target_xml, {**props, **p}, blocks) if "EXCLUSIVE_ASYNC_REQUESTS" in p else base_target
    for v, p in variants.items()
}
drafts = {v: paged_request(core, draft_xml, {**props, **p}, blocks) for v, p in variants.items()}
vocab = int(core.read_model(target_xml).output("logits").get_partial_shape()[2].get_length())
rng = np.random.default_rng(0)
prompt = [int(x) for x in rng.integers(3, vocab, ctx)]
for m in {id(x): x for x in [*targets.values(), *drafts.values()]}.values():
    paged_call(m, prompt, 0, 1)
big = np.ones(int(sweep_mb * 2**20 / 4), np.float32)
small = np.ones(2**18, np.float32)
verify_ids = [int(x) for x in rng.integers(3, vocab, 3)]
t0 = time.perf_counter()
for _ in range(20):
    paged_call(base_target, verify_ids, ctx, 3)
verify_s = (time.perf_counter() - t0) / 20


def before(name, draft, target):
    if name == "drafter":
        set_paged_inputs(draft, [5], ctx)
        draft.infer()
    elif name == "target":
        set_paged_inputs(target, verify_ids, ctx, 3)
        target.infer()
    elif name == "sleep":
        time.sleep(verify_s)
    elif name == "spin":
        end = time.perf_counter() + verify_s
        while time.perf_counter() < end:
            pass
    elif name == "sweep":
        big.sum()
    elif name == "sweep-small":
        for _ in range(8):
            small.sum()


names = ["drafter", "target", "sleep", "spin", "sweep", "sweep-small"]
cases = [(v, n) for v in variants for n in names]
res = {c: [[], [], []] for c in cases}
for r in range(rounds):
    for v, n in cases[r % len(cases) :] + cases[: r % len(cases)]:
        draft = drafts[v]
        set_paged_inputs(draft, [7], ctx)
        before(n, draft, targets[v])
        for j in range(3):
            if j:
                set_paged_inputs(draft, [7 + j], ctx + j)
            t = time.perf_counter()
            draft.infer()
            res[v, n][j].append((time.perf_counter() - t) * 1e3)
print(
    f"ctx {ctx}, {rounds} rounds; a 3-token verify {verify_s * 1e3:.2f} ms; sweep {sweep_mb:.0f} MB "
    f"(target weights {target_mb:.0f} MB)"
)
for v, n in cases:
    m = [statistics.median(x) for x in res[v, n]]
    print(f"{v:>6} after {n:>11}: drafter call 1 {m[0]:.3f} ms, 2 {m[1]:.3f}, 3 {m[2]:.3f}")
