"""Shared by the one-process A/B experiments (backend_ab.py, paired_ab.py): arguments, warm-up, and
generations alternated repeat by repeat with paired decode-speed ratios."""

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_runners import EdgespecRunner, GenAIRunner  # noqa: E402,F401  (re-exported for the scripts)

SPEC = dict(draft_name="draft", kv_precision="u8", threads=2)


def args(default_set: str, default_n: int, default_reps: int):
    """BUNDLE [short|long] [max_new_tokens] [repeats] -> (bundle, first prompt of the set, n, repeats)."""
    bundle = Path(sys.argv[1])
    which = sys.argv[2] if len(sys.argv) > 2 else default_set
    n = int(sys.argv[3]) if len(sys.argv) > 3 else default_n
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else default_reps
    prompt = json.loads((ROOT / "prompts" / f"{which}.jsonl").read_text().splitlines()[0])["prompt"]
    return bundle, prompt, n, reps


def alternate(runs, prompt: str, n: int, reps: int, rotate: int, extra=lambda o: ""):
    """Warms every (name, runner, config) up on the first calls of each shape, then runs them `reps`
    times, repeat r starting at run r % rotate. Returns per-name lists of tpot and ttft (ms)."""
    for _, r, c in runs:
        r.generate(prompt[:300], dict(c, max_new_tokens=4, ignore_eos=True))
    tpot = {name: [] for name, _, _ in runs}
    ttft = {name: [] for name, _, _ in runs}
    for rep in range(reps):
        order = runs[rep % rotate :] + runs[: rep % rotate]
        for name, r, c in order:
            o = r.generate(prompt, dict(c, max_new_tokens=n, ignore_eos=True))
            tpot[name].append((o["wall_ms"] - o["ttft_ms"]) / (o["n_new"] - 1))
            ttft[name].append(o["ttft_ms"])
            print(rep, name, "tpot", round(tpot[name][-1], 1), "ttft", round(o["ttft_ms"]), extra(o), flush=True)
    print("median tpot_ms", {k: round(statistics.median(v), 1) for k, v in tpot.items()})
    return tpot, ttft


def paired(a: list, b: list) -> tuple[float, list]:
    """Median of b[i] / a[i] (a's speed relative to b's when both are times) and the ratios."""
    ratios = [y / x for x, y in zip(a, b)]
    return statistics.median(ratios), [round(p, 2) for p in ratios]


CONFIGS = {
    "ar": dict(policy="ar"),
    "k2": dict(policy="draft", k=2),
    "k4": dict(policy="draft", k=4),
    "adaptive": dict(policy="draft", k=None),
    "ngram": dict(policy="ngram", k=4),
}


def two_pipelines(base: str, base_runner, new: str, new_runner, configs: dict = CONFIGS) -> None:
    """argv: BUNDLE [short|long] [max_new_tokens] [repeats] [prompts]. Runs every configuration on
    both runners over the first `prompts` prompts of the set, generations alternated, and prints
    per configuration the median paired decode speed new / base with the per-repeat ratios."""
    which = sys.argv[2] if len(sys.argv) > 2 else "short"
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    n_prompts = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    runs = [
        (f"{name}_{side}", r, c) for name, c in configs.items() for side, r in ((base, base_runner), (new, new_runner))
    ]
    prompts = [
        json.loads(x)["prompt"] for x in (ROOT / "prompts" / f"{which}.jsonl").read_text().splitlines()[:n_prompts]
    ]
    res = {name: [] for name, _, _ in runs}
    for p in prompts:
        tpot, _ = alternate(runs, p, n, reps, rotate=2)
        for k, v in tpot.items():
            res[k] += v
    for name in configs:
        speed, per = paired(res[f"{name}_{new}"], res[f"{name}_{base}"])
        print(f"{name}: {new}/{base} decode speed {speed:.3f} (per repeat {[round(x, 3) for x in per]})")
