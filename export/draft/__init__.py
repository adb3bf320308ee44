"""edgespec.export.draft: drafter tooling (FastDraft training, VocabTrim, acceptance figures).

    corpus.py      the demo corpus (Python standard library, held-out modules) and text loading
    lmtrain.py     a small resumable causal-LM trainer (used for the demo target and stage 1)
    fastdraft.py   FastDraft: stage 1 pre-training, stage 2 target-generated data + distillation
    vocabtrim.py   VocabTrim: keep the LM-head rows of the tokens the target emits
    acceptance.py  greedy speculative simulation in torch: acceptance_rate, alpha, mean_accepted, mbsu
    eagle3.py      EAGLE-3 heads: training (training-time test, DDP), checkpoint, simulation
    eagle3_head.py the head as a torch module (what optimum-intel's LlamaEagle3ForCausalLM computes)
    trainstate.py  training checkpoints as safetensors + JSON (no pickle)

Everything here imports torch/transformers lazily inside functions, so `edgespec --help` stays light
(eagle3_head.py imports torch at module level and is itself imported only inside functions).
"""
