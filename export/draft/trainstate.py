"""Training checkpoints without pickle: one safetensors file, JSON metadata inside it.

    save_state(path, model, optimizer, meta)     # atomic: a temporary file, then a rename
    meta = load_state(path, model, optimizer)    # restores both in place, returns meta

The file holds the model's trainable tensors (``model.<name>``), the optimizer's per-parameter
tensors (``opt.<index>.<key>``, e.g. AdamW's ``exp_avg``, ``exp_avg_sq``, ``step``) and, in the
safetensors header's string metadata, ``meta`` (step, config, history, data position...) and the
optimizer's param_groups as JSON. Loading reads tensors only (safetensors cannot hold code), so a
checkpoint from an untrusted place cannot run anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgespec.errors import EdgespecError


def save_state(path: Path, model, optimizer, meta: dict) -> None:
    """Write ``model``'s trainable parameters, ``optimizer``'s state and ``meta`` to ``path``."""
    from safetensors.torch import save_file

    tensors = {f"model.{n}": p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    sd = optimizer.state_dict()
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if not hasattr(val, "shape"):
                raise EdgespecError(f"optimizer state {key!r} is not a tensor; this optimizer cannot be checkpointed.")
            tensors[f"opt.{idx}.{key}"] = val.detach().contiguous().cpu()
    header = {"meta": json.dumps(meta), "param_groups": json.dumps(sd["param_groups"])}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)


def read_meta(path: Path) -> dict:
    """The ``meta`` dict of a checkpoint without loading its tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})["meta"])
    except Exception as e:
        raise EdgespecError(
            f"training checkpoint {path} is unreadable ({e.__class__.__name__}); delete it to start over."
        ) from None


def load_state(path: Path, model, optimizer, device: str = "cpu") -> dict:
    """Restore ``model`` and ``optimizer`` from ``path`` (written by :func:`save_state`); returns meta."""
    from safetensors import safe_open

    meta = read_meta(path)
    params = dict(model.named_parameters())
    state: dict = {}
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        groups = json.loads(f.metadata()["param_groups"])
        for key in f.keys():
            kind, rest = key.split(".", 1)
            if kind == "model":
                if rest not in params or list(params[rest].shape) != list(f.get_slice(key).get_shape()):
                    raise EdgespecError(
                        f"the checkpoint {path} belongs to another model ({rest}); use another "
                        "output directory or the same settings."
                    )
                with __import__("torch").no_grad():
                    params[rest].copy_(f.get_tensor(key))
            else:
                idx, name = rest.split(".", 1)
                state.setdefault(int(idx), {})[name] = f.get_tensor(key)
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return meta
