"""The app's tokenizer service: resident models, one GPU queue, per-request run folders, limits.

Knows nothing about Gradio widgets (``ui.py`` is the thin layer on top). What it owns:

* :class:`ModelCache` -- loaded tokenizers stay on their device between requests, keyed by
  ``(setting, device, dtype)`` for Cosmos and ``device`` for DAC; least-recently-used entries are evicted
  when the estimated parameter bytes exceed a budget; a per-key lock makes concurrent requests for the same
  model wait for one load (a model is never loaded twice while it is resident).
* one GPU lock: every model call (Cosmos encode/decode, DAC encode/decode) runs under it, so GPU work is
  serialized while other requests' file decoding, metrics and muxing proceed.
* :class:`RunStore` -- each request works in its own folder under a per-process run root; only the last
  ``keep`` runs are kept (for downloads and the frame inspector); the root is removed at exit.
* limits (upload size, clip/source duration, resolution ceiling) from environment variables
  (:class:`AppConfig`), checked before any model is touched.
* ZeroGPU: :func:`gpu_task` is ``spaces.GPU(duration=...)`` when the ``spaces`` package is importable,
  a no-op otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import media
from .backends.registry import ALL_BACKEND_SETTINGS, parse_setting
from .devices import cuda_available, device_name
from .engine.flow import check_cancel
from .errors import AvtokError, MediaError
from .settings import DAC_CODEBOOKS, DAC_SAMPLE_RATE, DEFAULT_WINDOW, VisualSetting

ProgressFn = Callable[[float, str], None]
"""``progress(fraction_done, description)`` as shown to the user (0..1)."""

GiB = 1 << 30


# ----------------------------------------------------------------------------------------------------
# configuration (environment)
# ----------------------------------------------------------------------------------------------------
def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value is not None and value.strip() else default


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise AvtokError(f"environment variable {name}={value!r} is not a number") from None


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


@dataclass
class AppConfig:
    """Everything the app reads from the environment (see docs/SPACE.md for the table)."""

    checkpoint_dir: str | None = None  # explicit Cosmos folder (app.py --checkpoints); default: the engine's
    # own search ($AVTOK_CHECKPOINTS, then the Hugging Face cache)
    dac_weights: str | None = None  # explicit DAC weights file/folder
    allow_download: bool = False  # fetch missing weights from the Hub on first use
    max_upload_mb: float = 500.0  # Gradio upload limit
    max_duration_s: float = 120.0  # longest clip (after trim) one run may tokenize; 0 = no limit
    max_source_s: float = 3600.0  # longest source (decoding starts at the file's beginning); 0 = no limit
    max_side: int = 1920  # resolution ceiling: longer sides are scaled down to this; 0 = none
    cache_bytes: int = 0  # model cache budget; 0 = automatic (half the GPU / 4 GiB on CPU)
    concurrent_runs: int = 1  # tokenize/sweep requests running at once (model calls are serialized anyway)
    keep_runs: int = 24  # finished run folders kept for downloads / the inspector
    run_root: str | None = None  # parent of the per-process run folder (default: the system temp dir)
    gpu_duration_s: int = 120  # ZeroGPU: seconds requested per GPU call
    default_lpips: str = "auto"

    @classmethod
    def from_env(cls, **overrides: Any) -> AppConfig:
        on_space = bool(_env("SPACE_ID"))
        cfg = cls(
            dac_weights=_env("AVTOK_DAC_WEIGHTS"),
            allow_download=_env_bool("AVTOK_ALLOW_DOWNLOAD", on_space),
            max_upload_mb=_env_float("AVTOK_MAX_UPLOAD_MB", 500.0),
            max_duration_s=_env_float("AVTOK_MAX_DURATION_S", 120.0),
            max_source_s=_env_float("AVTOK_MAX_SOURCE_S", 3600.0),
            max_side=int(_env_float("AVTOK_MAX_SIDE", 1920)),
            cache_bytes=int(_env_float("AVTOK_MODEL_CACHE_GB", 0) * GiB),
            concurrent_runs=max(1, int(_env_float("AVTOK_CONCURRENT_RUNS", 1))),
            keep_runs=max(1, int(_env_float("AVTOK_KEEP_RUNS", 24))),
            run_root=_env("AVTOK_RUN_ROOT"),
            gpu_duration_s=int(_env_float("AVTOK_GPU_DURATION_S", 120)),
            default_lpips=_env("AVTOK_LPIPS", "auto") or "auto",
        )
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------
# ZeroGPU
# ----------------------------------------------------------------------------------------------------
try:  # pragma: no cover - only on Hugging Face ZeroGPU Spaces
    import spaces as _spaces  # type: ignore[import-not-found]
except Exception:  # noqa: BLE001 -- not installed (or broken): run on whatever device there is
    _spaces = None

ZEROGPU = _spaces is not None


def gpu_task(duration: int = 120) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``spaces.GPU(duration=duration)`` on ZeroGPU Spaces, the identity elsewhere."""
    if _spaces is None:
        return lambda fn: fn
    return _spaces.GPU(duration=duration)  # pragma: no cover


# ----------------------------------------------------------------------------------------------------
# GPU lock: every model call goes through it
# ----------------------------------------------------------------------------------------------------
class _LockedCosmos:
    """Wraps a visual tokenizer: every model call (``encode``/``decode_raw``, which the engine's stages use,
    and ``encode_window``/``decode_window``) runs under the GPU lock; conversions and I/O do not."""

    MODEL_CALLS = frozenset({"encode", "decode_raw", "encode_window", "decode_window"})

    def __init__(self, inner: Any, lock: threading.Lock) -> None:
        self._inner, self._lock = inner, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self.MODEL_CALLS:
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


class _LockedDac:
    """Wraps a ``DacCodec``: model work runs under the GPU lock, reading the input audio does not."""

    def __init__(self, inner: Any, lock: threading.Lock) -> None:
        self._inner, self._lock = inner, lock

    def encode_stream(self, chunks: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        lock = self._lock

        def unlocked_source() -> Iterator[Any]:
            it = iter(chunks)
            while True:
                lock.release()  # pulling the next chunk decodes the file: let other requests' model calls in
                try:
                    item = next(it, None)
                finally:
                    lock.acquire()
                if item is None:
                    return
                yield item

        with lock:
            return self._inner.encode_stream(unlocked_source(), *args, **kwargs)

    def decode_stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self._lock:
            gen = self._inner.decode_stream(*args, **kwargs)  # validates arguments
        return self._locked_iter(gen)

    def _locked_iter(self, gen: Iterator[Any]) -> Iterator[Any]:
        while True:
            with self._lock:
                item = next(gen, None)
            if item is None:
                return
            yield item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# ----------------------------------------------------------------------------------------------------
# model cache
# ----------------------------------------------------------------------------------------------------
def normalize_device(device: str | None) -> str:
    """``None``/``"auto"`` -> ``"cuda"`` if available else ``"cpu"``; ``"cuda:0"`` stays as given
    (:func:`avtok_ui.devices.device_name`)."""
    return device_name(device)


def _module_bytes(module: Any) -> int:
    total = 0
    for getter in ("parameters", "buffers"):
        fn = getattr(module, getter, None)
        if fn is None:
            continue
        with contextlib.suppress(Exception):
            for t in fn():
                total += t.numel() * t.element_size()
    return total


def cosmos_bytes(tok: Any) -> int:
    """Resident size of a loaded Cosmos tokenizer, estimated from its ``.jit`` files (≈ parameter bytes)
    scaled by the dtype it runs in."""
    size = 0
    paths = list(tok.weight_paths().values()) if hasattr(tok, "weight_paths") else []  # a diffusers VAE
    for p in (getattr(tok, "encoder_path", None), getattr(tok, "decoder_path", None), *paths):
        with contextlib.suppress(OSError, TypeError):
            size += Path(p).stat().st_size
    with contextlib.suppress(Exception):
        size = int(size * tok.dtype.itemsize / tok.native_dtype.itemsize)
    return max(size, 1)


def dac_bytes(codec: Any) -> int:
    """Parameter + buffer bytes of a loaded DAC codec."""
    return max(_module_bytes(getattr(codec, "model", None)), 1)


@dataclass
class _Entry:
    model: Any
    nbytes: int
    loaded_at: float
    hits: int = 0


class ModelCache:
    """LRU cache of loaded models bounded by ``budget_bytes`` (estimated parameter bytes).

    ``get(key, loader, sizer)`` returns the resident model or loads it once: concurrent callers for the same
    key wait on that key's lock. A model larger than the whole budget is still kept (alone). Evicted models
    are freed once no running request holds them.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = int(budget_bytes)
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self.loads: dict[tuple, int] = {}
        self.evictions = 0

    def _key_lock(self, key: tuple) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def peek(self, key: tuple) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            return entry.model if entry else None

    def get(self, key: tuple, loader: Callable[[], Any], sizer: Callable[[Any], int]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.hits += 1
                return entry.model
        with self._key_lock(key):
            with self._lock:  # loaded by another request while we waited?
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    entry.hits += 1
                    return entry.model
            model = loader()
            nbytes = int(sizer(model))
            with self._lock:
                self.loads[key] = self.loads.get(key, 0) + 1
                self._entries[key] = _Entry(model, nbytes, time.time())
                self._evict_locked(keep=key)
            return model

    def _evict_locked(self, keep: tuple) -> None:
        evicted = False
        while self.total_bytes_locked() > self.budget_bytes:
            victim = next((k for k in self._entries if k != keep), None)
            if victim is None:
                break
            del self._entries[victim]
            self.evictions += 1
            evicted = True
        if evicted:
            _free_cuda_cache()

    def total_bytes_locked(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        _free_cuda_cache()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "budget_bytes": self.budget_bytes,
                "resident_bytes": self.total_bytes_locked(),
                "resident": [{"key": list(map(str, k)), "bytes": e.nbytes, "hits": e.hits}
                             for k, e in self._entries.items()],
                "loads": {"/".join(map(str, k)): n for k, n in self.loads.items()},
                "evictions": self.evictions,
            }


def _free_cuda_cache() -> None:
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def default_cache_budget() -> int:
    """Half the GPU's memory when CUDA is available, else 4 GiB."""
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).total_memory * 0.5)
    return 4 * GiB


# ----------------------------------------------------------------------------------------------------
# run folders
# ----------------------------------------------------------------------------------------------------
class RunStore:
    """Per-request folders ``<root>/avtok-ui-<pid>/<n>-<label>``; keeps the newest ``keep`` finished runs."""

    def __init__(self, root: str | Path | None, keep: int) -> None:
        base = Path(root) if root else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f"avtok-ui-{os.getpid()}-", dir=base))
        self.keep = max(1, int(keep))
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._active: set[Path] = set()
        self._finished: list[Path] = []
        atexit.register(self.cleanup)

    def new(self, label: str) -> Path:
        with self._lock:
            n = next(self._seq)
            path = self.root / f"{n:05d}-{_safe_name(label)[:40]}"
            path.mkdir(parents=True)
            self._active.add(path)
            return path

    def finish(self, path: Path) -> None:
        """Mark a run as done (kept for downloads) and remove the oldest finished runs beyond ``keep``."""
        with self._lock:
            self._active.discard(path)
            self._finished.append(path)
            old, self._finished = self._finished[:-self.keep], self._finished[-self.keep:]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)

    def discard(self, path: Path) -> None:
        """Remove a failed or cancelled run's folder at once."""
        with self._lock:
            self._active.discard(path)
        shutil.rmtree(path, ignore_errors=True)

    def exists(self, path: str | Path) -> bool:
        return Path(path).is_dir()

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(text: str) -> str:
    name = _NAME_RE.sub("_", text).strip("._") or "video"
    return name[:60]


# ----------------------------------------------------------------------------------------------------
# requests and results
# ----------------------------------------------------------------------------------------------------
@dataclass
class RunRequest:
    """One tokenize request (what the UI controls and the API parameters set)."""

    source: str
    setting: str = "DV8x16x16"
    window: int = DEFAULT_WINDOW
    codebooks: int = DAC_CODEBOOKS  # 0 = audio off
    device: str | None = None  # None/"auto": cuda if available
    start_s: float = 0.0
    duration_s: float | None = None  # None or 0: to the end
    max_side: int | None = None  # None or 0: native (the app's ceiling still applies)
    lpips: str = "auto"  # auto | vgg | alex | off: passed as is to the engine (RunConfig validates it)

    def config(self, **overrides: Any) -> Any:
        """This request as the engine's one validated :class:`~avtok_ui.pipeline.RunConfig` (the same rules
        and one-line errors as the CLI), with ``overrides`` (the service's own choices: weights, device...)."""
        from .pipeline import RunConfig

        values = {k: v for k, v in asdict(self).items() if k not in ("source", "setting")}
        return RunConfig.from_values(self.setting, **(values | overrides))

    def normalized(self) -> RunRequest:
        """The request with its values converted and validated by :meth:`config` (names canonical)."""
        cfg = self.config(device=None)
        return RunRequest(source=self.source, setting=cfg.setting.name, window=cfg.window, codebooks=cfg.codebooks,
                          device=self.device, start_s=cfg.start_s, duration_s=cfg.duration_s,
                          max_side=cfg.max_side, lpips=cfg.lpips)


@dataclass
class RunOutcome:
    """A finished run: where its files are and what it measured (``record()`` is JSON-able)."""

    run_id: str
    run_dir: Path
    request: RunRequest
    source_name: str
    info: dict[str, Any]
    report: dict[str, Any]
    paths: dict[str, str]
    original_video: str  # what the UI shows as "original": the source, or the evaluated clip re-encoded
    original_note: str
    elapsed_s: float
    size: tuple[int, int] | None  # evaluated (W, H) if resized
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        from .metrics import json_safe

        return json_safe({
            "run_id": self.run_id, "run_dir": str(self.run_dir), "request": asdict(self.request),
            "source_name": self.source_name, "info": self.info, "report": self.report, "paths": self.paths,
            "original_video": self.original_video, "original_note": self.original_note,
            "elapsed_s": self.elapsed_s, "size": list(self.size) if self.size else None, "notes": self.notes,
        })


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """One comparison-table row from a run record (plain numbers; None where not measured).

    ``values/pixel`` = latent values per source pixel, ``bits/pixel`` = stored visual-token bits per source
    pixel (the two rates that compare backends with different channel counts); ``file bits/pixel`` = the
    whole token file (audio and metadata included) per source pixel."""
    rep = record.get("report", {})
    r = rep.get("readouts", {})
    vm = rep.get("video_metrics") or {}
    am = rep.get("audio_metrics") or {}
    ev = rep.get("evaluated", {})
    req = record.get("request", {})
    clip = record.get("source_name", "")
    if req.get("start_s") or req.get("duration_s"):
        clip += f" [{req.get('start_s') or 0:g}s+{ev.get('duration_s', 0):.2g}s]"
    psnr = vm.get("psnr")
    return {
        "run": record.get("run_id"),
        "clip": clip,
        "resolution": f"{ev.get('width')}x{ev.get('height')}",
        "frames": ev.get("n_frames"),
        "family": r.get("family"),
        "setting": rep.get("setting"),
        "latent ch": r.get("latent_channels"),
        "window": req.get("window"),
        "codebooks": r.get("audio_codebooks", 0),
        "visual tokens": r.get("visual_tokens"),
        "audio tokens": r.get("audio_tokens"),
        "tokens/s": _round(r.get("tokens_per_second"), 1),
        "token file bytes": r.get("token_file_bytes"),
        "values/pixel": _round(r.get("latent_values_per_source_pixel"), 5),
        "bits/pixel": _round(r.get("visual_bits_per_source_pixel"), 5),
        "file bits/pixel": _round(r.get("bits_per_source_pixel"), 5),
        "PSNR dB": "∞" if vm.get("lossless") else _round(psnr, 3),
        "SSIM": _round(vm.get("ssim"), 4),
        "LPIPS": _round(vm.get("lpips"), 4),
        "SI-SDR dB": _round(am.get("si_sdr_db"), 2),
        "mel dist": _round(am.get("mel_distance"), 3),
        "time s": _round(record.get("elapsed_s"), 1),
        "device": rep.get("device"),
    }


def _round(v: Any, nd: int) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return round(float(v), nd)
    return None


# ----------------------------------------------------------------------------------------------------
# progress mapping
# ----------------------------------------------------------------------------------------------------
#: Share of a run's progress bar per engine stage (in order).
_STAGES: list[tuple[str, float, str]] = [
    ("probe", 0.01, "reading the source"),
    ("load models", 0.06, "loading tokenizers"),
    ("audio encode", 0.14, "audio: DAC encode"),
    ("visual", 0.55, "video: encode → decode → score, window"),
    ("write tokens", 0.02, "writing the token file"),
    ("audio decode", 0.12, "audio: DAC decode + score"),
    ("mux", 0.04, "muxing H.264 + AAC"),
    ("reference", 0.06, "encoding the original clip for side-by-side"),
]


class _StageProgress:
    """Maps the engine's ``progress(stage, done, total)`` onto one 0..1 bar with readable text."""

    def __init__(self, report: ProgressFn, lo: float = 0.0, hi: float = 1.0, prefix: str = "") -> None:
        self.report, self.lo, self.hi, self.prefix = report, lo, hi, prefix
        self.offsets: dict[str, tuple[float, float, str]] = {}
        acc = 0.0
        total = sum(w for _, w, _ in _STAGES)
        for name, w, label in _STAGES:
            self.offsets[name] = (acc / total, w / total, label)
            acc += w
        self._last = -1.0
        self._last_t = 0.0

    def __call__(self, stage: str, done: float, total: float) -> None:
        if stage == "done":
            frac = 1.0
            text = "done"
        else:
            base, width, label = self.offsets.get(stage, (None, 0.0, stage))  # type: ignore[assignment]
            if base is None:
                return
            part = min(1.0, done / total) if total else 0.0
            frac = base + width * part
            if stage == "visual" and total:
                text = f"{label} {min(int(done) + 1, int(total))}/{int(total)}"
            else:
                text = label
        now = time.monotonic()
        frac = max(frac, self._last)
        if frac - self._last < 0.002 and now - self._last_t < 0.25 and stage != "done":
            return
        self._last, self._last_t = frac, now
        self.report(self.lo + (self.hi - self.lo) * frac, self.prefix + text)


# ----------------------------------------------------------------------------------------------------
# the service
# ----------------------------------------------------------------------------------------------------
_BROWSER_VIDEO = {"h264", "vp8", "vp9", "av1"}
_BROWSER_AUDIO = {"aac", "mp3", "opus", "vorbis", "flac"}


class Service:
    """Shared by every session of the app (and by the API endpoints)."""

    def __init__(self, config: AppConfig | None = None) -> None:
        self.config = config or AppConfig.from_env()
        budget = self.config.cache_bytes or default_cache_budget()
        self.cache = ModelCache(budget)
        self.gpu_lock = threading.Lock()
        self.runs = RunStore(self.config.run_root, self.config.keep_runs)
        self._cancel: dict[str, threading.Event] = {}
        self._cancel_lock = threading.Lock()
        self._frames: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._frames_lock = threading.Lock()
        self._frames_budget = 768 << 20
        self._ids = itertools.count(1)
        self._missing: dict[str, str] | None = None
        self._run_task = gpu_task(self.config.gpu_duration_s)(_run_pipeline)

    # ----- checkpoints ------------------------------------------------------------------------------
    def missing(self, refresh: bool = False) -> dict[str, str]:
        """``{setting name or "dac": one-line reason}`` for weights that cannot be found locally."""
        if self._missing is None or refresh:
            from .checkpoints import missing_checkpoints

            self._missing = missing_checkpoints(ALL_BACKEND_SETTINGS, self.config.checkpoint_dir,
                                                dac_weights=self.config.dac_weights)
        return dict(self._missing)

    def usable_settings(self) -> list[str]:
        """Settings a run can use now (found locally, or downloadable when downloads are allowed)."""
        if self.config.allow_download:
            return [s.name for s in ALL_BACKEND_SETTINGS]
        miss = self.missing()
        return [s.name for s in ALL_BACKEND_SETTINGS if s.name not in miss]

    def setting_missing(self, setting: Any) -> str | None:
        """Why ``setting`` (any backend) cannot run now (one line), or None. Re-checked on demand, so weights
        added after start-up are picked up."""
        if setting.name in self.usable_settings():
            return None
        from .checkpoints import missing_checkpoints

        why = missing_checkpoints([setting], self.config.checkpoint_dir, include_dac=False).get(setting.name)
        if why is None:
            self.missing(refresh=True)
        return why

    def backends(self) -> list[dict[str, Any]]:
        """Every tokenizer setting (all backends, registry order) with what the app shows about it: family,
        loader, factors, latent channels, licence name + link, and whether it can run now (with the one-line
        reason and where to get it when not)."""
        usable = set(self.usable_settings())
        miss = self.missing()
        out = []
        for s in ALL_BACKEND_SETTINGS:
            out.append({
                "name": s.name, "family": s.family, "backend": s.backend,
                "class": getattr(s, "diffusers_class", None) or "Cosmos 0.1 TorchScript (encoder.jit, decoder.jit)",
                "hub_id": s.hub_id, "hub_url": f"https://huggingface.co/{s.hub_id}",
                "folder": f"$AVTOK_CHECKPOINTS/{s.repo_name}" + (f"/{s.subfolder}" if getattr(s, "subfolder", "") else ""),
                "temporal": s.temporal, "spatial": s.spatial, "latent_channels": s.latent_channels,
                "discrete": s.discrete, "licence": s.licence, "licence_url": s.licence_url,
                "usable": s.name in usable, "missing": None if s.name in usable else miss.get(s.name),
            })
        return out

    def audio_available(self) -> bool:
        return self.config.allow_download or "dac" not in self.missing()

    def devices(self) -> list[str]:
        return ["cuda", "cpu"] if cuda_available() else ["cpu"]

    def info(self) -> dict[str, Any]:
        from . import __version__

        miss = self.missing(refresh=True)
        return {
            "version": __version__,
            "settings": [s.name for s in ALL_BACKEND_SETTINGS],
            "families": list(dict.fromkeys(s.family for s in ALL_BACKEND_SETTINGS)),
            "usable_settings": self.usable_settings(),
            "backends": self.backends(),
            "missing_checkpoints": miss,
            "audio_available": self.audio_available(),
            "devices": self.devices(),
            "zerogpu": ZEROGPU,
            "limits": {
                "max_upload_mb": self.config.max_upload_mb,
                "max_duration_s": self.config.max_duration_s or None,
                "max_source_s": self.config.max_source_s or None,
                "max_side": self.config.max_side or None,
            },
            "model_cache": self.cache.stats(),
        }

    def missing_summary(self) -> str:
        """Plain-text paragraph for the console at start-up: what weights are missing, where each was looked
        for and how to provide them ("" when everything was found). Same facts as the page's banner."""
        from .settings import DAC_WEIGHTS_NAME

        miss = self.missing(refresh=True)
        if not miss:
            return ""
        names = ", ".join(miss)
        if self.config.allow_download:
            return (f"weights not on this machine: {names}; they will be downloaded from the Hugging Face Hub "
                    "on first use (downloads allowed).")
        usable = self.usable_settings()
        lines = [
            f"weights missing: {names}; runs that need them are disabled ({len(usable)} of "
            f"{len(ALL_BACKEND_SETTINGS)} visual settings usable, audio {'on' if self.audio_available() else 'off'}). "
            "Provide them: put Cosmos-0.1-Tokenizer-<SETTING>/{encoder,decoder}.jit, <diffusers repo name>/vae/"
            "{config.json,diffusion_pytorch_model.safetensors} and dac/" + DAC_WEIGHTS_NAME + " under "
            "$AVTOK_CHECKPOINTS (or pass app.py --checkpoints DIR) and restart, or start with "
            "AVTOK_ALLOW_DOWNLOAD=1 to fetch them from the Hugging Face Hub on first use (`avtok settings` lists "
            "each backend's Hub id and licence). Where each was looked for:",
        ]
        lines += [f"  {k}: {v}" for k, v in miss.items()]
        return "\n".join(lines)

    # ----- cancellation -----------------------------------------------------------------------------
    def cancel_event(self, session: str) -> threading.Event:
        """A fresh cancel flag for ``session``'s next run (replacing an old one)."""
        ev = threading.Event()
        with self._cancel_lock:
            self._cancel[session] = ev
        return ev

    def cancel(self, session: str) -> bool:
        """Ask ``session``'s running job to stop (it stops at the next window/chunk). True if one was running."""
        with self._cancel_lock:
            ev = self._cancel.get(session)
        if ev is None:
            return False
        ev.set()
        return True

    def release_cancel(self, session: str, ev: threading.Event) -> None:
        with self._cancel_lock:
            if self._cancel.get(session) is ev:
                del self._cancel[session]

    # ----- source checks ----------------------------------------------------------------------------
    def probe(self, source: str | Path) -> media.VideoInfo:
        """Probe a source and apply the configured limits; raises a one-line :class:`AvtokError`."""
        if source is None or str(source).strip() == "":
            raise MediaError("no video: upload an .mp4 or pick the example")
        path = Path(source)
        info = media.probe(path)
        if info.file_size > self.config.max_upload_mb * 1e6 > 0:
            raise MediaError(f"{path.name}: {info.file_size / 1e6:.0f} MB is over this app's limit of "
                             f"{self.config.max_upload_mb:g} MB (AVTOK_MAX_UPLOAD_MB)")
        if info.duration_s <= 0:
            raise MediaError(f"{path.name}: zero-length video")
        if self.config.max_source_s and info.duration_s > self.config.max_source_s:
            raise MediaError(f"{path.name}: {info.duration_s:.0f} s is longer than this app's limit of "
                             f"{self.config.max_source_s:g} s (AVTOK_MAX_SOURCE_S)")
        return info

    def clip_span(self, info: media.VideoInfo, start_s: float, duration_s: float | None) -> float:
        """Seconds of video a run with this trim would tokenize (checked against the limits)."""
        from .pipeline import clip_span

        name = info.path.name
        if start_s < 0 or (duration_s is not None and duration_s <= 0):
            raise AvtokError("trim start must be >= 0 and duration > 0")
        if start_s >= info.duration_s:
            raise MediaError(f"{name}: trim start {start_s:.2f} s is past the end ({info.duration_s:.2f} s)")
        span = clip_span(info, start_s, duration_s, name).duration_s
        limit = self.config.max_duration_s
        if limit and span > limit + 1e-6:
            raise MediaError(f"{name}: a {span:.1f} s clip is longer than this app's limit of {limit:g} s per "
                             f"run (AVTOK_MAX_DURATION_S); trim it (start/duration)")
        return span

    def effective_max_side(self, requested: int | None) -> int | None:
        ceiling = self.config.max_side or None
        if requested and ceiling:
            return min(int(requested), ceiling)
        return int(requested) if requested else ceiling

    def evaluated_size(self, info: media.VideoInfo, max_side: int | None) -> tuple[int, int]:
        from .pipeline import capped_size

        return capped_size(info.width, info.height, self.effective_max_side(max_side)) or (info.width, info.height)

    def estimate(self, source: str | Path, setting: str, window: int, codebooks: int, start_s: float = 0.0,
                 duration_s: float | None = None, max_side: int | None = None) -> dict[str, Any]:
        """Closed-form token counts for a run, before running it (frame count estimated when trimmed)."""
        from .readouts import estimate_tokens

        info = self.probe(source)
        req = RunRequest(str(source), setting, window, codebooks, None, start_s, duration_s, max_side).normalized()
        vs = parse_setting(req.setting)
        vs.check_window(req.window)
        span = self.clip_span(info, req.start_s, req.duration_s)
        w, h = self.evaluated_size(info, req.max_side)
        trimmed = req.start_s > 0 or (req.duration_s is not None and span < info.duration_s - 1e-6)
        n_frames = max(1, round(span * float(info.avg_fps))) if trimmed else info.n_frames
        cb = req.codebooks if info.audio is not None else 0
        est = estimate_tokens(vs, n_frames, h, w, req.window, span, cb)
        est["frames_estimated"] = bool(trimmed or not info.frames_declared)
        est["audio_note"] = None if info.audio is not None else "no audio track: audio tokens skipped"
        return est

    # ----- runs -------------------------------------------------------------------------------------
    def models_for(self, setting: VisualSetting, device: str, need_audio: bool) -> Any:
        """``pipeline.Models`` from the resident cache (loading each missing model once), wrapped so that every
        model call takes the GPU lock."""
        from .audio import DacCodec
        from .backends import load_tokenizer
        from .pipeline import Models

        cfg = self.config
        cosmos = self.cache.get(
            ("cosmos", setting.name, device, "auto"),
            lambda: load_tokenizer(setting, cfg.checkpoint_dir, device=device, dtype="auto",
                                   allow_download=cfg.allow_download),
            cosmos_bytes,
        )
        dac = None
        if need_audio:
            dac = self.cache.get(
                ("dac", device),
                lambda: DacCodec.from_pretrained(cfg.dac_weights, device=device, allow_download=cfg.allow_download),
                dac_bytes,
            )
        return Models(cosmos=_LockedCosmos(cosmos, self.gpu_lock),
                      dac=_LockedDac(dac, self.gpu_lock) if dac is not None else None)

    def run(self, request: RunRequest, *, progress: ProgressFn | None = None,
            cancel: threading.Event | None = None) -> RunOutcome:
        """Tokenize + reconstruct + score one clip in a fresh run folder (removed again on failure)."""

        t0 = time.perf_counter()
        report_progress = progress or (lambda f, d: None)
        req = request.normalized()
        stage = _StageProgress(report_progress)
        stage("probe", 0, 1)
        info = self.probe(req.source)
        self.clip_span(info, req.start_s, req.duration_s)
        setting = parse_setting(req.setting)
        why = self.setting_missing(setting)
        if why:
            raise AvtokError(why)
        device = normalize_device(req.device)
        audio_on = req.codebooks > 0 and info.audio is not None
        notes: list[str] = []
        if req.codebooks > 0 and info.audio is None:
            notes.append(f"{info.path.name} has no audio track: video tokens only")
        if audio_on and not self.audio_available():
            raise AvtokError(self.missing().get("dac") or "DAC weights not available: set codebooks to 0")
        max_side = self.effective_max_side(req.max_side)
        size = self.evaluated_size(info, req.max_side)
        resized = size != (info.width, info.height)
        if resized and not req.max_side:
            notes.append(f"resized to {size[0]}x{size[1]} (this app's ceiling AVTOK_MAX_SIDE={self.config.max_side})")
        config = req.config(
            codebooks=req.codebooks if audio_on else 0, device=device, max_side=max_side,
            checkpoint_dir=self.config.checkpoint_dir, dac_weights=self.config.dac_weights,
            allow_download=self.config.allow_download,
        )
        nick = _safe_name(Path(req.source).stem)
        run_id = f"{next(self._ids)}"
        run_dir = self.runs.new(f"{nick}-{setting.name}")
        try:
            stage("load models", 0, 1)
            models = self.models_for(setting, device, audio_on)
            if config.metrics and config.lpips != "off":  # the LPIPS trunk, under the app's download rule
                from .lpips_net import fetch_backbone
                from .pipeline import lpips_net

                fetch_backbone(lpips_net(config.lpips, device), allow_download=self.config.allow_download)
            stage("load models", 1, 1)
            check_cancel(cancel)
            extracted = run_dir / f"{nick}_dac_input.wav" if audio_on else None
            result = self._run_task(str(req.source), str(run_dir), nick, config, models, extracted, stage, cancel)
            stage("reference", 0, 1)
            original, note = self._original_for_display(info, req, size, run_dir, nick, cancel)
            stage("done", 1, 1)
        except BaseException:
            self.runs.discard(run_dir)
            raise
        self.runs.finish(run_dir)
        from .metrics import json_safe

        return RunOutcome(
            run_id=run_id, run_dir=run_dir, request=req, source_name=info.path.name,
            info=json_safe(info.to_dict()), report=json_safe(result.report), paths=result.paths(),
            original_video=str(original), original_note=note, elapsed_s=time.perf_counter() - t0,
            size=size if resized else None, notes=notes,
        )

    def sweep(self, request: RunRequest, settings: list[str] | None = None, *, progress: ProgressFn | None = None,
              cancel: threading.Event | None = None) -> Iterator[RunOutcome]:
        """Run ``settings`` (default: every usable one) on the same clip, one after the other.

        The window is adapted per setting when it is not of the form ``1+tf*k`` (nearest valid one).
        """
        report = progress or (lambda f, d: None)
        names = settings or self.usable_settings()
        if not names:
            raise AvtokError("no tokenizer checkpoints are available: see the checkpoint status above")
        from .pipeline import as_whole

        first = parse_setting(names[0])  # the base request is validated with a window valid for the first one
        base = RunRequest(**(asdict(request) | {"setting": first.name,
                                                "window": nearest_window(first, as_whole(request.window, "window"))}))
        base = base.normalized()
        self.probe(base.source)
        n = len(names)
        for i, name in enumerate(names):
            check_cancel(cancel)
            vs = parse_setting(name)
            req = RunRequest(**asdict(base))
            req.setting = vs.name
            req.window = nearest_window(vs, base.window)

            def sub(frac: float, desc: str, i: int = i, name: str = vs.name) -> None:
                report((i + frac) / n, f"[{i + 1}/{n} {name}] {desc}")

            yield self.run(req, progress=sub, cancel=cancel)

    def _original_for_display(self, info: media.VideoInfo, req: RunRequest, size: tuple[int, int],
                              run_dir: Path, nick: str, cancel: threading.Event | None) -> tuple[Path, str]:
        """The source itself when the run covered all of it and a browser can play it; otherwise the evaluated
        clip re-encoded (H.264 crf 12 + AAC of the source audio) so both players show the same span."""
        trimmed = req.start_s > 0 or (req.duration_s is not None and req.duration_s < info.duration_s - 1e-3)
        playable = (info.codec in _BROWSER_VIDEO and info.pix_fmt in ("yuv420p", "yuvj420p")
                    and (info.audio is None or info.audio.codec in _BROWSER_AUDIO))
        if not trimmed and playable:
            return info.path, "the uploaded file as is"
        out = run_dir / f"{nick}_original_clip.mp4"
        visual = run_dir / f".{nick}_original_visual.mp4"
        wav = run_dir / f".{nick}_original_audio.wav"
        try:
            with media.VideoWriter(visual, size[0], size[1], info.fps, info.time_base, crf=12,
                                   preset="veryfast") as vw:
                for win in media.iter_windows(info.path, 32, info=info, start_s=req.start_s,
                                              duration_s=req.duration_s,
                                              size=None if size == (info.width, info.height) else size):
                    check_cancel(cancel)
                    vw.write(win.frames, win.pts)
            audio = None
            if info.audio is not None:
                channels = 2 if info.audio.channels >= 2 else 1
                with media.WavWriter(wav, DAC_SAMPLE_RATE, channels) as ww:
                    for chunk in media.read_audio(info.path, info=info, sample_rate=DAC_SAMPLE_RATE,
                                                  mono=channels == 1, start_s=req.start_s,
                                                  duration_s=req.duration_s):
                        check_cancel(cancel)
                        if chunk.shape[0] > 2:  # 5.1 etc.: a plain stereo fold-down for the preview
                            chunk = np.stack([chunk[0::2].mean(0), chunk[1::2].mean(0)])
                        ww.write(np.clip(chunk, -1, 1))
                audio = wav
            media.mux(visual, audio, out)
        finally:
            for p in (visual, wav):
                with contextlib.suppress(OSError):
                    p.unlink()
        why = "trimmed" if trimmed else "re-encoded for the browser"
        return out, f"the evaluated clip ({why}; H.264 crf 12, {size[0]}x{size[1]})"

    # ----- frame inspector --------------------------------------------------------------------------
    def frame_pair(self, record: dict[str, Any], index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Original and reconstructed frame ``index`` of a finished run, both uint8 ``[H, W, 3]``.

        The original is the source frame after trim/resize (what the encoder saw). The reconstruction is
        the decoder's output for that frame, re-decoded from the run's token file with the resident model
        (exactly what the metrics scored -- not the H.264 mp4). If that fails (e.g. weights gone), the
        frame is read from the reconstructed mp4 instead and the returned note says so.
        """
        from .pipeline import capped_size
        from .tokens import iter_visual_windows, load_tokens

        run_dir = record.get("run_dir")
        if not run_dir or not self.runs.exists(run_dir):
            raise AvtokError("this run's files were cleaned up (only the last runs are kept): run it again")
        req = RunRequest(**record["request"])
        tokens_path = record["paths"]["tokens"]
        tf = load_tokens(tokens_path, visual=False)
        counts = [int(x) for x in tf.window_frames.tolist()]
        total = sum(counts)
        if not 0 <= index < total:
            raise AvtokError(f"frame {index} is out of range (0..{total - 1})")
        starts = np.cumsum([0] + counts)
        w = int(np.searchsorted(starts, index, side="right") - 1)
        offset = index - int(starts[w])
        info = media.probe(req.source)
        max_side = self.effective_max_side(req.max_side)
        size = capped_size(info.width, info.height, max_side)
        height = int(tf.meta.padding["height"])
        width = int(tf.meta.padding["width"])

        def source_window() -> np.ndarray:
            for win in media.iter_windows(info.path, req.window, info=info, start_s=req.start_s,
                                          duration_s=req.duration_s, size=size):
                if win.index == w:
                    return win.frames.copy()
            raise AvtokError(f"frame {index} not found in the source")

        orig = self._cached_window((run_dir, "src", w), source_window)[offset]
        note = "reconstruction = decoder output re-decoded from the token file (what the metrics scored)"
        try:
            def recon_window() -> np.ndarray:
                device = record.get("report", {}).get("device") or normalize_device(req.device)
                models = self.models_for(tf.setting, normalize_device(device.split(":")[0] if device else None),
                                      need_audio=False)
                for i, (n, tokens) in enumerate(iter_visual_windows(tf)):
                    if i == w:
                        return models.cosmos.decode_window(tokens, n, height, width)
                raise AvtokError(f"window {w} not in the token file")

            recon = self._cached_window((run_dir, "rec", w), recon_window)[offset]
        except AvtokError:
            recon = _frame_from_video(record["paths"]["visual_video"], index)
            note = "reconstruction = frame of the H.264 reconstruction (token re-decode unavailable)"
        return orig, recon, note

    def run_frames(self, left: dict[str, Any], right: dict[str, Any], index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Frame ``index`` of two runs' reconstructions (any backends), both uint8 ``[H, W, 3]``, each re-decoded
        from its own token file with its own model (see :meth:`frame_pair`). The runs must cover the same
        evaluated clip (source, trim, size, frame count); otherwise a one-line :class:`AvtokError`."""
        def span(rec: dict[str, Any]) -> tuple:
            ev = (rec.get("report") or {}).get("evaluated") or {}
            return (rec.get("source_name"), ev.get("start_s"), ev.get("width"), ev.get("height"), ev.get("n_frames"))

        if span(left) != span(right):
            raise AvtokError("these two runs are not of the same clip (source, trim, size and frame count must "
                             "match): compare runs of one clip")
        _, a, note_a = self.frame_pair(left, index)
        _, b, note_b = self.frame_pair(right, index)
        note = note_a if note_a == note_b else f"left: {note_a}; right: {note_b}"
        return a, b, note

    def _cached_window(self, key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
        with self._frames_lock:
            hit = self._frames.get(key)
            if hit is not None:
                self._frames.move_to_end(key)
                return hit
        arr = make()
        with self._frames_lock:
            self._frames[key] = arr
            while sum(a.nbytes for a in self._frames.values()) > self._frames_budget and len(self._frames) > 1:
                self._frames.popitem(last=False)
        return arr


def nearest_window(setting: VisualSetting, window: int) -> int:
    """``window`` if it is ``1 + tf*k`` for this setting, else the nearest such value (k >= 1)."""
    tf = setting.temporal
    k = max(1, round((int(window) - 1) / tf))
    return 1 + tf * k


def valid_windows(setting: VisualSetting, up_to: int = 129) -> list[int]:
    return [1 + setting.temporal * k for k in range(1, (up_to - 1) // setting.temporal + 1)]


def _frame_from_video(path: str, index: int) -> np.ndarray:
    for i, frame in enumerate(media.read_video_frames(path)):
        if i == index:
            return frame
    raise AvtokError(f"frame {index} not found in {Path(path).name}")


def _run_pipeline(source: str, run_dir: str, nickname: str, config: Any, models: Any, extracted: Path | None,
                  progress: Callable[[str, float, float], None], cancel: threading.Event | None) -> Any:
    """The GPU part of a run (wrapped by ``spaces.GPU`` on ZeroGPU)."""
    from .pipeline import tokenize

    return tokenize(source, run_dir, run_dir, nickname, config, models=models, extracted_wav=extracted,
                    progress=progress, cancel=cancel)
