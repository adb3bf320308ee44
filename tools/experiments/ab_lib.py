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
        order = runs[rep % rotate:] + runs[:rep % rotate]
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
