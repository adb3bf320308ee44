"""The two demo tokenizers, trained with the `tokenizers` library and saved as HF fast tokenizers.

* ``byte_level``: byte-level BPE (GPT-2 style), the target's vocabulary.
* ``metaspace``: Llama-2 style, for the cross-vocabulary drafter. Normalizer ``Prepend("▁")`` +
  ``Replace(" ", "▁")``, BPE with ``byte_fallback=True``, the 256 ``<0xNN>`` byte tokens as
  *ordinary* vocabulary entries, decoder ``Replace → ByteFallback → Fuse → Strip``, no
  pre-tokenizer. This is the variant openvino-tokenizers converts and round-trips exactly (a
  ``Metaspace`` pre-tokenizer or byte tokens registered as special tokens fail).

Both add ``<s>`` in front of every encoded text (a ``TemplateProcessing`` post-processor that
openvino-tokenizers reproduces), ids 0/1/2 = ``<unk>``/``<s>``/``</s>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

SPECIALS = ["<unk>", "<s>", "</s>"]
# GPT-2's pre-tokenizer pattern with "▁" for the space (used to cut training pieces only).
TRAIN_PIECES = r"▁?\p{L}+|▁?\p{N}+|▁?[^▁\n\p{L}\p{N}]+|[▁\n]+(?![^▁\n])|[▁\n]+"


def _wrap(tok):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<unk>",
        add_bos_token=True,
        clean_up_tokenization_spaces=False,
    )


def train_byte_level(texts: Iterable[str], vocab_size: int = 16000):
    """Byte-level BPE of ``vocab_size`` entries (3 specials first)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(tok)


def _line_pieces(texts: Iterable[str]) -> Iterable[str]:
    # Training-time segmentation only: each piece is a newline plus the following line, so the
    # learned merges include indentation runs ("\n▁▁▁▁▁▁▁▁") but never cross a line.
    import re

    for t in texts:
        yield from (p for p in re.split(r"(?=\n)", t) if p)


def train_metaspace(texts: Iterable[str], vocab_size: int = 8000, limit_alphabet: int = 160):
    """Llama-2-style BPE with byte fallback, ``vocab_size`` entries = 3 specials + 256 bytes + merges."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    n_bytes = 256
    t0 = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    t0.normalizer = normalizers.Replace(" ", "▁")
    # Training-time pieces cut like GPT-2's pre-tokenizer, with "▁" for the space: a word keeps
    # the one space in front of it ("▁return"), a whitespace run leaves its last space to the
    # next word. Merges are learned inside pieces only, so no token ever ends in "▁" after
    # a word ("not▁"): token boundaries fall where the byte-level target's do, which is what
    # cross-vocabulary drafting needs to line both up.
    t0.pre_tokenizer = pre_tokenizers.Split(Regex(TRAIN_PIECES), behavior="isolated")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_bytes,
        special_tokens=SPECIALS,
        limit_alphabet=limit_alphabet,
        initial_alphabet=["▁", "\n"],
        show_progress=False,
    )
    t0.train_from_iterator(_line_pieces(texts), trainer=trainer)
    model = json.loads(t0.to_str())["model"]
    trained = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for b in range(n_bytes):  # the byte tokens as ordinary vocabulary entries, ids 3..258
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in trained:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens(SPECIALS)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return _wrap(tok)


def check_openvino_roundtrip(hf_tok, samples: list[str]) -> list[str]:
    """Convert with openvino_tokenizers and compare ids and decoded text with the HF tokenizer.

    Returns a list of problems (empty when the conversion is exact on ``samples``).
    """
    import numpy as np
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer

    ov_tok, ov_detok = convert_tokenizer(hf_tok, with_detokenizer=True)
    core = ov.Core()
    enc, dec = core.compile_model(ov_tok, "CPU"), core.compile_model(ov_detok, "CPU")
    problems = []
    for s in samples:
        ids_hf = hf_tok(s)["input_ids"]
        ids_ov = enc([s])["input_ids"][0].tolist()
        if ids_hf != ids_ov:
            problems.append(f"ids differ for {s!r}: hf {ids_hf[:12]}... ov {ids_ov[:12]}...")
        text_ov = dec(np.array([ids_hf[1:]], dtype=np.int64))["string_output"][0]
        text_hf = hf_tok.decode(ids_hf[1:])
        if text_ov != s or text_hf != s:
            problems.append(f"round trip of {s!r}: hf {text_hf!r} ov {text_ov!r}")
    return problems
