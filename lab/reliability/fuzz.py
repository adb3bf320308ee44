"""The bundle fuzzer's cases: each one a copy of a base bundle (hard links, so a case costs no
bytes) with one thing broken -- a byte flipped or the file cut short in every kind of file, the
manifest's keys removed, retyped or given wrong numbers, paths that leave the bundle (``..``,
absolute, symbolic links to copies outside; for ONNX bundles also the external-data locations
written inside the model), a broken integrity table, malformed JSON.

Every case must end in a clean load or one sentence (an EdgespecError), never a crash or a hang,
and no case may load a file from outside its bundle: the escapes point at *working* copies of the
bundle's files placed outside it (the canary), so an escape the runtime failed to refuse would
load cleanly and is counted as a file read outside the bundle.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "edgespec.json"


@dataclass
class Case:
    name: str
    kind: str  # flip | truncate | append | manifest | integrity | json | escape | legacy
    apply: Callable[[Path, Path], None]  # (case dir, canary dir)
    escape: bool = False  # the case points outside the bundle: a clean load is a finding


def _replace(path: Path, data: bytes) -> None:
    """Write data at path without touching the base bundle's inode (cases are hard-linked)."""
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data)


def _edit_manifest(d: Path, edit: Callable[[dict], None]) -> None:
    m = json.loads((d / MANIFEST).read_text())
    edit(m)
    _replace(d / MANIFEST, json.dumps(m).encode())


def _model(m: dict, role: str) -> dict:
    return next(x for x in m["models"] if x["role"] == role)


def _set(path: list, value, role: str = "target"):
    def edit(m):
        node = _model(m, role)
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return edit


def _delete(path: list, role: str = "target"):
    def edit(m):
        node = _model(m, role)
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)

    return edit


def model_files(base: Path) -> list[str]:
    """Paths (relative to the bundle) of every file of every model, sorted."""
    m = json.loads((base / MANIFEST).read_text())
    out = set()
    for x in m["models"]:
        for f in (base / x["path"]).rglob("*"):
            if f.is_file():
                out.add(f.relative_to(base).as_posix())
    return sorted(out)


def cases(base: Path, seed: int = 0) -> list[Case]:
    """Every fuzz case for base (several hundred for a target + drafter bundle)."""
    rng = random.Random(seed)
    out: list[Case] = []
    files = model_files(base)

    def flip(rel, at):
        def apply(d, _c):
            data = bytearray((d / rel).read_bytes())
            if data:
                i = at(len(data))
                data[i] ^= 0xFF
            _replace(d / rel, bytes(data))

        return apply

    def cut(rel, size):
        def apply(d, _c):
            data = (d / rel).read_bytes()
            _replace(d / rel, data[: size(len(data))])

        return apply

    def append(rel):
        def apply(d, _c):
            _replace(d / rel, (d / rel).read_bytes() + bytes(rng.randrange(256) for _ in range(16)))

        return apply

    for rel in files:
        for where, at in (
            ("first", lambda n: 0),
            ("middle", lambda n: n // 2),
            ("random", lambda n, r=rng.random(): int(r * n) % n),
            ("last", lambda n: n - 1),
        ):
            out.append(Case(f"flip {where} byte of {rel}", "flip", flip(rel, at)))
        for how, size in (
            ("empty", lambda n: 0),
            ("half", lambda n: n // 2),
            ("one byte short", lambda n: max(0, n - 1)),
        ):
            out.append(Case(f"truncate {rel} ({how})", "truncate", cut(rel, size)))
        out.append(Case(f"append 16 bytes to {rel}", "append", append(rel)))

    def man(name, edit, kind="manifest"):
        out.append(Case(name, kind, lambda d, _c, e=edit: _edit_manifest(d, e)))

    roles = ["target"] + (
        ["draft"] if any(m["role"] == "draft" for m in json.loads((base / MANIFEST).read_text())["models"]) else []
    )
    for role in roles:
        for key in (
            ["name"],
            ["role"],
            ["path"],
            ["format"],
            ["files"],
            ["files", "model"],
            ["files", "tokenizer"],
            ["files", "detokenizer"],
            ["files", "token_bytes"],
            ["vocab_size"],
            ["context_length"],
            ["special_tokens"],
            ["special_tokens", "eos"],
            ["special_tokens", "bos"],
            ["tokenizer"],
            ["weights"],
            ["relation"],
        ):
            man(f"{role}: remove {'.'.join(key)}", _delete(key, role))
        for key, values in (
            (["vocab_size"], ["64", None, [], {}, True, -1, 0, 2.5, 1e300, 2**63, 2**40]),
            (["context_length"], ["512", None, -1, 0, 1, 2.5, 1e300, 2**63, 2**40]),
            (["path"], [5, None, "", ".", "nonexistent"]),
            (
                ["files", "model"],
                [7, "", "nonexistent.xml", "openvino_model.bin", "openvino_tokenizer.xml", "config.json"],
            ),
            (["files", "tokenizer"], ["openvino_detokenizer.xml", "openvino_model.xml", "config.json", 3]),
            (["files", "detokenizer"], ["openvino_tokenizer.xml", "openvino_model.xml"]),
            (["special_tokens", "eos"], ["x", [1e300], [-5], [10**9], 7, [None]]),
            (["special_tokens", "bos"], [10**9, -7, "x", 2**62]),
            (["format"], ["onnx", "gguf", 1]),
            (["name"], ["", 5, "a/b"]),
        ):
            for v in values:
                man(f"{role}: {'.'.join(key)} = {json.dumps(v)[:40]}", _set(key, v, role))
    if "draft" in roles:
        for v in (
            {"kind": "bogus"},
            {"kind": "trimmed"},
            {"kind": "trimmed", "id_map": "config.json"},
            {"kind": "cross_vocab"},
            {"kind": "trimmed", "id_map": "openvino_model.bin", "input_fallback": -3},
            "x",
        ):
            man(f"draft: relation = {json.dumps(v)}", _set(["relation"], v, "draft"))
        man("draft: role = target (two targets)", _set(["role"], "target", "draft"))
    man("target: role = draft (no target)", _set(["role"], "draft", "target"))
    for key, v in (
        ("schema_version", 2),
        ("schema_version", "1"),
        ("schema_version", None),
        ("models", []),
        ("models", {}),
        ("models", "x"),
        ("models", [5]),
        ("producer", 5),
    ):
        man(f"top: {key} = {json.dumps(v)}", lambda m, k=key, v=v: m.__setitem__(k, v))
    for key in ("schema_version", "models", "producer"):
        man(f"top: remove {key}", lambda m, k=key: m.pop(k, None))

    # the integrity table
    def integ(edit):
        def apply(m):
            if "integrity" in m:
                edit(m["integrity"])

        return apply

    def first_file(t, suffix=".bin"):
        return next(k for k in sorted(t["files"]) if k.endswith(suffix))

    for name, edit in (
        ("algorithm = sha1", lambda t: t.__setitem__("algorithm", "sha1")),
        ("chunk_bytes = 1", lambda t: t.__setitem__("chunk_bytes", 1)),
        ("files = []", lambda t: t.__setitem__("files", [])),
        ("files = {}", lambda t: t.__setitem__("files", {})),
        (
            "a size off by one",
            lambda t: t["files"][first_file(t)].__setitem__("size", t["files"][first_file(t)]["size"] + 1),
        ),
        ("a size negative", lambda t: t["files"][first_file(t)].__setitem__("size", -1)),
        ("a size 1e300", lambda t: t["files"][first_file(t)].__setitem__("size", 1e300)),
        (
            "a digest changed",
            lambda t: t["files"][first_file(t)].__setitem__(
                "blake2b", ["0" * 64] * len(t["files"][first_file(t)]["blake2b"])
            ),
        ),
        ("a digest malformed", lambda t: t["files"][first_file(t)].__setitem__("blake2b", ["xyz"])),
        ("a digest list missing", lambda t: t["files"][first_file(t)].pop("blake2b")),
        ("an extra digest", lambda t: t["files"][first_file(t)]["blake2b"].append("0" * 64)),
        (
            "the tokenizer .bin unlisted",
            lambda t: t["files"].pop(next(k for k in sorted(t["files"]) if k.endswith("openvino_tokenizer.bin"))),
        ),
        (
            "the model .xml unlisted",
            lambda t: t["files"].pop(next(k for k in sorted(t["files"]) if k.endswith("openvino_model.xml"))),
        ),
        (
            "a listed file missing",
            lambda t: t["files"].__setitem__("target/missing.bin", {"size": 1, "blake2b": ["0" * 64]}),
        ),
        ("an entry with ..", lambda t: t["files"].__setitem__("../outside.bin", {"size": 1, "blake2b": ["0" * 64]})),
        ("an absolute entry", lambda t: t["files"].__setitem__("/etc/hostname", {"size": 1, "blake2b": ["0" * 64]})),
        ("integrity = 5", lambda t: t.clear()),
    ):
        man(f"integrity: {name}", integ(edit), "integrity")

    # malformed JSON
    def raw(data):
        return lambda d, _c: _replace(
            d / MANIFEST, data if isinstance(data, bytes) else data((d / MANIFEST).read_bytes())
        )

    for name, data in (
        ("empty", b""),
        ("null", b"null"),
        ("a list", b"[]"),
        ("cut in half", lambda b: b[: len(b) // 2]),
        ("invalid UTF-8", lambda b: b.replace(b'"target"', b'"t\xff\xfeget"', 1)),
        ("100000 nested lists", b"[" * 100000 + b"]" * 100000),
        ("a BOM first", lambda b: b"\xef\xbb\xbf" + b),
        ("a NUL inside", lambda b: b.replace(b'"models"', b'"mod\x00els"', 1)),
        ("10 MB of spaces", lambda b: b + b" " * (10 << 20)),
        ("a number 1e99999", lambda b: b.replace(b'"schema_version": 1', b'"schema_version": 1e99999', 1)),
        ("trailing garbage", lambda b: b + b"}{"),
    ):
        out.append(Case(f"manifest JSON: {name}", "json", raw(data)))

    # paths that leave the bundle: each points at a working copy outside (the canary)
    def escape(name, apply):
        out.append(Case(name, "escape", apply, escape=True))

    def rel_to_canary(d: Path, c: Path) -> str:
        return os.path.relpath(c, d)

    escape(
        "target path = ../canary/target",
        lambda d, c: _edit_manifest(d, _set(["path"], f"{rel_to_canary(d, c)}/target")),
    )
    escape("target path = absolute canary", lambda d, c: _edit_manifest(d, _set(["path"], str(c / "target"))))
    escape(
        "target path = target/../../canary/target",
        lambda d, c: _edit_manifest(d, _set(["path"], f"target/../{rel_to_canary(d, c)}/target")),
    )
    for key, fname in (
        ("model", "openvino_model.xml"),
        ("tokenizer", "openvino_tokenizer.xml"),
        ("detokenizer", "openvino_detokenizer.xml"),
        ("token_bytes", "token_bytes.bin"),
    ):
        escape(
            f"files.{key} = ../ to the canary",
            lambda d, c, k=key, f=fname: _edit_manifest(d, _set(["files", k], f"../{rel_to_canary(d, c)}/target/{f}")),
        )
        escape(
            f"files.{key} = absolute canary",
            lambda d, c, k=key, f=fname: _edit_manifest(d, _set(["files", k], str(c / "target" / f))),
        )
    escape("files.model = /etc/passwd", lambda d, c: _edit_manifest(d, _set(["files", "model"], "/etc/passwd")))
    escape(
        "files.tokenizer = ../../../../../../etc/passwd",
        lambda d, c: _edit_manifest(d, _set(["files", "tokenizer"], "../../../../../../etc/passwd")),
    )

    def link_dir(d, c):
        shutil.rmtree(d / "target")
        os.symlink(c / "target", d / "target")

    def link_file(name):
        def apply(d, c):
            (d / "target" / name).unlink()
            os.symlink(c / "target" / name, d / "target" / name)

        return apply

    def link_manifest(d, c):
        (d / MANIFEST).unlink()
        os.symlink(c / MANIFEST, d / MANIFEST)

    escape("target/ is a symlink to the canary", link_dir)
    for name in (
        "openvino_model.xml",
        "openvino_model.bin",
        "openvino_tokenizer.xml",
        "openvino_tokenizer.bin",
        "openvino_detokenizer.bin",
        "token_bytes.bin",
    ):
        if (base / "target" / name).is_file():
            escape(f"target/{name} is a symlink to the canary", link_file(name))
    escape("edgespec.json is a symlink to the canary's", link_manifest)
    if "draft" in roles:
        escape(
            "draft: id_map = ../ to /etc/passwd",
            lambda d, c: _edit_manifest(
                d, _set(["relation"], {"kind": "trimmed", "id_map": "../../../../../../../etc/passwd"}, "draft")
            ),
        )

    # bundles exported before the integrity table: the checks the runtime makes without digests
    def legacy(then):
        def apply(d, c):
            _edit_manifest(d, lambda m: m.pop("integrity", None))
            then(d, c)

        return apply

    for rel in files:
        if rel.endswith(".xml") or rel.endswith("openvino_model.bin"):
            out.append(Case(f"no digests: truncate {rel} (half)", "legacy", legacy(cut(rel, lambda n: n // 2))))
    return out + onnx_escape_cases(base)


# ONNX bundles: the target's weights moved to an external-data file that the model names by a
# location (relative to the model's directory), as large ONNX exports ship them.
EXTERNAL_DATA = "ext.data"


def externalize(model: Path, location: str, data: Path | None) -> None:
    """Rewrite the ONNX file model (in place, new inode) so its large initializers are read from
    location; their bytes go to data (None: left to a file that exists already)."""
    import onnx
    from onnx.external_data_helper import set_external_data

    m = onnx.load(str(model))
    blob = bytearray()
    for t in m.graph.initializer:
        if t.HasField("raw_data") and len(t.raw_data) >= 1024:
            set_external_data(t, location=location, offset=len(blob), length=len(t.raw_data))
            blob += t.raw_data
            t.ClearField("raw_data")
    if data is not None:
        _replace(data, bytes(blob))
    _replace(model, m.SerializeToString())


def reseal(d: Path) -> None:
    """Record the case's files in its integrity table again, so only the path check can refuse it."""
    from edgespec.bundle import integrity_table

    m = json.loads((d / MANIFEST).read_text())
    m["integrity"] = integrity_table(d, m)
    _replace(d / MANIFEST, json.dumps(m).encode())


def onnx_escape_cases(base: Path) -> list[Case]:
    """Cases for an ONNX target (none for OpenVINO IR): its external data named by '..', by an
    absolute path, and through a symbolic link, each leading to the canary's working copy."""
    m = _model(json.loads((base / MANIFEST).read_text()), "target")
    if m["format"] != "onnx":
        return []
    model = m["files"]["model"]

    def external(where):
        def apply(d, c):
            mdir, cdata = d / m["path"], c / m["path"] / EXTERNAL_DATA
            if where == "symlink":
                os.symlink(cdata, mdir / EXTERNAL_DATA)
                location = EXTERNAL_DATA
            else:
                location = str(cdata) if where == "absolute" else os.path.relpath(cdata, mdir)
            externalize(mdir / model, location, None)
            reseal(d)

        return apply

    return [
        Case(f"ONNX external data = {where} to the canary", "escape", external(where), escape=True)
        for where in ("../", "absolute", "symlink")
    ]


def make_case(base: Path, case: Case, where: Path, canary: Path) -> Path:
    """A hard-linked copy of base at where, with case applied."""
    shutil.copytree(base, where, copy_function=os.link, symlinks=True)
    case.apply(where, canary)
    return where


def make_canary(base: Path, where: Path) -> Path:
    """A full working copy of base outside every case (what escapes point at)."""
    if not (where / MANIFEST).is_file():
        shutil.copytree(base, where)
        target = _model(json.loads((base / MANIFEST).read_text()), "target")
        if target["format"] == "onnx":  # its weights also as external data, for the ONNX escapes
            externalize(
                where / target["path"] / target["files"]["model"], EXTERNAL_DATA, where / target["path"] / EXTERNAL_DATA
            )
            reseal(where)
    return where
