"""The Python API over the native engine: load a bundle, generate or stream text.

    from edgespec import Pipeline
    pipe = Pipeline.load("bundle", device="CPU")            # target + its first drafter
    res = pipe.generate("def fib(n):", max_new_tokens=64)    # Result(text, tokens, stats)
    for chunk in pipe.stream("def fib(n):", k="auto"):      # UTF-8-safe text deltas
        print(chunk, end="")

Speculation is an option of the same calls, not a second API: ``policy="auto"`` drafts with
the loaded drafter when there is one; ``Pipeline.load(..., draft=None)`` or
``policy="autoregressive"`` is plain decoding; ``policy="ngram"`` is prompt lookup. Every token
is produced by the native loop (no Python per token); this module only marshals arguments.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import queue
import threading
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence

from . import _native
from .errors import EdgespecError

__all__ = ["Pipeline", "Result", "Stats", "TextStream"]


@dataclass(frozen=True)
class Stats:
    """Stats of one generation; names and definitions as in BENCHMARKS.md and edgespec.h."""

    ttft_ms: float
    tpot_ms: float
    tokens_per_s: float
    total_ms: float
    draft_ms: float
    verify_ms: float
    other_ms: float
    prefill_ms: float
    tokenize_ms: float
    callback_ms: float
    prompt_tokens: int
    generated_tokens: int
    target_calls: int
    drafted: int
    accepted: int
    acceptance_rate: float
    mean_accepted: float
    kv_compactions: int
    final_k: int
    finish_reason: str
    accepted_hist: list[int] = field(default_factory=list)
    draft_prefill_ms: float = 0.0
    draft_prefill_tokens: int = 0

    @classmethod
    def _from_native(cls, s: _native.Stats) -> "Stats":
        kw = {name: getattr(s, name) for name, _ in _native.Stats._fields_}
        kw["finish_reason"] = _native.FINISH_REASONS[s.finish_reason]
        hist = list(s.accepted_hist)
        while len(hist) > 1 and hist[-1] == 0:
            hist.pop()
        kw["accepted_hist"] = hist
        return cls(**kw)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Result:
    """One generation: text (EOS and any stop string excluded), target token ids, stats."""

    text: str
    tokens: list[int]
    stats: Stats

    @property
    def finish_reason(self) -> str:
        return self.stats.finish_reason


def _tokenizers_extension() -> str | None:
    try:
        import openvino_tokenizers
    except ImportError:
        return None
    path = getattr(openvino_tokenizers, "_ext_path", None)
    return str(path) if path and os.path.isfile(str(path)) else None


BACKENDS = ("openvino", "openvino-paged", "openvino-stateful", "onnxruntime")


def _ort_library() -> str | None:
    """libonnxruntime of the installed `onnxruntime` wheel (found without importing it), or None."""
    import glob
    import importlib.util

    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        for pattern in ("libonnxruntime.so*", "libonnxruntime*.dylib", "onnxruntime.dll"):
            found = sorted(glob.glob(os.path.join(loc, "capi", pattern)))
            if found:
                return found[-1]
    return None


def _enc(s: str | None) -> bytes | None:
    return None if s is None else str(s).encode("utf-8")


class Pipeline:
    """A loaded bundle: the target, optionally one drafter, and the target tokenizer.

    One generation runs at a time per pipeline (calls from several threads are serialised).
    """

    def __init__(self, handle: int, bundle: str):
        self._h = ctypes.c_void_p(handle)
        self._lib = _native.lib()
        self._lock = threading.Lock()
        self.bundle = bundle
        self.profile = None  # the ProfileMatch Pipeline.load found (edgespec.profiling.recommend), or None
        self.defaults: dict = {}  # generation options applied where a call does not pass them (the profile's)

    @classmethod
    def load(
        cls,
        bundle: str | os.PathLike,
        *,
        device: str = "CPU",
        draft: str | None = "auto",
        draft_device: str | None = None,
        precision: str | None = None,
        kv_precision: str | None = None,
        threads: int = 0,
        backend: str | None = None,
        ort_library: str | os.PathLike | None = None,
        fixed_shapes: bool | None = None,
        profile: bool | str | os.PathLike = True,
    ) -> "Pipeline":
        """Load a bundle directory written by ``edgespec export``.

        device / draft_device: OpenVINO devices ("CPU", "GPU", "NPU", "AUTO"; the drafter
        defaults to the target's). draft: a drafter name from the bundle, "auto" (the first
        same_vocab or trimmed drafter, else the first cross_vocab one the bundle has token byte
        tables for, else none) or None / "none" (load no drafter: plain decoding and n-gram
        only). A cross_vocab drafter (another tokenizer) drafts greedily in its own vocabulary
        and its text is re-tokenized into target ids; output stays lossless at any temperature.
        precision: inference precision hint "f32" / "f16" / "bf16" (None: device default);
        kv_precision likewise for the KV cache ("u8" too). threads: 0 = device default.
        backend: "openvino" (any device; OpenVINO IR and ONNX bundles; IR models run with paged
        attention on the CPU where OpenVINO can convert them, else as the stateful graph),
        "openvino-paged" / "openvino-stateful" (IR bundles; force one of the two), or "onnxruntime" (ONNX
        bundles on the CPU; precision and kv_precision must stay None or "f32"); ort_library: the
        libonnxruntime to load (default: $EDGESPEC_ORT_LIBRARY, else the `onnxruntime` wheel's).
        fixed_shapes: compile fixed-width copies of the models the CPU runs with paged attention
        for the loop's most frequent call widths (target 1..5 tokens, drafter 1 and 2), which skip
        OpenVINO's per-call shape work; each copy holds the weights again. None (default): models
        whose weights are at most 64 MiB; True: every model; False: none. ``info["target"]
        ["fixed_widths"]`` lists what a model got; ``info[...]["split_widths"]`` the call widths its
        attention gets as one-token subsequences (paged attention on the CPU with a float KV cache).
        profile: start from the configuration `edgespec profile` recommended for this device and
        bundle (BUNDLE/profiles/, see edgespec.profiling.load_recommendation): its backend where
        ``backend`` is None, its drafter where ``draft`` is "auto", and its policy and k as the
        defaults of generate() and stream() (``pipe.defaults``; options passed to them win). A saved
        profile of another device or bundle is not applied; ``pipe.profile.note`` says what was
        applied or why not (also logged on the "edgespec" logger). False: ignore saved profiles; a
        path: that profile file, which must match this device and bundle (EdgespecError if not).
        backend None: the profile's, else "openvino".
        Raises BundleError (missing/corrupt bundle, ONNX Runtime library not loadable),
        DeviceError, InvalidArgumentError.
        """
        match = None
        if profile is not False:
            from .profiling.recommend import load_recommendation

            match = load_recommendation(bundle, device, None if profile is True else profile)
            if match.note:
                logging.getLogger("edgespec").info(match.note)
        rec = match.recommendation if match else None
        if backend is None:
            backend = rec["backend"] if rec else "openvino"
        if rec and draft == "auto" and rec.get("draft"):
            draft = rec["draft"]
        if backend not in BACKENDS:
            raise _native.InvalidArgumentError(f"Unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.", 1)
        if fixed_shapes not in (None, True, False):
            raise _native.InvalidArgumentError(
                f"fixed_shapes must be None (auto), True or False (got {fixed_shapes!r}).", 1)
        if backend == "onnxruntime" and ort_library is None and not os.environ.get("EDGESPEC_ORT_LIBRARY"):
            ort_library = _ort_library()
        lib = _native.lib()
        params = lib.es_pipeline_default_params()
        keep = []  # bytes objects must outlive the call

        def s(v):
            b = _enc(v)
            keep.append(b)
            return b

        params.device = s(device)
        params.draft_device = s(draft_device)
        params.draft = s("none" if draft in (None, "none") else (None if draft == "auto" else draft))
        if draft == "auto":
            params.draft = None
        params.precision = s(precision)
        params.kv_precision = s(kv_precision)
        params.num_threads = int(threads)
        params.tokenizers_extension = s(_tokenizers_extension())
        params.backend = s(backend)
        params.ort_library = s(None if ort_library is None else os.fspath(ort_library))
        params.fixed_shapes = -1 if fixed_shapes is None else int(bool(fixed_shapes))
        out = ctypes.c_void_p()
        _native.check(lib.es_pipeline_load(_enc(os.fspath(bundle)), ctypes.byref(params), ctypes.byref(out)))
        pipe = cls(out.value, os.fspath(bundle))
        pipe.profile = match
        if rec and not (rec["policy"] == "draft" and pipe.draft_name is None):  # a drafter policy needs a drafter
            pipe.defaults = {"policy": rec["policy"], "k": rec["k"]}
        return pipe

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        """Free the native pipeline (also done when the object is collected)."""
        h, self._h = self._h, None
        if h and h.value:
            self._lib.es_pipeline_free(h)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _handle(self) -> ctypes.c_void_p:
        if not self._h:
            raise EdgespecError("The pipeline is closed; load it again.")
        return self._h

    # -- info -------------------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return int(self._lib.es_pipeline_context_length(self._handle()))

    @property
    def draft_name(self) -> str | None:
        """Name of the loaded drafter, or None."""
        return self._lib.es_pipeline_draft_name(self._handle()).decode() or None

    @property
    def info(self) -> dict:
        """What runs: {"target": {"backend", "device"}, "draft": {"name", "backend", "device"} | None,
        "text": "byte-table" | "detokenizer"} (the backend "openvino" picked per model, and how
        streamed text is made)."""
        return json.loads(self._lib.es_pipeline_info(self._handle()).decode())

    # -- tokens -----------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """Target token ids of text (the bundle's tokenizer, run natively)."""
        n = ctypes.c_size_t(0)
        b = text.encode("utf-8")
        with self._lock:
            _native.check(self._lib.es_tokenize(self._handle(), b, None, ctypes.byref(n)))
            buf = (ctypes.c_int64 * max(n.value, 1))()
            _native.check(self._lib.es_tokenize(self._handle(), b, buf, ctypes.byref(n)))
        return list(buf[: n.value])

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of target token ids."""
        arr = (ctypes.c_int64 * max(len(ids), 1))(*ids)
        size = ctypes.c_size_t(0)
        with self._lock:
            _native.check(self._lib.es_detokenize(self._handle(), arr, len(ids), None, ctypes.byref(size)))
            buf = ctypes.create_string_buffer(size.value)
            _native.check(self._lib.es_detokenize(self._handle(), arr, len(ids), buf, ctypes.byref(size)))
        return buf.raw[: max(0, size.value - 1)].decode("utf-8")  # size counts the terminator; text may hold NULs

    # -- generation -------------------------------------------------------------------------------
    def stream(self, prompt: str, **config) -> "TextStream":
        """Start a generation and iterate its text deltas (see generate() for the options).

        The returned TextStream yields str chunks that concatenate to ``result.text``; after
        iteration ``stream.result`` holds the Result. Closing it early (``close()``, ``break``
        in a with-block, Ctrl-C) cancels the native generation cleanly.
        """
        return TextStream(self, prompt, _make_config(self._options(config)))

    def generate(self, prompt: str, streamer: Callable[[str], object] | None = None, **config) -> Result:
        """Generate text for prompt; returns Result(text, tokens, stats).

        Options: max_new_tokens=128, policy="auto" | "autoregressive" | "draft" | "ngram",
        k=-1 / "auto" (adaptive) or 1..32 (fixed), k_max=8, temperature=0 (greedy),
        top_k=0, top_p=1, seed=0, ignore_eos=False, stop=[strings], draft_stop_prob=0,
        draft_window=1024 (0: all the drafter's context holds; else >= 128): the drafter reads the first 4 and
        the latest tokens of the context only (the output does not change).

        streamer: called on this thread with each text delta as it is generated (the deltas
        concatenate to ``result.text``); a true return value stops the generation (finish reason
        "callback"). An exception it raises, or Ctrl-C, cancels the generation and propagates.
        The generation runs on the calling thread, so nothing crosses threads per token (stream()
        hands each delta to another thread).
        """
        cfg = _make_config(self._options(config))
        raised: list[BaseException] = []

        def on_text(ptr, size, _user) -> int:
            try:
                if streamer is not None and streamer(ctypes.string_at(ptr, size).decode("utf-8")):
                    return 1
                return 0
            except BaseException as e:  # noqa: BLE001 - re-raised once the native call has returned
                raised.append(e)
                return _CANCEL

        # Python runs signal handlers on the main thread between bytecodes, i.e. inside this
        # callback: Ctrl-C lands in on_text, which cancels the native call cleanly.
        callback = _native.STREAM_CALLBACK(on_text)
        out = ctypes.c_void_p()
        with self._lock:
            status = self._lib.es_generate(self._handle(), prompt.encode("utf-8"), ctypes.byref(cfg.cfg), callback,
                                           None, ctypes.byref(out))
        if raised:
            if out.value:
                self._lib.es_result_free(out)
            raise raised[0]
        _native.check(status)
        return _take_result(self._lib, out)

    def _options(self, config: dict) -> dict:
        """The call's generation options over the pipeline's defaults (an option given as None counts
        as not given)."""
        return {**self.defaults, **{k: v for k, v in config.items() if v is not None}}

    def __repr__(self) -> str:
        return f"Pipeline({self.bundle!r}, draft={self.draft_name!r})"


_CONFIG_KEYS = {"max_new_tokens", "policy", "k", "k_max", "temperature", "top_k", "top_p", "seed", "ignore_eos",
                "stop", "draft_stop_prob", "draft_window"}


class _Config:
    """A native es_generation_config plus the buffers its pointers refer to."""

    def __init__(self, cfg: _native.GenerationConfig, keep: list):
        self.cfg = cfg
        self.keep = keep


def _make_config(options: dict) -> _Config:
    unknown = set(options) - _CONFIG_KEYS
    if unknown:
        raise _native.InvalidArgumentError(
            f"Unknown generation option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_CONFIG_KEYS))}.", 1)
    cfg = _native.lib().es_generation_default_config()
    keep: list = []
    for key, value in options.items():
        if value is None:
            continue
        if key == "policy":
            if value not in _native.POLICIES:
                raise _native.InvalidArgumentError(
                    f"Unknown policy {value!r}; use one of {', '.join(_native.POLICIES)}.", 1)
            cfg.policy = _native.POLICIES[value]
        elif key == "k":
            cfg.k = -1 if value in ("auto", -1) else int(value)
        elif key == "stop":
            stops = [value] if isinstance(value, str) else list(value)
            arr = (ctypes.c_char_p * max(len(stops), 1))(*[s.encode("utf-8") for s in stops])
            keep.append(arr)
            cfg.stop = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
            cfg.n_stop = len(stops)
        elif key == "ignore_eos":
            cfg.ignore_eos = 1 if value else 0
        elif key in ("temperature", "top_p", "draft_stop_prob"):
            setattr(cfg, key, float(value))
        else:
            setattr(cfg, key, int(value))
    return _Config(cfg, keep)


_DONE = object()
_CANCEL = 2


def _take_result(lib, out: ctypes.c_void_p) -> Result:
    """The Result of a native es_result, which is freed."""
    try:
        n = ctypes.c_size_t(0)
        ptr = lib.es_result_tokens(out, ctypes.byref(n))
        tokens = [ptr[i] for i in range(n.value)]
        st = _native.Stats()
        _native.check(lib.es_result_stats(out, ctypes.byref(st)))
        # by length, not as a C string: generated text may contain U+0000
        text = ctypes.string_at(lib.es_result_text(out), lib.es_result_text_len(out)).decode("utf-8")
        return Result(text, tokens, Stats._from_native(st))
    finally:
        lib.es_result_free(out)


class TextStream:
    """Iterator over the text deltas of one running generation (see Pipeline.stream)."""

    def __init__(self, pipe: Pipeline, prompt: str, config: _Config):
        self._pipe = pipe
        self._prompt = prompt.encode("utf-8")
        self._config = config
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self.result: Result | None = None
        # The callback runs on the worker thread inside es_generate; it only queues bytes.
        self._callback = _native.STREAM_CALLBACK(self._on_text)
        self._thread = threading.Thread(target=self._run, name="edgespec-generate", daemon=True)
        self._thread.start()

    def _on_text(self, ptr, size, _user) -> int:
        if self._cancel.is_set():
            return _CANCEL
        self._queue.put(ctypes.string_at(ptr, size))
        return 0

    def _run(self) -> None:
        lib = self._pipe._lib
        out = ctypes.c_void_p()
        try:
            with self._pipe._lock:
                status = lib.es_generate(self._pipe._handle(), self._prompt, ctypes.byref(self._config.cfg),
                                         self._callback, None, ctypes.byref(out))
                if status != 0:
                    _native.check(status)
            self.result = _take_result(lib, out)
        except BaseException as e:  # noqa: BLE001 - handed to the consuming thread
            self._error = e
        finally:
            self._queue.put(_DONE)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while True:
            try:
                # A timeout keeps the consuming thread responsive to Ctrl-C.
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            except BaseException:
                self.close()
                raise
            if item is _DONE:
                self._queue.put(_DONE)  # later next() calls stop again
                if self._error is not None and not isinstance(self._error, _native.CancelledError):
                    raise self._error
                raise StopIteration
            return item.decode("utf-8")

    def close(self) -> None:
        """Cancel the generation if it still runs and wait for the native call to return."""
        if self._thread.is_alive():
            self._cancel.set()
            self._thread.join()

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.close()
        else:
            self.close()
            if self._error is not None and not isinstance(self._error, _native.CancelledError):
                raise self._error

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
