"""Text corpora for drafter training, and the demo corpus built from the Python standard library.

The demo corpus is the standard-library source of the running interpreter
(``sysconfig.get_paths()["stdlib"]``): a sorted list of ``*.py`` files, minus site-packages and
huge generated files. Whole library modules are held out by a hash of the module name (about
5 %); they never enter training and supply the evaluation prompts (a function's signature and
docstring, the model writes the body). The library's tests, IDLE and lib2to3 are training-only
extras (``include_extra``): never held out.

A corpus given to ``edgespec draft train --corpus`` is a directory (every ``*.py``, ``*.txt``,
``*.md`` and ``*.jsonl`` file under it, sorted) or one file (``.jsonl`` with a ``"text"`` field per
line, or plain text as one document).
"""

from __future__ import annotations

import ast
import hashlib
import json
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path

from edgespec.errors import EdgespecError

SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "__pycache__", "turtledemo"}
# Code under these directories is added to the TRAINING split only (with include_extra=True):
# it is Python source of the same library (tests, IDLE, 2to3) and triples the text, but it is
# never held out, so the held-out modules (and the evaluation prompts) stay those of the library.
TRAIN_ONLY_DIRS = ("test", "tests", "idlelib", "lib2to3")
MAX_FILE_BYTES = 300_000  # pydoc_data/topics.py and similar generated blobs are not code
HELDOUT_PER_MILLE = 50  # ~5 % of modules


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def module_name(rel: str) -> str:
    """``email/mime/text.py`` -> ``email.mime.text`` (``pkg/__init__.py`` -> ``pkg``)."""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_heldout(module: str) -> bool:
    """Deterministic split by module name: the same modules are held out on every machine."""
    h = int.from_bytes(hashlib.sha256(module.encode()).digest()[:8], "little")
    return h % 1000 < HELDOUT_PER_MILLE


def list_source_files(root: Path, extra: bool = False) -> list[str]:
    """Sorted relative posix paths of the ``*.py`` files under ``root`` that belong in the corpus.

    ``extra``: only the files under ``TRAIN_ONLY_DIRS`` (which are otherwise skipped).
    """
    out = []
    for p in root.rglob("*.py"):
        rel = p.relative_to(root)
        skipped = [part for part in rel.parts[:-1] if part in SKIP_DIRS]
        if extra:
            if not skipped or any(part not in TRAIN_ONLY_DIRS for part in skipped):
                continue
        elif skipped:
            continue
        try:
            if p.stat().st_size > MAX_FILE_BYTES or not p.is_file():
                continue
        except OSError:
            continue
        out.append(rel.as_posix())
    return sorted(out)


@dataclass
class SplitCorpus:
    train: list[tuple[str, str]]  # (relative path, text)
    heldout: list[tuple[str, str]]

    def sha256(self) -> str:
        """Hash of the whole corpus (paths, split and contents): the 'data hash' of a recipe."""
        h = hashlib.sha256()
        for split, docs in (("train", self.train), ("heldout", self.heldout)):
            for rel, text in docs:
                h.update(f"{split}\0{rel}\0".encode())
                h.update(text.encode("utf-8"))
                h.update(b"\0")
        return h.hexdigest()


def build_split(root: Path | None = None, include_extra: bool = False) -> SplitCorpus:
    """Read and split the corpus under ``root`` (default: the interpreter's standard library).

    ``include_extra`` adds the code under ``TRAIN_ONLY_DIRS`` to the training split.
    """
    root = Path(root) if root is not None else stdlib_root()
    if not root.is_dir():
        raise EdgespecError(f"corpus directory {root} does not exist; pass a directory of Python files.")
    train, held = [], []
    files = [(rel, False) for rel in list_source_files(root)]
    if include_extra:
        files += [(rel, True) for rel in list_source_files(root, extra=True)]
    for rel, train_only in files:
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a few stdlib files are latin-1 test data; they are not worth a special case
        if not text.strip():
            continue
        (held if not train_only and is_heldout(module_name(rel)) else train).append((rel, text))
    if not train:
        raise EdgespecError(f"no readable Python files under {root}; the corpus would be empty.")
    return SplitCorpus(train, held)


def extract_prompts(
    docs: list[tuple[str, str]], max_prompts: int = 64, min_body_lines: int = 3, max_prompt_chars: int = 700
) -> list[dict]:
    """Function signature + docstring prompts (the model writes the body), from ``docs``.

    Methods are dedented to column 0 so that every prompt reads as a top-level function. One
    prompt per function with a docstring and a body of at least ``min_body_lines`` lines; the
    list is deterministic (file order, then source order), spread over files round-robin.
    """
    per_file: list[list[dict]] = []
    for rel, text in docs:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines(keepends=True)
        found = []
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node, clean=False)
            if not doc or len(node.body) < 2:
                continue
            ds = node.body[0]
            body_start, body_end = node.body[1].lineno, node.end_lineno
            if body_end - body_start + 1 < min_body_lines:
                continue
            src = "".join(lines[node.lineno - 1 : ds.end_lineno])
            prompt = textwrap.dedent(src)
            if len(prompt) > max_prompt_chars or "\t" in prompt:
                continue
            # The prompt ends right after the docstring: the model writes the newline and the
            # body's indentation itself. (Ending in "\n    " would leave a whitespace token
            # that BPE tokenizers never produce mid-text, and the model would start off-track.)
            prompt = prompt.rstrip("\n")
            ref = textwrap.dedent("".join(lines[body_start - 1 : body_end]))
            found.append(
                {"id": f"{module_name(rel)}:{node.name}:{node.lineno}", "prompt": prompt, "reference": ref[:1500]}
            )
        found.sort(key=lambda d: int(d["id"].rsplit(":", 1)[1]))
        if found:
            per_file.append(found)
    out: list[dict] = []
    i = 0
    while len(out) < max_prompts and any(i < len(f) for f in per_file):
        for f in per_file:
            if i < len(f) and len(out) < max_prompts:
                out.append(f[i])
        i += 1
    return out


def write_jsonl(path: Path, rows: list[dict]) -> str:
    """Write rows as JSON lines (sorted keys, UTF-8) and return the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def load_prompts(path: Path) -> list[dict]:
    """Prompt file: JSON lines with a ``"prompt"`` field (or plain text, one prompt per line)."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EdgespecError(
            f"cannot read prompt file {path} ({e.__class__.__name__}); pass a readable UTF-8 file."
        ) from None
    rows = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                r = json.loads(line)
                rows.append(r if isinstance(r, dict) else {"prompt": str(r)})
            except json.JSONDecodeError:
                raise EdgespecError(
                    f'{path}:{n} is not valid JSON; each line must be an object with a "prompt".'
                ) from None
        else:
            rows.append({"prompt": line})
    rows = [r for r in rows if isinstance(r.get("prompt"), str) and r["prompt"]]
    if not rows:
        raise EdgespecError(f"prompt file {path} holds no prompts.")
    return rows


def load_documents(path: Path) -> list[str]:
    """The documents of a corpus given as a directory or a file (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise EdgespecError(
            f"corpus {path} does not exist; pass a directory of text/Python files or a .jsonl/.txt file."
        )
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".py", ".txt", ".md", ".jsonl"))
        if path.is_dir()
        else [path]
    )
    docs: list[str] = []
    for f in files:
        try:
            raw = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            if path.is_dir():
                continue
            raise EdgespecError(
                f"cannot read corpus file {f} ({e.__class__.__name__}); it must be UTF-8 text."
            ) from None
        if f.suffix == ".jsonl":
            for n, line in enumerate(raw.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    raise EdgespecError(
                        f'{f}:{n} is not valid JSON; a .jsonl corpus needs one {{"text": ...}} per line.'
                    ) from None
                t = r.get("text") if isinstance(r, dict) else None
                if isinstance(t, str) and t.strip():
                    docs.append(t)
        elif raw.strip():
            docs.append(raw)
    if not docs:
        raise EdgespecError(f"corpus {path} is empty (no non-empty .py/.txt/.md/.jsonl text found).")
    return docs


def text_sha256(docs: list[str]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(d.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()
