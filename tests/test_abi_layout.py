"""The ctypes mirror of the C structs (edgespec/_native.py) has the header's layout: the same
fields in the same order at the same offsets, and the same sizes, as a C compiler lays them out.
A field added to one side only fails here, not as a silently misread stat."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgespec import _native

REPO = Path(__file__).resolve().parent.parent
HEADER = REPO / "runtimes" / "include" / "edgespec.h"
MIRRORS = {
    "es_pipeline_params": _native.PipelineParams,
    "es_generation_config": _native.GenerationConfig,
    "es_stats": _native.Stats,
}


def header_fields(struct: str) -> list[str]:
    """Field names of `typedef struct NAME { ... } NAME;` in the header, in order."""
    body = re.search(rf"typedef struct {struct} \{{(.*?)\}} {struct};", HEADER.read_text(), flags=re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    names = []
    for decl in body.split(";"):
        decl = decl.strip()
        if decl:
            names.append(re.match(r".*?([A-Za-z_][A-Za-z0-9_]*)\s*(\[[^\]]*\])?$", decl, flags=re.S).group(1))
    return names


def test_every_struct_of_the_header_has_a_ctypes_mirror():
    structs = set(re.findall(r"typedef struct (\w+) \{", HEADER.read_text()))
    assert structs == set(MIRRORS)


@pytest.mark.parametrize("struct", sorted(MIRRORS))
def test_the_ctypes_mirror_has_the_headers_fields_offsets_and_size(struct, tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    mirror = MIRRORS[struct]
    names = header_fields(struct)
    assert [f[0] for f in mirror._fields_] == names
    lines = [f'printf("size %zu\\n", sizeof({struct}));']
    lines += [f'printf("{n} %zu %zu\\n", offsetof({struct}, {n}), sizeof((({struct} *)0)->{n}));' for n in names]
    src = tmp_path / "layout.c"
    src.write_text(
        '#include <stddef.h>\n#include <stdio.h>\n#include "edgespec.h"\nint main(void) {\n'
        + "\n".join(lines)
        + "\nreturn 0;\n}\n"
    )
    exe = tmp_path / "layout"
    r = subprocess.run([cc, "-std=c99", f"-I{HEADER.parent}", str(src), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    c = dict(
        (row.split(" ", 1)[0], row.split(" ", 1)[1])
        for row in subprocess.run([str(exe)], capture_output=True, text=True).stdout.splitlines()
    )
    assert int(c["size"]) == ctypes.sizeof(mirror)
    for n in names:
        off, size = map(int, c[n].split())
        field = getattr(mirror, n)
        assert (field.offset, field.size) == (off, size), n
