"""The demo corpus builder, prompt extraction, corpus loading and the two demo tokenizers."""

from __future__ import annotations

import json

import pytest
from edgespec.export.draft import corpus

from edgespec.errors import EdgespecError

FUNC = '''
def {name}(x, y=1):
    """Add y to x and return the sum, twice over."""
    z = x + y
    z = z + y
    return z
'''


def _tree(tmp_path, n=60):
    root = tmp_path / "lib"
    for i in range(n):
        pkg = root / (f"pkg{i % 3}" if i % 2 else "")
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / f"mod{i}.py").write_text(FUNC.format(name=f"f{i}"))
    (root / "test").mkdir()
    (root / "test" / "test_x.py").write_text("x = 1\n")
    (root / "idlelib").mkdir()
    (root / "idlelib" / "y.py").write_text("y = 1\n")
    (root / "empty.py").write_text("\n")
    return root


def test_held_out_modules_never_enter_training(tmp_path):
    root = _tree(tmp_path, 200)
    split = corpus.build_split(root)
    train = {p for p, _ in split.train}
    held = {p for p, _ in split.heldout}
    assert held and train and not (train & held)
    for p in held:
        assert corpus.is_heldout(corpus.module_name(p))
    for p in train:
        assert not corpus.is_heldout(corpus.module_name(p))
    assert not any(p.startswith(("test/", "idlelib/")) or p == "empty.py" for p in train | held)


def test_extra_library_code_enters_training_only(tmp_path):
    root = _tree(tmp_path, 200)
    (root / "test" / "test_held.py").write_text("x = 2\n")
    plain, extra = corpus.build_split(root), corpus.build_split(root, include_extra=True)
    added = {p for p, _ in extra.train} - {p for p, _ in plain.train}
    assert added == {"test/test_x.py", "test/test_held.py", "idlelib/y.py"}
    assert [p for p, _ in extra.heldout] == [p for p, _ in plain.heldout]


def test_split_and_hash_are_deterministic(tmp_path):
    root = _tree(tmp_path)
    a, b = corpus.build_split(root), corpus.build_split(root)
    assert a.sha256() == b.sha256() and [p for p, _ in a.train] == sorted(p for p, _ in a.train)


def test_prompts_are_signature_and_docstring_ending_after_the_docstring(tmp_path):
    root = _tree(tmp_path, 200)
    split = corpus.build_split(root)
    ps = corpus.extract_prompts(split.heldout)
    assert ps
    p = ps[0]["prompt"]
    assert p.startswith("def f") and '"""Add y to x' in p and p.endswith('"""')
    assert ps[0]["reference"].startswith("z = x + y")
    f = tmp_path / "p.jsonl"
    corpus.write_jsonl(f, ps)
    assert [r["prompt"] for r in corpus.load_prompts(f)] == [r["prompt"] for r in ps]


def test_empty_or_missing_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgespecError, match="empty"):
        corpus.load_documents(tmp_path / "empty")
    with pytest.raises(EdgespecError, match="does not exist"):
        corpus.load_documents(tmp_path / "nope")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(EdgespecError, match="UTF-8"):
        corpus.load_documents(bad)
    j = tmp_path / "c.jsonl"
    j.write_text(json.dumps({"text": "hello"}) + "\n{oops\n")
    with pytest.raises(EdgespecError, match="not valid JSON"):
        corpus.load_documents(j)
    with pytest.raises(EdgespecError):
        corpus.build_split(tmp_path / "empty")


def test_both_demo_tokenizers_convert_to_openvino_and_round_trip_non_ascii():
    import demo_tokenizers as dt  # tools/, on sys.path from conftest.py
    from tiny import corpus_lines

    text = ["\n".join(corpus_lines(60_000))]
    samples = ["def f(x):\n    return x + 1\n", "s = 'Grüße, 世界 🙂'  # café\n", "  a  b\t\n\nc"]
    for tok in (dt.train_byte_level(text, 600), dt.train_metaspace(text, 700)):
        assert tok("x")["input_ids"][0] == tok.bos_token_id == 1
        assert dt.check_openvino_roundtrip(tok, samples) == []
    meta = dt.train_metaspace(text, 700)
    vocab = meta.get_vocab()
    assert vocab["<0x00>"] == 3 and vocab["<0xFF>"] == 258
