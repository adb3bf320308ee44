"""What printing each streamed chunk through rich (as `edgespec demo` does) costs the demo's
speculative generation, against the same generation printing nothing, alternated on one pipeline:
    .venv/bin/python lab/experiments/demo_streaming_cost.py BUNDLE [repeats]
Prints total_ms and callback_ms (the time spent in the streamer) of each."""

import io
import sys

from rich.console import Console

import edgespec
from edgespec.demo import default_prompt

bundle = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 4
pipe = edgespec.Pipeline.load(bundle)
prompt = default_prompt()
con = Console(file=io.StringIO(), highlight=False)  # renders as on a terminal, shows nothing
pipe.generate(prompt, max_new_tokens=4, policy="draft")
for _ in range(reps):
    a = pipe.generate(
        prompt, max_new_tokens=128, policy="draft", streamer=lambda chunk: con.print(chunk, end="", style="bold")
    ).stats
    b = pipe.generate(prompt, max_new_tokens=128, policy="draft").stats
    print(
        f"printed: total {a.total_ms:.1f} ms, callback {a.callback_ms:.1f} ms | "
        f"not printed: total {b.total_ms:.1f} ms, callback {b.callback_ms:.1f} ms"
    )
