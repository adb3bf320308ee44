#!/usr/bin/env bash
# Rebuild the demo models (models/demo/) from scratch on this interpreter's standard library.
# Training runs on the device torch picks (`--device auto`: a CUDA GPU when torch sees one).
# The recorded run (models/demo/RECIPE.md) trained on one lent H100 in about 6 minutes
# (target and both stage-1 drafters side by side on the GPU, then stage 2); on a 2-core CPU the
# target alone would take about a day (64 M tokens at ~800 tokens/s). Every step resumes from
# its checkpoint when re-run.
#
#   tools/build_demo.sh            # everything
#   tools/build_demo.sh post       # trim, publish, figures (after the target and the drafters)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ES=.venv/bin/edgespec
D=.cache/demo
C=$D/corpus/train.jsonl
H=$D/corpus/heldout.jsonl

if [ "${1:-all}" != post ]; then
  $PY tools/build_corpus.py
  # target: 16.8M Llama, context 2048; 2000 steps of 16x2048 tokens (~8 epochs; the held-out
  # loss was still falling; a 1200-step schedule gave 2.69 against this one's 2.46)
  $PY tools/train_demo.py target --seq-len 2048 --ctx 2048 --batch-size 16 --steps 2000 --lr 2e-3 --warmup 100 \
      --seed 1234 --eval-every 200 -o $D/target
  # stage 1 drafters (same vocabulary; own metaspace vocabulary)
  S1="$ES draft train --stage pretrain --corpus $C --eval-corpus $H --eval-prompts 0 --hidden 192 --layers 2 \
      --seq-len 2048 --ctx 2048 --batch-size 16 --steps 1200 --lr 3e-3"
  $S1 --tokenizer $D/tok-target --seed 1 -o $D/draft-s1
  $S1 --tokenizer $D/tok-xvocab --seed 2 -o $D/draft-xvocab-s1
  # stage 2: 16384 target continuations (even batches greedy, odd ones sampled at T=0.8) shared by
  # both drafters; the same-vocabulary one also learns the target's logits (KL weight 0.5)
  S2="$ES draft train --stage distill --target $D/target --corpus $C --eval-corpus $H --eval-prompts 0 \
      --sequences 16384 --new-tokens 256 --gen-batch 1024 --gen-dir $D/gen --steps 600 --batch-size 16 \
      --seq-len 2048 --lr 1e-3 --seed 3"
  $S2 --draft $D/draft-s1 --kl-weight 0.5 -o $D/draft
  $S2 --draft $D/draft-xvocab-s1 -o $D/draft-xvocab
fi

# VocabTrim on the target's generations (CPU, seconds)
$ES draft trim --draft $D/draft --target $D/target --calibration $D/gen --coverage 0.99 --eval-prompts 0 -o $D/draft-trimmed
# the EAGLE-3 head (2-core CPU, about 3 h 40 min in five stages, models/demo/RECIPE.md): corpus
# text, the target's own continuations, more of them, the whole corpus as text, those
# continuations again
$PY -c "import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; \
    open(sys.argv[2], 'w').write(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows[::4]))" \
    $C $D/corpus/train-q4.jsonl
E3="$ES draft train --method eagle3 --target $D/target --ttt-steps 3 \
    --batch-size 8 --seq-len 256 --threads 2 --device auto --eval-prompts 0 --checkpoint-every 240"
Q4="--corpus $D/corpus/train-q4.jsonl"
$E3 $Q4 --sequences 0 --draft-vocab 4096 --steps 1500 --lr 2e-3 --seed 4 -o $D/head-eagle3-1500
$E3 $Q4 --sequences 2048 --new-tokens 192 --gen-batch 128 --gen-dir $D/gen-e3 --init $D/head-eagle3-1500 \
    --steps 600 --lr 5e-4 --seed 5 -o $D/head-eagle3-s2
$E3 --corpus $C --sequences 6144 --new-tokens 192 --gen-batch 128 --gen-dir $D/gen-e3c --init $D/head-eagle3-s2 \
    --steps 1200 --lr 5e-4 --seed 6 -o $D/head-eagle3-s3
$E3 --corpus $C --sequences 0 --init $D/head-eagle3-s3 --steps 2400 --lr 1.5e-3 --seed 7 -o $D/head-eagle3-s4
$PY -c "import glob, json, sys; rows = [json.loads(l) for f in sorted(glob.glob(sys.argv[1] + '/*.jsonl')) \
    for l in open(f) if l.strip()]; open(sys.argv[2], 'w').write(''.join(json.dumps({'text': r['text']}, \
    ensure_ascii=False) + '\n' for r in rows))" $D/gen-e3c $D/gen-e3c-text.jsonl
$E3 --corpus $D/gen-e3c-text.jsonl --sequences 0 --init $D/head-eagle3-s4 --steps 800 --lr 5e-4 --seed 8 \
    -o $D/head-eagle3
$PY tools/train_demo.py publish
$PY tools/train_demo.py figures --prompts-n 16
