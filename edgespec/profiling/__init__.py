"""On-device latency profiling: which backend, drafter, policy and k pay on this device.

``edgespec profile BUNDLE`` (:mod:`.cli`) measures this device's per-call costs (:mod:`.probe`),
runs every configuration on the user's prompts (:mod:`.runs`), computes the bench's figures
(:mod:`.metrics`), writes a JSON / CSV / HTML report (:mod:`.report`) and saves a recommendation
beside the bundle, keyed by the device (:mod:`.recommend`). Readers of that recommendation::

    from edgespec.profiling import load_recommendation
    match = load_recommendation(bundle, device="CPU")   # ProfileMatch(recommendation, path, note)
    if match.recommendation:                              # {"backend", "draft", "policy", "k", "why", ...}
        ...
    if match.note:                                        # one line: what applies, or why a saved one does not
        print(match.note)

Light side only: numpy and openvino, never torch.
"""

from __future__ import annotations

from .recommend import ProfileMatch, device_identity, device_key, load_recommendation

__all__ = ["ProfileMatch", "device_identity", "device_key", "load_recommendation"]
