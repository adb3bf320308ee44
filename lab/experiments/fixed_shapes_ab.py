"""Fixed-width copies of the models (Pipeline.load(fixed_shapes=True)) against one dynamic-shape
compile each (fixed_shapes=False), in ONE process: two pipelines, generations alternated, paired
per-repeat decode-speed ratios at AR, k=2, k=4, adaptive k and n-gram:
    .venv/bin/python lab/experiments/fixed_shapes_ab.py BUNDLE [short|long] [max_new_tokens] [repeats] [prompts]
"""

import sys

from ab_lib import SPEC, EdgespecRunner, two_pipelines

dyn = EdgespecRunner(sys.argv[1], dict(SPEC, fixed_shapes=False))
sta = EdgespecRunner(sys.argv[1], dict(SPEC, fixed_shapes=True))
print("fixed widths:", sta.pipe.info, flush=True)
two_pipelines("dyn", dyn, "static", sta)
