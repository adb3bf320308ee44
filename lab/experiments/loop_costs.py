"""What the loop pays around the model calls on a small target (session 6's figures):
    .venv/bin/python lab/experiments/loop_costs.py BUNDLE [TOKENS]
1. one openvino-tokenizers detokenizer call on windows of 5 / 16 / 28 ids (what streaming paid
   per round before text was spelled from the byte table);
2. per-delta callback cost (the native stats' callback_ms / generated tokens) of a plain-decoding
   generation through the C ABI: a trivial callback, one that appends the delta on the generating
   thread (GenAI-streamer-like, = Pipeline.generate(streamer=)), and Pipeline.stream() (a queue
   to another thread). Rounds are interleaved; medians over 5 rounds.
"""

import ctypes
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
import openvino_tokenizers  # noqa: F401 - registers the tokenizer ops

import edgespec
from edgespec import _native

bundle = Path(sys.argv[1])
tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 64
target = bundle / "target"
dec = ov.Core().compile_model(str(target / "openvino_detokenizer.xml"), "CPU").create_infer_request()
for n in (5, 16, 28):
    ids = np.arange(100, 100 + n, dtype=np.int64)[None]
    for _ in range(20):
        dec.infer({0: ids})
    t = time.perf_counter()
    for _ in range(500):
        dec.infer({0: ids})
    print(f"detokenizer call, {n} ids: {(time.perf_counter() - t) / 500 * 1e6:.0f} us")

pipe = edgespec.Pipeline.load(str(bundle), draft="none")
lib = _native.lib()
prompt = "def foo(x):\n    return"
cfg = lib.es_generation_default_config()
cfg.max_new_tokens, cfg.ignore_eos, cfg.policy = tokens, 1, _native.POLICIES["autoregressive"]
kept: list = []
callbacks = {
    "trivial": _native.STREAM_CALLBACK(lambda p, n, u: 0),
    "append on this thread": _native.STREAM_CALLBACK(lambda p, n, u: kept.append(ctypes.string_at(p, n)) or 0),
}


def direct(cb) -> float:
    out = ctypes.c_void_p()
    _native.check(lib.es_generate(pipe._h, prompt.encode(), ctypes.byref(cfg), cb, None, ctypes.byref(out)))
    st = _native.Stats()
    lib.es_result_stats(out, ctypes.byref(st))
    lib.es_result_free(out)
    return st.callback_ms / st.generated_tokens * 1e3


def streamed() -> float:
    with pipe.stream(prompt, max_new_tokens=tokens, policy="autoregressive", ignore_eos=True) as st:
        for _ in st:
            pass
    s = st.result.stats
    return s.callback_ms / s.generated_tokens * 1e3


res: dict = {}
for _ in range(5):
    for name, cb in callbacks.items():
        res.setdefault(name, []).append(direct(cb))
    res.setdefault("Pipeline.stream() (queue to another thread)", []).append(streamed())
for name, v in res.items():
    print(f"callback per delta, {name}: {statistics.median(v):.0f} us")
