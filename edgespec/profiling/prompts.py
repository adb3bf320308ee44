"""The prompts a profile runs: read from a user's file, every failure one sentence."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import EdgespecError

DEFAULT_PROMPTS = [
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "import os\n\n\ndef walk(root):\n    for dirpath, dirnames, filenames in os.walk(root):\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
]


def _prompt_of(item, where: str) -> str:
    """A prompt from one JSON item: a string, or an object with a string "prompt"."""
    if isinstance(item, dict):
        item = item.get("prompt")
    if not isinstance(item, str) or not item.strip():
        raise EdgespecError(f'{where} is not a prompt: give a non-empty string or an object with a "prompt" string.')
    return item


def read_prompts(path: Path | None) -> list[str]:
    """The prompts of ``path``: a .json list (of strings or {"prompt": ...} objects), a .jsonl file
    (one such item per line, e.g. the lab's prompt sets), or plain UTF-8 text with one prompt per
    line; None: three short built-in code prompts. Raises EdgespecError with one sentence when the
    file is missing, a directory, not UTF-8 text, malformed or holds no prompt."""
    if path is None:
        return list(DEFAULT_PROMPTS)
    path = Path(path)
    if not path.exists():
        raise EdgespecError(f"The prompts file {path} does not exist; pass an existing .json, .jsonl or text file.")
    if not path.is_file():
        raise EdgespecError(f"{path} is not a file; pass a .json, .jsonl or text file of prompts.")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EdgespecError(f"Cannot read the prompts file {path} ({e.strerror}); check its permissions.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EdgespecError(f"{path} is not UTF-8 text; pass a text, .json or .jsonl file of prompts.") from None
    if "\x00" in text:
        raise EdgespecError(f"{path} is a binary file, not text; pass a text, .json or .jsonl file of prompts.")
    if path.suffix.lower() == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise EdgespecError(
                f"{path} is not valid JSON (line {e.lineno}: {e.msg}); fix it or pass plain text."
            ) from None
        if not isinstance(items, list):
            raise EdgespecError(f'{path} must hold a JSON list of prompts (strings or objects with "prompt").')
        prompts = [_prompt_of(x, f"Item {i + 1} of {path}") for i, x in enumerate(items)]
    elif path.suffix.lower() == ".jsonl":
        prompts = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise EdgespecError(
                    f"Line {i} of {path} is not valid JSON ({e.msg}); fix it or pass plain text."
                ) from None
            prompts.append(_prompt_of(item, f"Line {i} of {path}"))
    else:
        prompts = [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise EdgespecError(f"{path} holds no prompts; add at least one.")
    return prompts
