"""Validation of a token file against its own schema, before anything is decoded.

Every reader (``tokens.load_tokens`` and through it ``avtok reconstruct``, ``avtok info``, the app) goes
through :func:`validate`. It never trusts the file: the safetensors container is parsed here with plain
reads (no ``mmap``, so a huge or sparse file costs nothing), then checked in order of cost:

1. container: header length, JSON, dtypes, shapes, byte ranges that tile the file exactly;
2. metadata: format, version, field types, the setting, window and frame size (plausible sizes);
3. tensor names, dtypes, ranks, and shapes against the metadata and the setting's closed forms
   (:class:`~avtok_ui.settings.VisualSetting`), so a new setting with its own closed forms fits unchanged;
4. the small tables (a few bytes per latent): windows, latent spans, audio offsets and codes;
5. the visual tensor's values (DV ids < vocabulary size, CV latents finite), streamed in chunks of
   :data:`SCAN_CHUNK` bytes: memory stays flat whatever the file size.

Every failure raises :class:`~avtok_ui.errors.TokenFileError` with one line ``<file>: <what is wrong>``.

The same checks run on a file on disk (:func:`validate`) and on a token file in memory, e.g. a member of a
dataset shard (:func:`validate_bytes`): every ``path`` below is a :data:`Source`, read through :func:`_open`.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .backends.registry import parse_setting
from .errors import TokenFileError
from .settings import (
    DAC_CODEBOOK_SIZE,
    DAC_CODEBOOKS,
    DAC_HOP,
    DAC_SAMPLE_RATE,
    DV_VOCAB_SIZE,
    SettingError,
    audio_code_frames,
)

#: Largest plausible frame side (pixels); 8K video is 7680 wide.
MAX_SIDE = 16384
#: Largest plausible frame rate (high-speed cameras record a few thousand fps).
MAX_FPS = 100_000
#: Largest plausible frame count of one token file (about 155 hours at 30 fps).
MAX_FRAMES = 1 << 24
#: Largest plausible distance of a frame's timestamp from the clip's origin (seconds; about 11 days).
MAX_SPAN_S = 1e6
#: Largest plausible safetensors header (the real ones are a few kB).
MAX_HEADER_BYTES = 16 << 20
#: Bytes read at a time when scanning the visual tensor's values.
SCAN_CHUNK = 8 << 20

REQUIRED_TENSORS = ("visual", "latent_source_frames", "window_frames", "window_latents", "frame_pts")
AUDIO_TENSORS = ("audio_codes", "audio_latent_offsets")

#: safetensors dtype name -> (numpy dtype used to read the bytes, item size)
ST_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2,
               "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}


@dataclass(frozen=True)
class TokenBytes:
    """A token file held in memory (a shard member): ``name`` is what messages call it (``<key>.safetensors``)."""

    name: str
    data: bytes

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)  # shares the bytes (no copy until written to)


#: Where a token file's bytes come from: a file on disk, or bytes in memory.
Source = Path | TokenBytes


def _open(path: Source) -> Any:
    """A binary reader over the source's bytes (``seek``/``read``/``readinto``)."""
    return path.open() if isinstance(path, TokenBytes) else open(path, "rb")


def _size(path: Source) -> int:
    return len(path.data) if isinstance(path, TokenBytes) else path.stat().st_size


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the container: dtype name, shape, and its byte range ``[start, end)`` in the file."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Checked:
    """What :func:`validate` returns: the metadata fields, the small tables (numpy), the tensor index."""

    path: Source
    meta: dict[str, str]
    entries: dict[str, TensorEntry]
    setting: Any
    tables: dict[str, np.ndarray]


def fail(path: Source, what: str) -> TokenFileError:
    """The one error type of this module: ``<file>: <what>``."""
    return TokenFileError(f"{path.name}: {what}")


# ----------------------------------------------------------------------------------------------------
# 1. container
# ----------------------------------------------------------------------------------------------------
def read_container(path: Source) -> tuple[dict[str, str], dict[str, TensorEntry]]:
    """Parse the safetensors header with plain reads; check that the tensors tile the data exactly."""
    if isinstance(path, Path) and not path.is_file():
        raise TokenFileError(f"{path}: token file not found")
    size = _size(path)
    with _open(path) as f:
        head = f.read(12)
        if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or head[:4] == b"\x1aE\xdf\xa3":
            raise fail(path, "this is a video, not a token file (use `avtok tokenize` first)")
        if size < 8:
            raise fail(path, f"not a readable safetensors token file (only {size} bytes)")
        (n,) = struct.unpack("<Q", head[:8])
        if n < 2 or n > min(MAX_HEADER_BYTES, size - 8):
            raise fail(path, f"not a readable safetensors token file (header length {n} for a file of "
                             f"{size} bytes)")
        f.seek(8)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise fail(path, f"not a readable safetensors token file (header is not JSON: {err})") from None
    if not isinstance(header, dict):
        raise fail(path, "not a readable safetensors token file (header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise fail(path, "not a readable safetensors token file (__metadata__ must map names to strings)")
    base = 8 + n
    entries: dict[str, TensorEntry] = {}
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise fail(path, f"tensor {name!r}: malformed header entry")
        dtype, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in ST_ITEMSIZE:
            raise fail(path, f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise fail(path, f"tensor {name!r}: malformed shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) for o in offs) and 0 <= offs[0] <= offs[1]):
            raise fail(path, f"tensor {name!r}: malformed data_offsets {offs!r}")
        nbytes = math.prod(shape) * ST_ITEMSIZE[dtype]
        if offs[1] - offs[0] != nbytes:
            raise fail(path, f"tensor {name!r}: {dtype} {shape} needs {nbytes} bytes but the header gives it "
                             f"{offs[1] - offs[0]}")
        entries[name] = TensorEntry(dtype, tuple(shape), base + offs[0], base + offs[1])
    pos = base
    for name, e in sorted(entries.items(), key=lambda kv: (kv[1].start, kv[1].end)):
        if e.start != pos:
            raise fail(path, f"tensor {name!r}: data does not follow the previous tensor (byte {e.start - base}, "
                             f"expected {pos - base})")
        pos = e.end
    if pos > size:
        raise fail(path, f"file is truncated: its tensors need {pos} bytes, the file has {size}")
    if pos < size:
        raise fail(path, f"{size - pos} unexpected bytes after the last tensor")
    return meta, entries


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ----------------------------------------------------------------------------------------------------
# 2. metadata
# ----------------------------------------------------------------------------------------------------
def _field(path: Source, meta: dict[str, str], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if name not in meta:
        if optional:
            return None
        raise fail(path, f"metadata field {name!r} is missing")
    try:
        value = json.loads(meta[name])
    except json.JSONDecodeError:
        raise fail(path, f"metadata field {name!r} is not JSON") from None
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise fail(path, f"metadata field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _int_in(path: Source, where: str, value: Any, lo: int, hi: int) -> int:
    if not _is_int(value):
        raise fail(path, f"{where} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise fail(path, f"{where} = {value} is implausible (expected {lo}..{hi})")
    return value


def _fraction(path: Source, where: str, value: Any, lo: float, hi: float) -> Fraction:
    try:
        f = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise fail(path, f"{where} must be a fraction like '30000/1001', got {value!r}") from None
    if not lo < f <= hi:
        raise fail(path, f"{where} = {value} is implausible (expected > {lo:g} and <= {hi:g})")
    return f


def _number(path: Source, where: str, value: Any, *, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise fail(path, f"{where} must be a finite number >= 0, got {value!r}")
    if value > MAX_SPAN_S:
        raise fail(path, f"{where} = {value:g} is implausible (at most {MAX_SPAN_S:g} s)")
    return float(value)


def check_metadata(path: Source, meta: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    """Format, version and every field a reader uses; returns the setting and the decoded fields."""
    from . import __version__
    from .tokens import FORMAT_VERSION, TOKEN_FORMAT

    if meta.get("format") != TOKEN_FORMAT:
        raise fail(path, "not an avtok token file (metadata 'format' is missing)")
    version = meta.get("format_version", "?")
    if version != str(FORMAT_VERSION):
        raise fail(path, f"token file format version {version} is not supported "
                         f"(this avtok-ui {__version__} reads version {FORMAT_VERSION})")
    m: dict[str, Any] = {}
    m["setting"] = _field(path, meta, "setting", str)
    try:
        setting = parse_setting(m["setting"])
    except SettingError as err:
        raise fail(path, f"metadata {err}") from None
    m["tokenizer"] = _field(path, meta, "tokenizer", str)
    m["window"] = _field(path, meta, "window", int)
    try:
        setting.check_window(m["window"])
    except SettingError as err:
        raise fail(path, f"metadata {err}") from None
    m["latent_shape"] = _field(path, meta, "latent_shape", list)
    src = m["source"] = _field(path, meta, "source", dict)
    pad = m["padding"] = _field(path, meta, "padding", dict)
    m["clip"] = _field(path, meta, "clip", dict, optional=True) or {}
    m["audio"] = _field(path, meta, "audio", dict, optional=True)
    for k in ("weights",):
        _field(path, meta, k, dict, optional=True)
    for k in ("tool_version", "created"):
        _field(path, meta, k, str, optional=True)

    if not isinstance(src.get("file"), str):
        raise fail(path, "metadata source.file (the source's name) is missing")
    for k in ("width", "height"):
        _int_in(path, f"source {k}", src.get(k), 1, MAX_SIDE)
        _int_in(path, f"frame {k} (padding.{k})", pad.get(k), 1, MAX_SIDE)
    _fraction(path, "source fps", src.get("fps"), 0, MAX_FPS)
    _fraction(path, "source time_base", src.get("time_base"), 0, 1)
    _int_in(path, "source n_frames", src.get("n_frames"), 0, MAX_FRAMES)
    _number(path, "source duration_s", src.get("duration_s"), optional=False)
    h, w = pad["height"], pad["width"]
    if "padded_height" in pad or "padded_width" in pad:
        want = setting.padded_size(h, w)
        if (pad.get("padded_height"), pad.get("padded_width")) != want:
            raise fail(path, f"padded size {pad.get('padded_width')}x{pad.get('padded_height')} does not match "
                             f"{w}x{h} padded for {setting.name} ({want[1]}x{want[0]})")
    clip = m["clip"]
    _number(path, "clip duration_s", clip.get("duration_s"))
    _number(path, "clip start_s", clip.get("start_s"))
    if clip.get("pts_origin") is not None and not _is_int(clip["pts_origin"]):
        raise fail(path, f"clip pts_origin must be an integer, got {clip['pts_origin']!r}")
    for k in ("width", "height"):
        if clip.get(k) is not None and clip[k] != pad[k]:
            raise fail(path, f"clip {k} {clip[k]} differs from the frame {k} {pad[k]}")
    return setting, m


# ----------------------------------------------------------------------------------------------------
# 3. names, dtypes, ranks, shapes
# ----------------------------------------------------------------------------------------------------
def _dtype_is(path: Source, entries: dict[str, TensorEntry], name: str, want: str, meaning: str) -> None:
    if entries[name].dtype != want:
        raise fail(path, f"{name} is {entries[name].dtype}, expected {want} ({meaning})")


def _rank_is(path: Source, entries: dict[str, TensorEntry], name: str, rank: int, layout: str) -> tuple[int, ...]:
    shape = entries[name].shape
    if len(shape) != rank:
        raise fail(path, f"{name} has rank {len(shape)} {list(shape)}, expected {layout}")
    return shape


def check_layout(path: Source, setting: Any, m: dict[str, Any], entries: dict[str, TensorEntry]) -> None:
    """Tensor names, dtypes, ranks and every shape that follows from the metadata alone."""
    names = set(entries)
    missing = [n for n in REQUIRED_TENSORS if n not in names]
    if missing:
        raise fail(path, f"token file lacks tensors {', '.join(missing)}")
    extra = sorted(names - set(REQUIRED_TENSORS) - set(AUDIO_TENSORS))
    if extra:
        raise fail(path, f"unexpected tensor {extra[0]!r} (a version-1 token file has only "
                         f"{', '.join(REQUIRED_TENSORS + AUDIO_TENSORS)})")
    has_codes, has_offsets = "audio_codes" in names, "audio_latent_offsets" in names
    if has_codes != has_offsets:
        raise fail(path, "audio_codes and audio_latent_offsets must come together "
                         f"(found only {'audio_codes' if has_codes else 'audio_latent_offsets'})")
    if has_codes != (m["audio"] is not None):
        raise fail(path, "audio tensors present but no 'audio' metadata" if has_codes
                   else "'audio' metadata present but no audio tensors")

    if setting.discrete:
        _dtype_is(path, entries, "visual", "U16", f"{setting.name} stores uint16 ids")
        vshape = _rank_is(path, entries, "visual", 4, "[1, t, h, w]")
    else:
        channels = setting.latent_channels
        _dtype_is(path, entries, "visual", "BF16", f"{setting.name} stores bf16 latents")
        vshape = _rank_is(path, entries, "visual", 5, f"[1, t, h, w, {channels}]")
        if vshape[4] != channels:
            raise fail(path, f"visual has {vshape[4]} channels, expected {channels} for {setting.name}")
    if vshape[0] != 1 or vshape[1] < 1:
        raise fail(path, f"visual shape {list(vshape)} must be [1, t, ...] with t >= 1")
    if list(vshape) != m["latent_shape"]:
        raise fail(path, f"visual tensor {list(vshape)} differs from the metadata's latent_shape {m['latent_shape']}")
    pad = m["padding"]
    grid = setting.latent_grid(pad["height"], pad["width"])
    if tuple(vshape[2:4]) != grid:
        raise fail(path, f"visual latent grid {vshape[2]}x{vshape[3]} does not match {pad['width']}x{pad['height']} "
                         f"frames at {setting.name} (expected {grid[0]}x{grid[1]})")
    t = vshape[1]
    for name in ("window_frames", "window_latents", "frame_pts", "latent_source_frames"):
        _dtype_is(path, entries, name, "I64", "int64")
    nw = _rank_is(path, entries, "window_frames", 1, "[n_windows]")[0]
    if nw < 1:
        raise fail(path, "window_frames is empty")
    if entries["window_latents"].shape != (nw,):
        raise fail(path, f"window_latents {list(entries['window_latents'].shape)} does not match "
                         f"window_frames [{nw}]")
    if entries["latent_source_frames"].shape != (t, 2):
        raise fail(path, f"latent_source_frames {list(entries['latent_source_frames'].shape)}, expected [{t}, 2]")
    n_frames = _rank_is(path, entries, "frame_pts", 1, "[n_frames]")[0]
    if n_frames > MAX_FRAMES:
        raise fail(path, f"{n_frames} frames is implausible (at most {MAX_FRAMES})")
    if nw > n_frames:
        raise fail(path, f"{nw} windows for {n_frames} frames")
    if n_frames > nw * m["window"]:
        raise fail(path, f"frame_pts has {n_frames} frames but {nw} windows of {m['window']} hold at most "
                         f"{nw * m['window']}")
    clip_n = m["clip"].get("n_frames")
    if clip_n is not None and clip_n != n_frames:
        raise fail(path, f"metadata says {clip_n} frames but frame_pts has {n_frames}")
    if has_codes:
        _dtype_is(path, entries, "audio_codes", "U16", "uint16 DAC codes")
        _dtype_is(path, entries, "audio_latent_offsets", "I64", "int64")
        n_q, n_code = _rank_is(path, entries, "audio_codes", 2, "[n_codebooks, n_code_frames]")
        if not 1 <= n_q <= DAC_CODEBOOKS:
            raise fail(path, f"audio_codes has {n_q} codebooks, expected 1..{DAC_CODEBOOKS}")
        if entries["audio_latent_offsets"].shape != (t + 1,):
            raise fail(path, f"audio_latent_offsets {list(entries['audio_latent_offsets'].shape)}, expected "
                             f"[{t + 1}] (one more than the {t} latent frames)")
        a = m["audio"]
        if a.get("codebooks") != n_q:
            raise fail(path, f"metadata says {a.get('codebooks')} codebooks but audio_codes has {n_q}")
        if a.get("n_code_frames") != n_code:
            raise fail(path, f"metadata says {a.get('n_code_frames')} code frames but audio_codes has {n_code}")
        if a.get("sample_rate") != DAC_SAMPLE_RATE or a.get("hop") != DAC_HOP:
            raise fail(path, f"audio sample_rate {a.get('sample_rate')} / hop {a.get('hop')}, expected "
                             f"{DAC_SAMPLE_RATE} / {DAC_HOP} (DAC 44 kHz)")
        if a.get("codebook_size", DAC_CODEBOOK_SIZE) != DAC_CODEBOOK_SIZE:
            raise fail(path, f"audio codebook_size {a.get('codebook_size')}, expected {DAC_CODEBOOK_SIZE}")
        n_samples = _int_in(path, "audio n_samples", a.get("n_samples"), 0, (n_code + 1) * DAC_HOP)
        if audio_code_frames(n_samples) != n_code:
            raise fail(path, f"audio n_samples {n_samples} needs {audio_code_frames(n_samples)} code frames, "
                             f"audio_codes has {n_code}")


# ----------------------------------------------------------------------------------------------------
# 4. small tables
# ----------------------------------------------------------------------------------------------------
def read_array(path: Source, e: TensorEntry, np_dtype: str) -> np.ndarray:
    """Read one tensor's bytes into a new numpy array of ``e.shape`` (little-endian ``np_dtype``)."""
    out = np.empty(e.shape, dtype=np.dtype(np_dtype))
    with _open(path) as f:
        f.seek(e.start)
        got = f.readinto(memoryview(out).cast("B")) if out.nbytes else 0
    if got != out.nbytes:
        raise fail(path, f"file is truncated inside tensor data ({got} of {out.nbytes} bytes)")
    return out


def check_tables(path: Source, setting: Any, m: dict[str, Any],
                 entries: dict[str, TensorEntry]) -> dict[str, np.ndarray]:
    """Windows, spans, offsets and codes against the closed forms; returns the tables read."""
    window = m["window"]
    t = entries["visual"].shape[1]
    tabs = {n: read_array(path, entries[n], "<i8")
            for n in ("window_frames", "window_latents", "latent_source_frames", "frame_pts")}
    wf = tabs["window_frames"]
    n_frames = int(entries["frame_pts"].shape[0])
    bad = np.flatnonzero((wf < 1) | (wf > window))
    if bad.size:
        i = int(bad[0])
        raise fail(path, f"window_frames[{i}] = {int(wf[i])}, expected 1..{window}")
    if int(wf.sum()) != n_frames:
        raise fail(path, f"window_frames add up to {int(wf.sum())} frames but frame_pts has {n_frames}")
    expect = setting.window_lengths(n_frames, window)
    if wf.tolist() != expect:
        raise fail(path, f"window_frames {_short(wf.tolist())} is not {n_frames} frames in windows of {window} "
                         f"({_short(expect)})")
    lat = [setting.latents_for_window(int(n)) for n in expect]
    wl = tabs["window_latents"]
    if wl.tolist() != lat:
        i = next(i for i, (a, b) in enumerate(zip(wl.tolist(), lat, strict=True)) if a != b)
        raise fail(path, f"window_latents[{i}] = {int(wl[i])}, but a window of {expect[i]} frames gives {lat[i]} "
                         f"latents at {setting.name}")
    if sum(lat) != t:
        raise fail(path, f"the windows give {sum(lat)} latent frames but visual has {t}")
    spans = np.asarray(setting.latent_source_spans(n_frames, window), dtype=np.int64).reshape(-1, 2)
    got = tabs["latent_source_frames"]
    if not np.array_equal(got, spans):
        i = int(np.flatnonzero((got != spans).any(axis=1))[0])
        raise fail(path, f"latent_source_frames do not cover frames 0..{n_frames - 1} in order: latent {i} has "
                         f"[{int(got[i, 0])}, {int(got[i, 1])}), expected [{int(spans[i, 0])}, {int(spans[i, 1])})")
    pts = tabs["frame_pts"]
    origin = m["clip"].get("pts_origin")
    origin = int(pts[0]) if origin is None else origin
    tb = Fraction(str(m["source"]["time_base"]))
    limit = int(MAX_SPAN_S / tb)
    far = np.flatnonzero(np.abs(pts.astype(np.float64) - origin) > limit)
    if far.size:  # order is not enforced: timestamps are kept as decoded, and broken streams reorder them
        i = int(far[0])
        raise fail(path, f"frame_pts[{i}] = {int(pts[i])} is {float(abs(int(pts[i]) - origin) * tb):.3g} s from the "
                         f"clip's origin (at most {MAX_SPAN_S:g} s is plausible)")
    if "audio_codes" in entries:
        n_code = entries["audio_codes"].shape[1]
        off = read_array(path, entries["audio_latent_offsets"], "<i8")
        if int(off[0]) != 0 or int(off[-1]) != n_code:
            raise fail(path, f"audio_latent_offsets run from {int(off[0])} to {int(off[-1])}, expected 0 to "
                             f"{n_code} (the code count)")
        dec = np.flatnonzero(np.diff(off) < 0)
        if dec.size:
            i = int(dec[0])
            raise fail(path, f"audio_latent_offsets are not monotonic: offset {i + 1} = {int(off[i + 1])} "
                             f"< offset {i} = {int(off[i])}")
        tabs["audio_latent_offsets"] = off
        codes = read_array(path, entries["audio_codes"], "<u2")
        if codes.size and int(codes.max()) >= DAC_CODEBOOK_SIZE:
            q, j = (int(x) for x in np.unravel_index(int(np.argmax(codes >= DAC_CODEBOOK_SIZE)), codes.shape))
            raise fail(path, f"audio code {int(codes[q, j])} (codebook {q}, frame {j}) is outside [0, "
                             f"{DAC_CODEBOOK_SIZE})")
        tabs["audio_codes"] = codes
    return tabs


def _short(values: list[int], n: int = 6) -> str:
    return str(values) if len(values) <= n else f"[{', '.join(map(str, values[:n]))}, ... ({len(values)} values)]"


# ----------------------------------------------------------------------------------------------------
# 5. visual values, streamed
# ----------------------------------------------------------------------------------------------------
def iter_raw_chunks(path: Source, e: TensorEntry, chunk_bytes: int = SCAN_CHUNK) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_element_index, uint16 array)`` over a 2-byte tensor, one reused buffer of ``chunk_bytes``."""
    buf = np.empty(max(1, chunk_bytes // 2), dtype="<u2")
    done = 0
    total = e.numel
    with _open(path) as f:
        f.seek(e.start)
        while done < total:
            k = min(total - done, buf.size)
            view = buf[:k]
            got = f.readinto(memoryview(view).cast("B"))
            if got != 2 * k:
                raise fail(path, "file is truncated inside the visual tensor")
            yield done, view
            done += k


def scan_visual(path: Source, setting: Any, e: TensorEntry) -> None:
    """DV: every id < the vocabulary size; CV: every bf16 latent finite. Streams ``SCAN_CHUNK`` at a time."""
    per_latent = math.prod(e.shape[2:])
    tmp = None
    for first, raw in iter_raw_chunks(path, e):
        if setting.discrete:
            if int(raw.max()) >= DV_VOCAB_SIZE:  # one pass; locate only on failure
                i = int(np.argmax(raw >= DV_VOCAB_SIZE))
                raise fail(path, f"visual id {int(raw[i])} at latent frame {(first + i) // per_latent} is outside "
                                 f"the {setting.name} vocabulary [0, {DV_VOCAB_SIZE})")
        else:
            # bf16 without its sign bit is >= 0x7F80 exactly for inf and NaN (exponent all ones)
            tmp = np.empty_like(raw) if tmp is None or tmp.size < raw.size else tmp
            mag = np.bitwise_and(raw, 0x7FFF, out=tmp[:raw.size])
            if int(mag.max()) >= 0x7F80:
                i = int(np.argmax(mag >= 0x7F80))
                raise fail(path, f"visual latents are not finite (NaN or inf at latent frame "
                                 f"{(first + i) // per_latent})")


# files whose values were scanned, keyed by identity + size + mtime: re-reads (the app's frame inspector)
# then cost only the cheap checks
_SCANNED: OrderedDict[tuple[int, int, int, int], None] = OrderedDict()
_SCANNED_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def validate(path: str | Path | TokenBytes, *, scan_values: bool = True) -> Checked:
    """Check a token file against its schema (cheap checks first, then the streamed value scan).

    Raises :class:`TokenFileError` (``<file>: <problem>``) on the first problem; returns what was read.
    A file on disk whose values were scanned is not scanned again while unchanged; bytes always are.
    """
    path = path if isinstance(path, TokenBytes) else Path(path)
    meta, entries = read_container(path)
    setting, m = check_metadata(path, meta)
    check_layout(path, setting, m, entries)
    tables = check_tables(path, setting, m, entries)
    if scan_values and isinstance(path, TokenBytes):
        scan_visual(path, setting, entries["visual"])
    elif scan_values:
        key = _file_key(path)
        with _SCANNED_LOCK:
            known = key in _SCANNED
        if not known:
            scan_visual(path, setting, entries["visual"])
            with _SCANNED_LOCK:
                _SCANNED[key] = None
                while len(_SCANNED) > 256:
                    _SCANNED.popitem(last=False)
    return Checked(path=path, meta=meta, entries=entries, setting=setting, tables=tables)


def validate_bytes(data: bytes, name: str, *, scan_values: bool = True) -> Checked:
    """:func:`validate` for a token file in memory (e.g. ``<key>.safetensors`` read from a shard tar); the
    same checks and messages, ``name`` in place of the file name."""
    return validate(TokenBytes(name, bytes(data)), scan_values=scan_values)
