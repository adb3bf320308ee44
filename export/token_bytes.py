"""The byte string of every token of a HF tokenizer: what cross-vocabulary drafting compares.

The runtime translates between two vocabularies through bytes (runtimes/src/drafting/cross_vocab.cpp), so
it needs, for every token id, the exact bytes the token stands for in text. Computed here, once,
from the HF fast tokenizer's own spec and checked by re-encoding sample texts; written into the
bundle as ``token_bytes.bin`` (format and kinds: ``edgespec.bundle.write_token_bytes``).

Tokenizers covered (the decoder in tokenizer.json says which):
  * byte-level BPE (GPT-2, Llama-3, Qwen): a token's characters are bytes in GPT-2's printable
    alphabet (``Ġ`` = space, ``Ċ`` = newline, ...), mapped back with the inverse of
    ``bytes_to_unicode``;
  * SentencePiece / metaspace (Llama-2, Mistral, Gemma): ``▁`` is a space, ``<0xNN>`` tokens are
    single raw bytes (byte fallback). The dummy prefix (the ``▁`` a Llama-2 tokenizer puts in
    front of the whole text) stays in the token's bytes: ``▁The`` is `` The``; the runtime finds
    the prefix itself by encoding a probe with the bundle's tokenizer;
  * special tokens (BOS, EOS, ``<unk>``, chat markers, ids past the tokenizer) have no bytes.
Anything else (WordPiece ``##``, a normalizer that rewrites text, ...) is refused: drafting across
vocabularies needs tokens that spell the text byte for byte.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from edgespec.bundle import TOKEN_BYTE, TOKEN_BYTES, TOKEN_SPECIAL, TOKEN_TEXT, write_token_bytes
from edgespec.errors import ExportError

# Texts every supported tokenizer must spell byte for byte (code, spaces, tabs, non-ASCII, emoji).
SAMPLES = (
    "def f(x):\n    return x  # café\n",
    "  two  spaces\tand\ttabs\n\n\n",
    "Grüße, 世界 🙂 — naïve ünïcödé",
    "a",
    " leading space",
    "x=1;y=[2, 3]\r\n",
)
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (the alphabet of byte-level BPE tokens)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _decoder_steps(spec: dict | None) -> list[dict]:
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [s for d in spec.get("decoders", []) for s in _decoder_steps(d)]
    return [spec]


def token_table(tok, n: int) -> tuple[list[int], list[bytes]]:
    """(kinds, pieces) for token ids 0..n-1 of the HF fast tokenizer ``tok``.

    ``n`` is at least the tokenizer's length (LM heads are often padded past it: those ids are
    special). Raises ExportError for a tokenizer whose tokens cannot be mapped to bytes.
    """
    try:
        spec = json.loads(tok.backend_tokenizer.to_str())
    except Exception:
        raise ExportError("Cross-vocabulary drafting needs a fast (tokenizer.json) tokenizer.") from None
    steps = _decoder_steps(spec.get("decoder"))
    kinds_of_step = {s["type"] for s in steps}
    unknown = kinds_of_step - {"ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"}
    if unknown:
        raise ExportError(
            f"The tokenizer's decoder ({', '.join(sorted(unknown))}) cannot be mapped to bytes; "
            "cross-vocabulary drafting supports byte-level BPE and SentencePiece/metaspace tokenizers."
        )
    byte_level = "ByteLevel" in kinds_of_step
    byte_fallback = "ByteFallback" in kinds_of_step
    replaces = []  # (pattern, content) applied to a piece's text, in decoder order
    for s in steps:
        if s["type"] == "Replace" and "String" in s.get("pattern", {}):
            replaces.append((s["pattern"]["String"], s["content"]))
        elif s["type"] == "Metaspace":
            replaces.append((s.get("replacement", "\u2581"), " "))
    decode_char = {c: b for b, c in bytes_to_unicode().items()}
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    special = set(tok.all_special_ids) | {i for i, a in added.items() if a.get("special")}
    size = len(tok)
    kinds, pieces = [], []
    for i in range(max(n, size)):
        piece = tok.convert_ids_to_tokens(i) if i < size and i not in special else None
        if piece is None:
            kinds.append(TOKEN_SPECIAL)
            pieces.append(b"")
        elif i in added:  # added (non-special) tokens match their content verbatim
            kinds.append(TOKEN_TEXT)
            pieces.append(added[i]["content"].encode("utf-8"))
        elif byte_fallback and _BYTE_TOKEN.fullmatch(piece):
            kinds.append(TOKEN_BYTE)
            pieces.append(bytes([int(piece[3:5], 16)]))
        elif byte_level:
            kinds.append(TOKEN_TEXT)
            pieces.append(b"".join(bytes([decode_char[c]]) if c in decode_char else c.encode("utf-8") for c in piece))
        else:
            for pattern, content in replaces:
                piece = piece.replace(pattern, content)
            kinds.append(TOKEN_TEXT)
            pieces.append(piece.encode("utf-8"))
    return kinds, pieces


def dummy_prefix(tok, pieces: list[bytes]) -> bytes:
    """What the tokenizer puts in front of a whole text (Llama-2's ``▁``): bytes of "a" minus "a"."""
    got = b"".join(pieces[i] for i in tok("a", add_special_tokens=False)["input_ids"])
    return got[:-1] if got.endswith(b"a") else b""


def check_table(tok, pieces: list[bytes], samples=SAMPLES) -> list[str]:
    """Problems found re-encoding ``samples`` (empty: every sample is spelled byte for byte)."""
    prefix = dummy_prefix(tok, pieces)
    problems = []
    for s in samples:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        if tok.unk_token_id is not None and tok.unk_token_id in ids:
            continue  # the tokenizer cannot spell this text at all (no byte fallback): not a table problem
        got, want = b"".join(pieces[i] for i in ids), s.encode("utf-8")
        if got not in (want, prefix + want):
            problems.append(f"{s!r} is spelled {got!r}")
    return problems


def write_table(tok, n: int, out_dir: Path) -> str:
    """Compute, check and write ``out_dir/token_bytes.bin``; returns its file name."""
    kinds, pieces = token_table(tok, n)
    problems = check_table(tok, pieces)
    if problems:
        raise ExportError(
            f"The tokenizer does not spell text byte for byte ({problems[0]}); cross-vocabulary "
            "drafting supports byte-level BPE and SentencePiece/metaspace tokenizers."
        )
    write_token_bytes(Path(out_dir) / TOKEN_BYTES, kinds, pieces)
    return TOKEN_BYTES
