"""edgespec.export: the heavy side. HF checkpoints -> OpenVINO IR / ONNX bundles, drafter tooling.

Imports torch, transformers, optimum-intel, nncf, onnx, onnxruntime. The runtime never imports it.
"""
