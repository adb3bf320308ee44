"""Per-call target (verify) and drafter costs inside OpenVINO GenAI draft_model and edgespec at the same
k, on the first long prompt, both in one process (GenAI: main/draft raw m_durations; edgespec: its stats):
    .venv/bin/python lab/experiments/verify_calls_vs_genai.py BUNDLE K
"""

import json
import statistics
import sys

import openvino_genai as g

import edgespec

B = sys.argv[1]
k = int(sys.argv[2])
prompt = [json.loads(l)["prompt"] for l in open("lab/prompts/long.jsonl")][0]
props = {"INFERENCE_NUM_THREADS": 2}
draft = g.draft_model(B + "/draft", "CPU", **props)
sched = g.SchedulerConfig()
sched.max_num_batched_tokens = 2**31 - 1
sched.enable_prefix_caching = False
pipe = g.LLMPipeline(B + "/target", "CPU", draft_model=draft, scheduler_config=sched, **props)
es = edgespec.Pipeline.load(B, draft="draft", threads=2)
c = g.GenerationConfig()
c.max_new_tokens = 64
c.ignore_eos = True
c.do_sample = False
c.num_assistant_tokens = k
c.apply_chat_template = False
pipe.generate([prompt[:300]], c)
es.generate(prompt[:300], max_new_tokens=8)
for rep in range(3):
    res = pipe.generate([prompt], c)
    ext = res.extended_perf_metrics
    md = list(ext.main_model_metrics.raw_metrics.m_durations)
    dd = list(ext.draft_model_metrics.raw_metrics.m_durations)
    pm = res.perf_metrics
    print(
        "genai main calls",
        len(md),
        "first",
        round(md[0] / 1e3, 1),
        "ms; decode median",
        round(statistics.median(md[1:]) / 1e3, 2),
        "sum",
        round(sum(md[1:]) / 1e3, 1),
        "| draft calls",
        len(dd),
        "first",
        round(dd[0] / 1e3, 1),
        "median",
        round(statistics.median(dd[1:]) / 1e3, 2),
        "sum",
        round(sum(dd[1:]) / 1e3, 1),
        "| tpot",
        round(pm.get_tpot().mean, 2),
        "ttft",
        round(pm.get_ttft().mean, 1),
        "gen",
        round(pm.get_generate_duration().mean, 1),
    )
    r = es.generate(prompt, max_new_tokens=64, ignore_eos=True, policy="draft", k=k)
    s = r.stats
    print(
        "es    target calls",
        s.target_calls,
        "prefill",
        round(s.prefill_ms, 1),
        "decode verify/call",
        round((s.verify_ms - s.prefill_ms) / (s.target_calls - 1), 2),
        "sum",
        round(s.verify_ms - s.prefill_ms, 1),
        "| draft_ms",
        round(s.draft_ms, 1),
        "drafted",
        s.drafted,
        "| tpot",
        round(s.tpot_ms, 2),
        "ttft",
        round(s.ttft_ms, 1),
        "total",
        round(s.total_ms, 1),
    )
