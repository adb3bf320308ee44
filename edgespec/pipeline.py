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

import contextlib
import ctypes
import json
import logging
import os
import queue
import signal
import socket
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from . import _native
from .errors import EdgespecError

__all__ = ["Pipeline", "Result", "Stats", "TextStream"]


@dataclass(frozen=True)
class Stats:
    """Stats of one generation; names and definitions in docs/metrics.md."""

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
    translation_hits: int = 0
    translation_misses: int = 0
    translation_disk_hits: int = 0
    translation_ms: float = 0.0
    draft_window_slides: int = 0
    lookup_drafted: int = 0
    lookup_accepted: int = 0

    @classmethod
    def _from_native(cls, s: _native.Stats) -> Stats:
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


def _utf8(text, what: str) -> bytes:
    """text as UTF-8 bytes; a sentence (not a traceback) for a non-str or a lone surrogate (what
    undecodable command-line bytes become)."""
    if not isinstance(text, str):
        raise _native.InvalidArgumentError(f"The {what} must be a str (got {type(text).__name__}).", 1)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _native.InvalidArgumentError(
            f"The {what} is not valid UTF-8 text (character {e.start} is a lone surrogate, e.g. from bytes that are not "
            "UTF-8 on the command line); pass UTF-8 text.",
            1,
        ) from None


_INT32 = (-(2**31), 2**31 - 1)


def _whole(value, what: str, lo: int = _INT32[0], hi: int = _INT32[1]) -> int:
    """value as an int within [lo, hi], checked before it crosses into C (ctypes would truncate
    4294967297 to 1 silently)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _native.InvalidArgumentError(f"{what} must be a whole number (got {value!r}).", 1)
    try:
        number = int(value)
    except (ValueError, OverflowError):
        number = None
    if number is None or (isinstance(value, float) and number != value):
        raise _native.InvalidArgumentError(f"{what} must be a whole number (got {value!r}).", 1)
    if not lo <= number <= hi:
        raise _native.InvalidArgumentError(f"{what} must be between {lo} and {hi} (got {number}).", 1)
    return number


def _real(value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _native.InvalidArgumentError(f"{what} must be a number (got {value!r}).", 1) from None


# -- Ctrl-C during a native call ------------------------------------------------------------------

_helper_lock = threading.Lock()
_helper: tuple[int, queue.Queue] | None = None  # (pid, jobs) of the thread that runs the main thread's calls


def _helper_main(jobs: queue.Queue) -> None:
    while True:
        call, box, done = jobs.get()
        try:
            box["value"] = call()
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            box["error"] = e
        done.set()


def _helper_jobs() -> queue.Queue:
    """The job queue of the one long-lived helper thread (started on first use, again after a fork).
    One thread for every call, not one per call: a fresh thread costs its start, and glibc gives
    each new thread's allocations their own arena, which a soak saw as RSS creeping up."""
    global _helper
    with _helper_lock:
        if _helper is None or _helper[0] != os.getpid():
            jobs: queue.Queue = queue.Queue()
            threading.Thread(target=_helper_main, args=(jobs,), name="edgespec-generate", daemon=True).start()
            _helper = (os.getpid(), jobs)
        return _helper[1]


def _interruptibly(pipe: Pipeline, call):
    """call(), a native generation without a stream callback, made stoppable by Ctrl-C.

    Python runs its SIGINT handler between bytecodes of the main thread, which would sit inside
    the native call until the generation ends. So on the main thread the call runs on the helper
    thread while this one waits (a wait Ctrl-C interrupts); KeyboardInterrupt cancels the
    generation (es_cancel), waits for it to return, and propagates. Elsewhere call() runs here.
    """
    if threading.current_thread() is not threading.main_thread():
        return call()
    box: dict = {}
    done = threading.Event()
    _helper_jobs().put((call, box, done))
    try:
        done.wait()
    except BaseException:
        pipe._cancel()
        while not done.is_set():
            try:
                done.wait()
            except KeyboardInterrupt:  # a second Ctrl-C: the cancel is on its way
                pipe._cancel()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


@contextlib.contextmanager
def _sigint_recorded(interrupted: list, pipe: Pipeline):
    """While a generation with a streamer runs on the main thread, Ctrl-C is recorded in
    interrupted instead of raised: Python runs the SIGINT handler where the main thread next runs
    bytecode, often the first line of the ctypes callback, outside any try block, where ctypes
    would print and drop the KeyboardInterrupt and the generation would go on. The callback then
    cancels the generation and the caller raises KeyboardInterrupt once it has returned. Inside a
    model call (a long prompt's prefill) no bytecode runs until it ends, so a watcher thread is
    woken through signal.set_wakeup_fd and cancels the native call at once. Left alone off the main
    thread or under an application's own SIGINT handler (and the watcher where the process already
    has a wakeup fd, an asyncio loop's say)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    old = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    try:
        with _sigint_watched(interrupted, pipe):
            yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def _sigint_watched(interrupted: list, pipe: Pipeline):
    """A thread that cancels pipe's generation (es_cancel) the moment SIGINT arrives, woken by the
    signal module's wakeup fd (a socket: Windows takes nothing else); main thread only."""
    wake, watch = socket.socketpair()
    wake.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread of the main interpreter
        previous = None
    if previous != -1:  # someone else's wakeup fd: theirs stays
        if previous is not None:
            signal.set_wakeup_fd(previous)
        wake.close()
        watch.close()
        yield
        return

    def run() -> None:
        while True:
            data = watch.recv(64)
            if not data or b"\0" in data:  # closing
                return
            if signal.SIGINT in data:
                interrupted.append(True)
                pipe._cancel()

    watcher = threading.Thread(target=run, name="edgespec-sigint", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(-1)
        wake.send(b"\0")
        watcher.join()
        wake.close()
        watch.close()


class Pipeline:
    """A loaded bundle: the target, optionally one drafter, and the target tokenizer.

    One generation runs at a time per pipeline (calls from several threads are serialised; a call
    from inside a running generation's own streamer raises BusyError). ``close()`` from any thread
    cancels a running generation and waits for it before freeing the native pipeline.
    """

    def __init__(self, handle: int, bundle: str):
        self._h = ctypes.c_void_p(handle)
        self._lib = _native.lib()
        self._lock = threading.Lock()  # held by the one native call running on the pipeline
        self._owner: int | None = None  # ident of the thread that holds _lock
        self._closing = False
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
        verify: bool = True,
        translation_cache: str | os.PathLike | bool = True,
        adapt_log: str | os.PathLike | None = None,
        profile: bool | str | os.PathLike = True,
    ) -> Pipeline:
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
        verify: check the digests the manifest records for every file the pipeline reads (sizes are
        checked either way; ``info["integrity"]`` says what was: "verified", "sizes", or "none" for
        bundles exported before digests existed). Every manifest path must stay inside the bundle.
        translation_cache: a cross_vocab drafter's translations persist across processes (keyed by
        both tokenizers) in the user cache dir (True, default: $EDGESPEC_CACHE/translation, else
        ~/.cache/edgespec/translation), in a directory you name, or nowhere (False). A corrupt
        cache file is ignored with a warning. ``info["translation_cache"]`` says what was loaded.
        adapt_log: opt-in; a directory where each generation's prompt and output are appended
        (``adapt-log.jsonl``, bounded at 64 MiB) for ``edgespec adapt``. None (default): nothing
        is recorded.
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
                f"fixed_shapes must be None (auto), True or False (got {fixed_shapes!r}).", 1
            )
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
        params.num_threads = _whole(threads, "threads")
        params.tokenizers_extension = s(_tokenizers_extension())
        params.backend = s(backend)
        params.ort_library = s(None if ort_library is None else os.fspath(ort_library))
        params.fixed_shapes = -1 if fixed_shapes is None else int(bool(fixed_shapes))
        params.verify = 1 if verify else 0
        if translation_cache is False:
            params.translation_cache_dir = s("")
        elif translation_cache is not True:
            params.translation_cache_dir = s(os.fspath(translation_cache))
        params.adapt_log_dir = s(None if adapt_log is None else os.fspath(adapt_log))
        out = ctypes.c_void_p()
        path = os.fspath(bundle)
        _native.check(lib.es_pipeline_load(os.fsencode(path), ctypes.byref(params), ctypes.byref(out)))
        pipe = cls(out.value, path)
        warning = (pipe.info.get("translation_cache") or {}).get("warning")
        if warning:
            warnings.warn(warning, RuntimeWarning, stacklevel=2)
        pipe.profile = match
        if rec and not (rec["policy"] == "draft" and pipe.draft_name is None):  # a drafter policy needs a drafter
            pipe.defaults = {"policy": rec["policy"], "k": rec["k"]}
        return pipe

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        """Free the native pipeline (also done when the object is collected). A generation running
        on another thread (a stream() worker, say) is cancelled and waited for first; called from
        inside a generation's own streamer, the pipeline is freed when that generation returns."""
        if not self._h:
            return
        self._closing = True
        if self._owner == threading.get_ident():
            self._cancel()
            return  # _running() frees it on the way out
        # Re-send the cancel until the running call lets go: a call just entering es_generate
        # would reset a single early cancel.
        while not self._lock.acquire(timeout=0.02):
            self._cancel()
        try:
            self._free()
        finally:
            self._lock.release()

    def _free(self) -> None:
        h, self._h = self._h, None
        if h and h.value:
            self._lib.es_pipeline_free(h)

    def cancel(self) -> None:
        """Stop the generation running on this pipeline, if any, from any thread: it raises
        CancelledError (a stream() just ends) within one model call. Returns at once."""
        self._cancel()

    def _cancel(self) -> None:
        """es_cancel: thread-safe, returns at once; a no-op when nothing runs or the pipeline is closed."""
        h = self._h
        if h and h.value:
            self._lib.es_cancel(h)

    @contextlib.contextmanager
    def _running(self):
        """The native handle, held for one call (generate, tokenize, detokenize)."""
        if self._owner == threading.get_ident():
            raise _native.BusyError(
                "The pipeline is already running a generation on this thread (a call from inside its streamer?); "
                "return from the streamer first, or load a second pipeline.",
                8,
            )
        with self._lock:
            h = self._handle()
            self._owner = threading.get_ident()
            try:
                yield h
            finally:
                self._owner = None
                if self._closing:
                    self._free()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _handle(self) -> ctypes.c_void_p:
        if not self._h or self._closing:
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
        """What runs: {"target": {"backend", "device"}, "draft": {"name", "kind", "backend", "device"} | None,
        "text": "byte-table" | "detokenizer"} (the backend "openvino" picked per model, and how
        streamed text is made)."""
        return json.loads(self._lib.es_pipeline_info(self._handle()).decode())

    # -- tokens -----------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """Target token ids of text (the bundle's tokenizer, run natively)."""
        n = ctypes.c_size_t(0)
        b = _utf8(text, "text")
        with self._running() as h:
            _native.check(self._lib.es_tokenize(h, b, None, ctypes.byref(n)))
            buf = (ctypes.c_int64 * max(n.value, 1))()
            _native.check(self._lib.es_tokenize(h, b, buf, ctypes.byref(n)))
        return list(buf[: n.value])

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of target token ids."""
        arr = (ctypes.c_int64 * max(len(ids), 1))(*[_whole(i, "a token id", -(2**63), 2**63 - 1) for i in ids])
        size = ctypes.c_size_t(0)
        with self._running() as h:
            _native.check(self._lib.es_detokenize(h, arr, len(ids), None, ctypes.byref(size)))
            buf = ctypes.create_string_buffer(size.value)
            _native.check(self._lib.es_detokenize(h, arr, len(ids), buf, ctypes.byref(size)))
        return buf.raw[: max(0, size.value - 1)].decode("utf-8")  # size counts the terminator; text may hold NULs

    # -- generation -------------------------------------------------------------------------------
    def stream(self, prompt: str, **config) -> TextStream:
        """Start a generation and iterate its text deltas (see generate() for the options).

        The returned TextStream yields str chunks that concatenate to ``result.text``; after
        iteration ``stream.result`` holds the Result. Closing it early (``close()``, ``break``
        in a with-block, Ctrl-C, or dropping the stream) cancels the native generation cleanly.
        """
        return TextStream(self, _utf8(prompt, "prompt"), _make_config(self._options(config)))

    def generate(self, prompt: str, streamer: Callable[[str], object] | None = None, **config) -> Result:
        """Generate text for prompt; returns Result(text, tokens, stats).

        Options: max_new_tokens=128, policy="auto" | "autoregressive" | "draft" | "ngram",
        k=-1 / "auto" (adaptive) or 1..32 (fixed), k_max=8, temperature=0 (greedy),
        top_k=0, top_p=1, seed=0, ignore_eos=False, stop=[strings], draft_stop_prob=0,
        draft_window=1024 (0: all the drafter's context holds; else >= 128): the drafter reads the first 4 and
        the latest tokens of the context only (an EAGLE-3 head: the latest draft_window of a longer prompt,
        then every generated position; the output does not change), lookup=True: with a drafter,
        a round whose context ends with 3-4 tokens seen before proposes what followed them there instead
        of calling the drafter (free drafts where text repeats; stats.lookup_drafted / lookup_accepted),
        and (greedy) a drafter round whose tokens run into such text verifies what followed it after them.

        streamer: called on this thread with each text delta as it is generated (the deltas
        concatenate to ``result.text``); a true return value stops the generation (finish reason
        "callback"). An exception it raises, or Ctrl-C (with or without a streamer), cancels the
        generation and propagates; so does closing the pipeline from another thread (CancelledError).
        With a streamer the generation runs on the calling thread, so nothing crosses threads per
        token (stream() hands each delta to another thread); without one, on the main thread, it
        runs on a helper thread while the main thread waits, so Ctrl-C can stop it.
        """
        cfg = _make_config(self._options(config))
        text = _utf8(prompt, "prompt")
        raised: list[BaseException] = []
        interrupted: list[bool] = []

        def on_text(ptr, size, _user) -> int:
            if self._closing or interrupted:
                return _CANCEL
            try:
                if streamer is not None and streamer(ctypes.string_at(ptr, size).decode("utf-8")):
                    return 1
                return 0
            except BaseException as e:  # noqa: BLE001 - re-raised once the native call has returned
                raised.append(e)
                return _CANCEL

        # Ctrl-C: with a streamer, recorded and seen by on_text (this thread), which cancels the
        # native call; without one, _interruptibly sees to it.
        out = ctypes.c_void_p()

        def call() -> tuple[int, str | None]:
            status = self._lib.es_generate(h, text, ctypes.byref(cfg.cfg), callback, None, ctypes.byref(out))
            return status, _native.last_error() if status else None  # thread-local: read it on this thread

        with self._running() as h:
            if streamer is None:
                callback = _native.STREAM_CALLBACK()
                status, message = _interruptibly(self, call)
            else:
                callback = _native.STREAM_CALLBACK(on_text)
                with _sigint_recorded(interrupted, self):
                    status, message = call()
        if interrupted:
            raised.insert(0, KeyboardInterrupt())
        if raised:
            if out.value:
                self._lib.es_result_free(out)
            raise raised[0]
        _native.check(status, message=message)
        return _take_result(self._lib, out)

    def _options(self, config: dict) -> dict:
        """The call's generation options over the pipeline's defaults (an option given as None counts
        as not given)."""
        return {**self.defaults, **{k: v for k, v in config.items() if v is not None}}

    def __repr__(self) -> str:
        return f"Pipeline({self.bundle!r}, draft={self.draft_name!r})"


_CONFIG_KEYS = {
    "max_new_tokens",
    "policy",
    "k",
    "k_max",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "ignore_eos",
    "stop",
    "draft_stop_prob",
    "draft_window",
    "lookup",
}


class _Config:
    """A native es_generation_config plus the buffers its pointers refer to."""

    def __init__(self, cfg: _native.GenerationConfig, keep: list):
        self.cfg = cfg
        self.keep = keep


def _make_config(options: dict) -> _Config:
    unknown = set(options) - _CONFIG_KEYS
    if unknown:
        raise _native.InvalidArgumentError(
            f"Unknown generation option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_CONFIG_KEYS))}.", 1
        )
    cfg = _native.lib().es_generation_default_config()
    keep: list = []
    for key, value in options.items():
        if value is None:
            continue
        if key in ("max_new_tokens", "k_max", "top_k", "draft_window"):
            setattr(cfg, key, _whole(value, key))
        elif key == "policy":
            if value not in _native.POLICIES:
                raise _native.InvalidArgumentError(
                    f"Unknown policy {value!r}; use one of {', '.join(_native.POLICIES)}.", 1
                )
            cfg.policy = _native.POLICIES[value]
        elif key == "k":
            cfg.k = -1 if value in ("auto", -1) else _whole(value, "k")
        elif key == "seed":
            cfg.seed = _whole(value, "seed", 0, 2**64 - 1)
        elif key == "stop":
            stops = [value] if isinstance(value, str) else list(value)
            arr = (ctypes.c_char_p * max(len(stops), 1))(*[_utf8(s, "stop string") for s in stops])
            keep.append(arr)
            cfg.stop = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
            cfg.n_stop = len(stops)
        elif key == "ignore_eos":
            cfg.ignore_eos = 1 if value else 0
        elif key == "lookup":
            cfg.lookup = 1 if value else 0
        else:  # temperature, top_p, draft_stop_prob: the native side checks their ranges
            setattr(cfg, key, _real(value, key))
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


class _StreamState:
    """What a stream's worker thread shares with its TextStream. The worker holds this, never the
    TextStream, so a stream the caller drops is collected and its __del__ cancels the generation."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.error: BaseException | None = None
        self.result: Result | None = None


def _stream_worker(pipe: Pipeline, prompt: bytes, config: _Config, state: _StreamState, callback) -> None:
    lib = pipe._lib
    out = ctypes.c_void_p()
    try:
        with pipe._running() as h:
            if state.cancel.is_set():
                raise _native.CancelledError("The stream was closed before it started.", 7)
            _native.check(lib.es_generate(h, prompt, ctypes.byref(config.cfg), callback, None, ctypes.byref(out)))
        state.result = _take_result(lib, out)
    except BaseException as e:  # noqa: BLE001 - handed to the consuming thread
        state.error = e
    finally:
        state.queue.put(_DONE)


class TextStream:
    """Iterator over the text deltas of one running generation (see Pipeline.stream)."""

    def __init__(self, pipe: Pipeline, prompt: bytes, config: _Config):
        self._pipe = pipe
        self._state = state = _StreamState()

        # Runs on the worker thread inside es_generate; it only queues bytes.
        def on_text(ptr, size, _user) -> int:
            if state.cancel.is_set() or pipe._closing:
                return _CANCEL
            state.queue.put(ctypes.string_at(ptr, size))
            return 0

        self._callback = _native.STREAM_CALLBACK(on_text)
        self._thread = threading.Thread(
            target=_stream_worker,
            args=(pipe, prompt, config, state, self._callback),
            name="edgespec-generate",
            daemon=True,
        )
        self._thread.start()

    @property
    def result(self) -> Result | None:
        """The Result, once the generation has finished (None before, or when it failed)."""
        return self._state.result

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        state = self._state
        while True:
            try:
                # A timeout keeps the consuming thread responsive to Ctrl-C.
                item = state.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            except BaseException:
                self.close()
                raise
            if item is _DONE:
                state.queue.put(_DONE)  # later next() calls stop again
                if state.error is not None and not isinstance(state.error, _native.CancelledError):
                    raise state.error
                raise StopIteration
            return item.decode("utf-8")

    def _stop(self) -> None:
        """Ask the generation to stop now, without waiting."""
        if self._thread.is_alive():
            self._state.cancel.set()
            if self._pipe._owner == self._thread.ident:
                self._pipe._cancel()

    def close(self) -> None:
        """Cancel the generation if it still runs and wait for the native call to return."""
        self._stop()
        if threading.current_thread() is self._thread:
            return
        # es_cancel again while waiting: a cancel that lands before es_generate starts is reset.
        while self._thread.is_alive():
            self._thread.join(timeout=0.02)
            self._stop()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close()
        error = self._state.error
        if exc_type is None and error is not None and not isinstance(error, _native.CancelledError):
            raise error

    def __del__(self):
        # Dropped mid-generation (a `break` out of `for chunk in pipe.stream(...)`): stop it, so
        # the pipeline's next call does not wait for a generation nobody reads.
        try:
            self._stop()
        except Exception:
            pass
