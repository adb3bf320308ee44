"""Tiny random causal LMs with real trained tokenizers, built in seconds (the `tiny` rung).

    build_tiny("llama", out_dir)  ->  out_dir with config.json, model.safetensors, tokenizer files

Weights are random but initialised with a wide spread so that logits are peaked: greedy choices
are then far from ties and exact comparisons (torch vs OpenVINO f32) are meaningful.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

ARCHS = ("llama", "qwen2", "phi3", "gpt2")


def corpus_lines(max_chars: int = 400_000) -> list[str]:
    """Deterministic text: a few standard-library modules (real code, with some non-ASCII added)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text: list[str] = []
    total = 0
    for name in (
        "textwrap.py",
        "string.py",
        "heapq.py",
        "bisect.py",
        "fnmatch.py",
        "colorsys.py",
        "shlex.py",
        "glob.py",
        "keyword.py",
        "calendar.py",
    ):
        p = stdlib / name
        if p.is_file():
            for line in p.read_text(encoding="utf-8").splitlines():
                text.append(line)
                total += len(line)
        if total > max_chars:
            break
    text += ["# café naïve 日本語 emoji 🙂 — ünïcödé", "s = 'Grüße, 世界'"] * 20
    return text


def train_tokenizer(vocab_size: int = 512, kind: str = "byte_level"):
    """A real tokenizer (transformers PreTrainedTokenizerFast) trained on corpus_lines()."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    if kind == "byte_level":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    else:
        raise ValueError(kind)
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )


def config_for(arch: str, vocab_size: int, hidden: int = 64, layers: int = 2, ctx: int = 512):
    import transformers as tf

    common = dict(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    # llama, qwen2 and phi3 differ only in KV heads and tied embeddings (and phi3's original context)
    decoder = dict(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=ctx,
        **common,
    )
    if arch == "llama":
        return tf.LlamaConfig(num_key_value_heads=2, tie_word_embeddings=False, **decoder)
    if arch == "qwen2":
        return tf.Qwen2Config(num_key_value_heads=2, tie_word_embeddings=True, **decoder)
    if arch == "phi3":
        return tf.Phi3Config(
            num_key_value_heads=4, original_max_position_embeddings=ctx, tie_word_embeddings=False, **decoder
        )
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=hidden, n_layer=layers, n_head=4, n_positions=ctx, **common)
    raise ValueError(f"unknown tiny arch {arch!r}")


def build_tiny(
    arch: str,
    out: Path,
    vocab_size: int = 512,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    tokenizer=None,
    ctx: int = 512,
) -> Path:
    """Write a tiny random HF causal LM + tokenizer to ``out`` and return it (context ``ctx`` tokens)."""
    import torch
    import transformers as tf

    out = Path(out)
    tok = tokenizer or train_tokenizer(vocab_size)
    cfg = config_for(arch, len(tok), hidden=hidden, layers=layers, ctx=ctx)
    cfg.initializer_range = 0.2  # wide init: peaked logits, few near-ties
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
    model.generation_config.do_sample = False
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_bert_config(out: Path) -> Path:
    """A directory with a tiny BERT (masked LM) config: a checkpoint that is not a causal LM."""
    from transformers import BertConfig

    BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        architectures=["BertForMaskedLM"],
    ).save_pretrained(out)
    return Path(out)


# A text a tiny model can learn by heart in seconds: a target that writes it is predictable, so a
# drafter can learn it too (cross-vocabulary and adaptation tests).
TEXT = (
    'def fib(n):\n    """Return the n-th Fibonacci number (café, Grüße, 世界 🙂)."""\n'
    "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
)


def memorize(src: Path, out: Path, text: str = TEXT, steps: int = 400) -> Path:
    """Train the HF model in ``src`` on ``text`` alone until it reproduces it (seconds for tiny models)."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    tok = tf.AutoTokenizer.from_pretrained(src)
    ids = torch.tensor([tok(text)["input_ids"]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if loss.item() < 2e-3:
            break
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
