"""edgespec.export.draft: drafter tooling (FastDraft training, VocabTrim, acceptance figures).

    corpus.py      the demo corpus (Python standard library, held-out modules) and text loading
    lmtrain.py     a small resumable causal-LM trainer (used for the demo target and stage 1)
    fastdraft.py   FastDraft: stage 1 pre-training, stage 2 target-generated data + distillation
    vocabtrim.py   VocabTrim: keep the LM-head rows of the tokens the target emits
    acceptance.py  greedy speculative simulation in torch: acceptance_rate, mean_accepted, mbsu

Everything here imports torch/transformers lazily inside functions, so `edgespec --help` stays light.
"""
