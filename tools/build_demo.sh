#!/usr/bin/env bash
# Rebuild the demo models (models/demo/) from scratch on this interpreter's standard library.
# Every step is resumable: re-running it continues from the last checkpoint / generated shard.
# The recorded run (see models/demo/RECIPE.md) was interrupted and resumed with changing
# settings on a crowded 2-core machine; `--stop-after` replays those interruptions exactly.
#
#   tools/build_demo.sh            # everything
#   tools/build_demo.sh post       # stage 2, trim, publish, figures (after the target and stage 1)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ES=.venv/bin/edgespec
D=.cache/demo
C=$D/corpus/train.jsonl
H=$D/corpus/heldout.jsonl

if [ "${1:-all}" != post ]; then
  $PY tools/build_corpus.py
  # target (16.8M Llama): the recorded schedule changes, replayed
  T="$PY tools/train_demo.py target --seq-len 256 --lr 2e-3 --warmup 40 --seed 1234 -o $D/target"
  $T --steps 600 --batch-size 16 --stop-after 11
  $T --steps 300 --batch-size 16 --stop-after 16
  $T --steps 200 --batch-size 16 --stop-after 32
  $T --steps 190 --batch-size 8 --stop-after 51
  $T --steps 110 --batch-size 8 --stop-after 68
  $T --steps 150 --batch-size 8 --stop-after 143
  $T --steps 175 --batch-size 8
  # stage 1 drafters (same vocabulary; own metaspace vocabulary)
  S1="$ES draft train --stage pretrain --corpus $C --hidden 192 --layers 2 --seq-len 256 --lr 3e-3 --threads 1 --eval-corpus $H --eval-prompts 0"
  $S1 --tokenizer $D/tok-target --seed 1 --steps 400 --batch-size 16 --stop-after 15 -o $D/draft-s1
  $S1 --tokenizer $D/tok-target --seed 1 --steps 200 --batch-size 8 --stop-after 56 -o $D/draft-s1
  $S1 --tokenizer $D/tok-target --seed 1 --steps 130 --batch-size 8 -o $D/draft-s1
  $S1 --tokenizer $D/tok-xvocab --seed 2 --steps 160 --batch-size 8 -o $D/draft-xvocab-s1
fi

# stage 2: 192 target continuations (greedy/sampled) shared by both drafters, then fine-tuning
S2="$ES draft train --stage distill --target $D/target --corpus $C --sequences 192 --new-tokens 128 --gen-batch 16 --gen-dir $D/gen --steps 80 --batch-size 8 --seq-len 256 --lr 1e-3 --seed 3 --threads 2 --eval-corpus $H --eval-prompts 8"
$S2 --draft $D/draft-s1 -o $D/draft
$S2 --draft $D/draft-xvocab-s1 -o $D/draft-xvocab
# VocabTrim on the target's generations
$ES draft trim --draft $D/draft --target $D/target --calibration $D/gen --coverage 0.99 --eval-prompts 8 -o $D/draft-trimmed
$PY tools/train_demo.py publish
$PY tools/train_demo.py figures --prompts-n 16
