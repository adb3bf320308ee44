"""The profile's recommendation: which backend, drafter, policy and k pay on this device, saved
beside the bundle keyed by the device, and read back by ``edgespec run``, ``edgespec demo`` and
``Pipeline.load``.

A recommendation is a property of (this CPU and its instruction set, the OpenVINO device, this
exact bundle): ``BUNDLE/profiles/<device-key>.json`` holds one per device, and one measured on
another device or on another build of the bundle is never applied (the caller gets a sentence
saying why).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgespecError

PROFILES_DIR = "profiles"
FORMAT = 1  # the saved file's layout version

# CPU features that decide which kernels OpenVINO and ONNX Runtime pick for INT4/INT8 matmuls
# (VNNI: int8 dot products; AMX: tile matmuls; AVX-512: wider vectors)
_ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def device_identity(device: str = "CPU") -> dict:
    """What a profile's figures depend on: the CPU model, its matmul-relevant instruction sets and
    the OpenVINO device the target runs on (with its full name where it is not the CPU)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), cpu)
        line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
        flags = set(line.split(":", 1)[1].split()) if ":" in line else set()
    except OSError:
        pass
    ident = {"cpu": cpu, "isa": [f for f in _ISA_FLAGS if f in flags], "ov_device": device}
    if device.upper() != "CPU":
        try:
            import openvino as ov

            ident["ov_device_name"] = str(ov.Core().get_property(device, "FULL_DEVICE_NAME"))
        except Exception:  # noqa: BLE001 - a device OpenVINO does not list is keyed by its name alone
            pass
    return ident


def device_key(ident: dict) -> str:
    """A file name for a device identity: readable CPU slug, device, and a hash of the whole."""
    slug = re.sub(r"[^a-z0-9]+", "-", ident["cpu"].lower()).strip("-")[:40] or "cpu"
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
    return f"{slug}-{ident['ov_device'].lower()}-{digest}"


def bundle_identity(bundle: str | os.PathLike) -> str:
    """The bundle's identity: sha256 of its manifest (which names every model file, its weights'
    precision and the tokenizers' hashes; a re-export writes a new one)."""
    return "sha256:" + hashlib.sha256((Path(bundle) / "edgespec.json").read_bytes()).hexdigest()


def profile_path(bundle: str | os.PathLike, ident: dict) -> Path:
    return Path(bundle) / PROFILES_DIR / f"{device_key(ident)}.json"


def save_recommendation(bundle: str | os.PathLike, recommendation: dict, ident: dict, report: str | None) -> Path:
    """Write BUNDLE/profiles/<device-key>.json atomically (a temporary file renamed over it)."""
    from .. import __version__

    path = profile_path(bundle, ident)
    doc = {
        "format": FORMAT,
        "device": ident,
        "device_key": device_key(ident),
        "bundle": bundle_identity(bundle),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "edgespec": __version__,
        "report": report,
        "recommendation": recommendation,
    }
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from other users of the bundle
        os.replace(tmp, path)
    except OSError as e:
        raise EdgespecError(
            f"Cannot save the recommendation in {path.parent} ({e.strerror}); make the bundle "
            "directory writable or pass --no-save."
        ) from None
    return path


@dataclass(frozen=True)
class ProfileMatch:
    """What load_recommendation found: ``recommendation`` (None: nothing to apply), the file it came
    from, and ``note``, one line for the user (what is applied, or why a saved profile is not)."""

    recommendation: dict | None
    path: Path | None
    note: str | None


def _describe(rec: dict) -> str:
    if rec["policy"] == "autoregressive":
        how = "plain decoding"
    elif rec["policy"] == "ngram":
        how = f"n-gram drafting, k={rec['k']}"
    else:
        how = f"drafter {rec['draft']!r}, k={rec['k']}"
    return f"{how} on {rec['backend']}"


def load_recommendation(
    bundle: str | os.PathLike, device: str = "CPU", path: str | os.PathLike | None = None
) -> ProfileMatch:
    """The recommendation `edgespec profile` saved for this device and this bundle.

    ``recommendation`` is a dict {"backend", "draft" (a drafter name or None), "policy"
    ("draft" | "ngram" | "autoregressive"), "k" (an int, "auto" or None), "why" (one sentence),
    "speedup", "tokens_per_s"}, or None when nothing applies. Without ``path`` the device's own file
    is read; a saved profile of another device or of another build of the bundle is ignored and
    ``note`` says so. With ``path`` (a file the user named) a profile that does not match this
    device and bundle raises EdgespecError instead."""
    ident = device_identity(device)
    own = profile_path(bundle, ident)
    explicit = path is not None
    p = Path(path) if explicit else own
    if not p.is_file():
        if explicit:
            raise EdgespecError(f"No profile at {p}; pass a file `edgespec profile` saved or drop --profile.")
        others = sorted((Path(bundle) / PROFILES_DIR).glob("*.json")) if (Path(bundle) / PROFILES_DIR).is_dir() else []
        note = None
        if others:
            note = (
                f"profile: not using {others[0]}: it was measured on another device "
                f"({_device_line(others[0])}); run `edgespec profile` on this one"
            )
        return ProfileMatch(None, None, note)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        rec, saved_dev, saved_bundle = doc["recommendation"], doc["device"], doc["bundle"]
        rec["backend"], rec["policy"]  # noqa: B018 - the keys every reader needs
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        if explicit:
            raise EdgespecError(f"{p} is not a profile `edgespec profile` saved; pass one it saved.") from None
        return ProfileMatch(None, None, f"profile: not using {p}: it is not readable; run `edgespec profile` again")
    why = None
    if saved_dev != ident:
        why = (
            f"it was measured on another device ({saved_dev.get('cpu')}, {saved_dev.get('ov_device')}; this one "
            f"is {ident['cpu']}, {ident['ov_device']})"
        )
    elif saved_bundle != bundle_identity(bundle):
        why = "it was measured on another build of this bundle (its manifest changed)"
    if why:
        if explicit:
            raise EdgespecError(f"The profile {p} does not fit: {why}; run `edgespec profile` here or drop --profile.")
        return ProfileMatch(None, p, f"profile: not using {p}: {why}; run `edgespec profile` again")
    return ProfileMatch(rec, p, f"profile: {_describe(rec)}, as measured on this device ({p})")


def _device_line(p: Path) -> str:
    try:
        dev = json.loads(p.read_text(encoding="utf-8"))["device"]
        return f"{dev['cpu']}, {dev['ov_device']}"
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return "unreadable"


def recommend(configs: dict[str, dict]) -> dict | None:
    """The configuration to run: the highest median tokens/s of the measured ones (each a metrics dict
    with backend, draft, policy, k, speedup, tokens_per_s, spread, mean_accepted), plain decoding
    unless a speculative one that had drafts accepted beats the fastest plain decoding by more than
    the run-to-run spread (at least 2 %). None when nothing ran."""
    ok = {n: m for n, m in configs.items() if m.get("tokens_per_s") and not m.get("error")}
    if not ok:
        return None
    plain = {n: m for n, m in ok.items() if m["policy"] == "ar"}
    # a speculative configuration whose drafts were never accepted cannot be faster than plain
    # decoding except by noise
    useful = {n: m for n, m in ok.items() if m["policy"] == "ar" or (m.get("mean_accepted") or 0.0) > 1.0}
    best_name = max(useful, key=lambda n: useful[n]["tokens_per_s"])
    best = useful[best_name]
    base_name = max(plain, key=lambda n: plain[n]["tokens_per_s"]) if plain else None
    base = plain.get(base_name)
    spread = max([x for x in (best.get("spread"), (base or {}).get("spread")) if x is not None], default=None)
    margin = max(0.02, spread or 0.0)  # a win inside the runs' own scatter is no win
    gain = best["tokens_per_s"] / base["tokens_per_s"] if base is not None else None
    if base is not None and best is not base and gain < 1.0 + margin:
        best_name, best = base_name, base
        why = (
            "No speculative configuration beat plain decoding by more than "
            + (
                f"the run-to-run spread ({100 * margin:.0f}%)"
                if spread is not None
                else f"{100 * margin:.0f}% (one repeat: no spread measured)"
            )
            + f" on these prompts, so plain decoding on {best['backend']}."
        )
    elif best["policy"] == "ar":
        why = f"Plain decoding on {best['backend']} was the fastest of {len(ok)} configurations."
    else:
        acc = best.get("acceptance_rate")
        why = (
            f"{best_name} ran at {gain or best['speedup']:.2f}x the best plain decoding's tokens/s on these prompts"
            + (
                f" (acceptance {100 * acc:.0f}%, {best.get('mean_accepted') or 0:.2f} tokens per target call)"
                if acc is not None
                else ""
            )
            + f", the fastest of {len(ok)} configurations"
            + (f" (run-to-run spread {100 * spread:.0f}%)." if spread is not None else ".")
        )
    policy = {"ar": "autoregressive", "draft": "draft", "ngram": "ngram"}[best["policy"]]
    k = None if policy == "autoregressive" else ("auto" if best["k"] is None else int(best["k"]))
    return {
        "config": best_name,
        "backend": best["backend"],
        "draft": best.get("draft") if policy == "draft" else None,
        "policy": policy,
        "k": k,
        "why": why,
        "speedup": best.get("speedup"),
        "tokens_per_s": best["tokens_per_s"],
    }
