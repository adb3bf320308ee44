"""Historical: the runtime no longer reads EDGESPEC_PAGED_SPLIT_MAX (A/B knobs left the library);
rerun this at commit e66e029, where it still did.

Short calls as one-token subsequences (model_paged.cpp, the default on the CPU) against the same
calls as one sequence (EDGESPEC_PAGED_SPLIT_MAX=0 at load), in ONE process: two pipelines,
generations alternated, paired per-repeat decode-speed ratios at AR (a control: it makes no
multi-token call after the prefill), k=2, k=4, k=7 (8-token verify calls), adaptive k and n-gram:
    .venv/bin/python lab/experiments/split_layout_ab.py BUNDLE [short|long] [max_new_tokens] [repeats] [prompts] [split_max]
split_max: the widest call the split side sends as subsequences (default: the runtime's, 5; give 8
for its k=7 calls to go that way too).
"""

import os
import sys

from ab_lib import CONFIGS, SPEC, EdgespecRunner, two_pipelines

os.environ["EDGESPEC_PAGED_SPLIT_MAX"] = "0"
one = EdgespecRunner(sys.argv[1], dict(SPEC, kv_precision=None))
del os.environ["EDGESPEC_PAGED_SPLIT_MAX"]
if len(sys.argv) > 6:
    os.environ["EDGESPEC_PAGED_SPLIT_MAX"] = sys.argv[6]
split = EdgespecRunner(sys.argv[1], dict(SPEC, kv_precision=None))
os.environ.pop("EDGESPEC_PAGED_SPLIT_MAX", None)
print("split widths:", split.pipe.info["target"]["split_widths"], flush=True)
two_pipelines("one", one, "split", split, dict(CONFIGS, k7=dict(policy="draft", k=7)))
