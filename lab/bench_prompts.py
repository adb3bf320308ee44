#!/usr/bin/env python
"""Build the benchmark prompt sets in lab/prompts/ from the held-out standard-library modules.

    .venv/bin/python lab/bench_prompts.py            # rewrites lab/prompts/{short,long,repeat}.jsonl

Three sets, each a JSON-lines file with ``id``, ``prompt``, ``tokens`` (length in the demo target's
tokenizer) and ``kind``:

* ``short``  (~200 tokens): the source lines just before a function, then its signature and
  docstring; the model writes the body (code completion).
* ``long``   (~2000 tokens): the same with ~2000 tokens of the module before it, where KV-cache
  handling (rollback copies) starts to cost.
* ``repeat`` (~300-600 tokens): a function shown in full, then the same signature and docstring
  again, so the continuation repeats the context (where n-gram / prompt-lookup drafting shines).

The modules come from the demo corpus's held-out split (``edgespec.export.draft.corpus``), so the
demo drafters never saw them. Token counts use the demo target tokenizer
(``.cache/demo/tok-target``) when present, else ~3.2 characters per token. The files are kept in
the repository; every benchmark report records their sha256, so a rebuild that changes them shows.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
SETS = ("short", "long", "repeat")


def prompt_file(name: str) -> Path:
    """Path of a prompt set by name (``short``/``long``/``repeat``) or a file path as given."""
    p = PROMPT_DIR / f"{name}.jsonl"
    return p if name in SETS else Path(name)


def load_set(name: str) -> tuple[list[dict], str]:
    """(rows, sha256 of the file bytes) of a prompt set."""
    path = prompt_file(name)
    data = path.read_bytes()
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    for r in rows:
        r.setdefault("kind", name)
    return rows, hashlib.sha256(data).hexdigest()


def _token_counter() -> tuple[Callable[[str], int], str]:
    tok_file = ROOT / ".cache" / "demo" / "tok-target" / "tokenizer.json"
    if tok_file.is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tok_file))
        return (lambda s: len(tok.encode(s, add_special_tokens=False).ids)), "demo tok-target"
    return (lambda s: int(len(s) / 3.2 + 0.5)), "estimate (3.2 chars/token)"


def _heldout_docs() -> list[tuple[str, str]]:
    held = ROOT / ".cache" / "demo" / "corpus" / "heldout.jsonl"
    if held.is_file():
        rows = [json.loads(x) for x in held.read_text(encoding="utf-8").splitlines() if x.strip()]
        return [(r["path"], r["text"]) for r in rows]
    sys.path.insert(0, str(ROOT))
    from edgespec.export.draft import corpus

    return corpus.build_split().heldout


def _functions(docs: list[tuple[str, str]]):
    """(path, lines, node, docstring-end line) for each function with a docstring and a real body."""
    for rel, text in docs:
        if "\t" in text:
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines(keepends=True)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if ast.get_docstring(node, clean=False) is None or len(node.body) < 2:
                continue
            if node.end_lineno - node.body[1].lineno + 1 < 4:  # a body worth writing
                continue
            yield rel, lines, node


def _head(lines: list[str], node) -> tuple[str, str]:
    """(signature + docstring + body indentation, full source) of a function, as in the file."""
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    ds_end = node.body[0].end_lineno
    body_line = lines[node.body[1].lineno - 1]
    indent = body_line[: len(body_line) - len(body_line.lstrip())]
    head = "".join(lines[start - 1 : ds_end]).rstrip("\n") + "\n" + indent
    full = "".join(lines[start - 1 : node.end_lineno])
    return head, full


def _with_context(lines: list[str], node, head: str, budget: int, count) -> str | None:
    """Source lines before the function (whole lines, nearest first) + head, within ``budget`` tokens."""
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    used = count(head)
    if used > budget:
        return None
    ctx: list[str] = []
    for line in reversed(lines[: start - 1]):
        n = count(line)
        if used + n > budget:
            break
        ctx.append(line)
        used += n
    return "".join(reversed(ctx)) + head


def _spread(cands: list[dict], n: int) -> list[dict]:
    """Up to n candidates, round-robin over files so no module dominates (deterministic order:
    within a file by a hash of the id, so the picks are not all from the file's first lines)."""
    by_file: dict[str, list[dict]] = {}
    for c in cands:
        by_file.setdefault(c["id"].split(":")[0], []).append(c)
    for v in by_file.values():
        v.sort(key=lambda c: hashlib.sha256(c["id"].encode()).hexdigest())
    out: list[dict] = []
    i = 0
    while len(out) < n and any(i < len(v) for v in by_file.values()):
        for v in by_file.values():
            if i < len(v) and len(out) < n:
                out.append(v[i])
        i += 1
    return out


def build(n_short: int = 8, n_long: int = 4, n_repeat: int = 8) -> dict[str, list[dict]]:
    count, how = _token_counter()
    docs = _heldout_docs()
    short, long_, repeat = [], [], []
    for rel, lines, node in _functions(docs):
        head, full = _head(lines, node)
        fid = f"{rel[:-3].replace('/', '.')}:{node.name}:{node.lineno}"
        # short: ~200 tokens; require most of the budget filled by real context
        p = _with_context(lines, node, head, 200, count)
        if p is not None and count(p) >= 170:
            short.append({"id": fid, "kind": "short", "prompt": p, "tokens": count(p)})
        p = _with_context(lines, node, head, 2000, count)
        if p is not None and count(p) >= 1700:
            long_.append({"id": fid, "kind": "long", "prompt": p, "tokens": count(p)})
        # repeat: the function in full, then the same head again: the body is in the context
        body_tokens = count(full) - count(head)
        if 80 <= body_tokens <= 400:
            strip = len(full) - len(full.lstrip(" "))  # the def's own indentation (methods)
            body_indent = head[len(head.rstrip(" ")) :][strip:]
            p = textwrap.dedent(full).rstrip("\n") + "\n\n\n" + textwrap.dedent(head.rstrip(" ")) + body_indent
            repeat.append({"id": fid, "kind": "repeat", "prompt": p, "tokens": count(p)})
    sets = {"short": _spread(short, n_short), "long": _spread(long_, n_long), "repeat": _spread(repeat, n_repeat)}
    print(f"token counts from {how}; {len(docs)} held-out modules")
    return sets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=PROMPT_DIR)
    ap.add_argument("--short", type=int, default=8)
    ap.add_argument("--long", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=8)
    a = ap.parse_args()
    sets = build(a.short, a.long, a.repeat)
    a.out.mkdir(parents=True, exist_ok=True)
    for name, rows in sets.items():
        data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()
        (a.out / f"{name}.jsonl").write_bytes(data)
        toks = [r["tokens"] for r in rows]
        print(
            f"{name:7s} {len(rows)} prompts, tokens {min(toks) if toks else 0}-{max(toks) if toks else 0}, "
            f"sha256 {hashlib.sha256(data).hexdigest()[:16]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
