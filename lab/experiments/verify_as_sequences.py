"""Does a verify call cost less when its n tokens go to OpenVINO's CPU paged attention as n
one-token subsequences (past_lens P, P+1, ..., all on the same block table) instead of one
n-token subsequence? The CPU kernel sends any subsequence with more than one query token through
its "mixed" path, which first transposes and dequantizes that subsequence's whole KV cache into
scratch buffers, so a short verify pays for the whole context; one-token subsequences take the
decode kernel, which reads the cache in place. The new tokens' K/V are all written before any
attention runs, so subsequence j sees tokens P..P+j-1 of the same call: causal, as one sequence.

Plain OpenVINO, the bundle's target IR in its paged-attention form, fixed-width compiles (as
edgespec runs them) and dynamic ones; per context: the decode step, then each width as one
sequence and as n sequences, interleaved, median ms; and the largest |logit difference| between
the two layouts at f32 precision with an f32 KV cache (they must agree).
    .venv/bin/python lab/experiments/verify_as_sequences.py BUNDLE [contexts] [calls] [model] [widths]
contexts: comma-separated (default 200,1000,1800); model: target (default) or a drafter name;
widths: comma-separated call widths (default 2,3,5)."""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
from openvino._offline_transformations import paged_attention_transformation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_runners import paged_inputs  # noqa: E402  (the layout edgespec and the bench probe use)

bundle = Path(sys.argv[1])
contexts = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "200,1000,1800").split(",")]
calls = int(sys.argv[3]) if len(sys.argv) > 3 else 60
name = sys.argv[4] if len(sys.argv) > 4 else "target"
xml = bundle / name / "openvino_model.xml"
if not xml.exists():
    xml = bundle / "drafts" / name / "openvino_model.xml"
widths = [int(x) for x in (sys.argv[5] if len(sys.argv) > 5 else "2,3,5").split(",")]
core = ov.Core()


def compiles(props: dict) -> dict:
    m = core.read_model(str(xml))
    paged_attention_transformation(m, False, False)
    out = {None: core.compile_model(m, "CPU", props)}
    for w in [1] + widths:
        c = m.clone()
        c.reshape({"input_ids": ov.PartialShape([w]), "position_ids": ov.PartialShape([w])})
        out[w] = core.compile_model(c, "CPU", props)
    return out


class Seq:
    """One sequence on caches for ``budget`` tokens, a request per compile sharing them."""

    def __init__(self, cms: dict, budget: int, fixed: bool):
        self.reqs = {w: c.create_infer_request() for w, c in cms.items()}
        self.fixed = fixed
        caches = [i for i in cms[None].inputs if "cache." in i.get_any_name()]
        self.block = next(
            i.get_partial_shape()[2].get_length() for i in caches if i.get_any_name().startswith("value_cache.")
        )
        nb = budget // self.block + 2
        for i in caches:
            t = ov.Tensor(i.get_element_type(), [nb] + [i.get_partial_shape()[j].get_length() for j in range(1, 4)])
            for r in self.reqs.values():
                r.set_tensor(i.get_any_name(), t)

    def call(self, ids: np.ndarray, past: int, split: bool) -> tuple[float, np.ndarray]:
        n = len(ids)
        inp = paged_inputs(ids, past, self.block, split)
        req = self.reqs[n] if self.fixed and n in self.reqs else self.reqs[None]
        t0 = time.perf_counter()
        req.infer(inp)
        ms = (time.perf_counter() - t0) * 1e3
        return ms, req.get_tensor("logits").data.copy()


rng = np.random.default_rng(0)
print(f"{xml}")
exact = compiles({"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32", "INFERENCE_NUM_THREADS": 2})
for ctx in contexts[:1]:
    s = Seq(exact, ctx + 64, True)
    prompt = rng.integers(3, 256, size=ctx, dtype=np.int64)
    s.call(prompt, 0, False)
    worst = 0.0
    for n in widths:
        ids = rng.integers(3, 256, size=n, dtype=np.int64)
        _, a = s.call(ids, ctx, False)
        _, b = s.call(ids, ctx, True)
        worst = max(worst, float(np.abs(a - b).max()))
        same = bool((a.reshape(n, -1).argmax(-1) == b.reshape(n, -1).argmax(-1)).all())
        print(
            f"f32, context {ctx}, width {n}: max |logit difference| one vs split {np.abs(a - b).max():.2e}, argmax same {same}"
        )

# A u8 KV cache quantizes keys by channel: every write re-quantizes the whole block it lands in,
# and the CPU plugin does that per subsequence, in parallel, so one-token subsequences sharing a
# block race on it. Shown here: after the same n tokens written both ways, the next decode step's
# logits (f32 inference) differ between the layouts far more with u8 than with an f16 cache.
for kv in ("f16", "u8"):
    cms = compiles({"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": kv, "INFERENCE_NUM_THREADS": 2})
    ctx = contexts[0]
    prompt = rng.integers(3, 256, size=ctx, dtype=np.int64)
    worst = {n: 0.0 for n in widths}
    for trial in range(5):
        for n in widths:
            ids = rng.integers(3, 256, size=n, dtype=np.int64)
            nxt = rng.integers(3, 256, size=1, dtype=np.int64)
            out = []
            for split in (False, True):
                s = Seq(cms, ctx + 64, True)
                s.call(prompt, 0, False)
                s.call(ids, ctx, split)
                out.append(s.call(nxt, ctx + n, False)[1])
            worst[n] = max(worst[n], float(np.abs(out[0] - out[1]).max()))
    print(
        f"KV {kv}, context {ctx}: max |next-step logit difference| one vs split, 5 trials: "
        + ", ".join(f"w{n} {d:.2e}" for n, d in worst.items()),
        flush=True,
    )

fast = compiles({"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"})
for fixed in (True, False):
    for ctx in contexts:
        # one request set per layout (each request then always sees the same input shapes, as in a
        # decode loop), both on the same compiles, each after its own prefill of the same prompt
        prompt = rng.integers(3, 256, size=ctx, dtype=np.int64)
        seqs = {False: Seq(fast, ctx + 64, fixed), True: Seq(fast, ctx + 64, fixed)}
        for s in seqs.values():
            s.call(prompt, 0, False)
        keys = [("decode", False)] + [(n, split) for n in widths for split in (False, True)]
        t = {k: [] for k in keys}
        for key in keys:  # untimed first call of each
            n = 1 if key[0] == "decode" else key[0]
            seqs[key[1]].call(rng.integers(3, 256, size=n, dtype=np.int64), ctx, key[1])
        for _ in range(calls):
            for key in keys:
                n = 1 if key[0] == "decode" else key[0]
                ms, _ = seqs[key[1]].call(rng.integers(3, 256, size=n, dtype=np.int64), ctx, key[1])
                t[key].append(ms)
        med = {k: statistics.median(v) for k, v in t.items()}
        parts = [f"decode {med[('decode', False)]:.2f}"]
        for n in widths:
            parts.append(
                f"w{n} one {med[(n, False)]:.2f} / split {med[(n, True)]:.2f} ({med[(n, False)] / med[(n, True)]:.2f}x)"
            )
        print(f"{'fixed' if fixed else 'dynamic'} compiles, context {ctx}: " + ", ".join(parts) + " ms", flush=True)
