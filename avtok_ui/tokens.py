"""The token file: one self-describing ``.safetensors`` file per video.

Layout (all tensors little-endian, loadable with ``safetensors.torch.load_file`` alone):

=========================  ==========================  ========================================================
name                       dtype / shape               meaning
=========================  ==========================  ========================================================
``visual``                 CV: bf16 ``[1, t, h, w, 16]``  Cosmos continuous latents (channels last)
                           DV: uint16 ``[1, t, h, w]``    Cosmos FSQ ids in [0, 64000), converted by value
``latent_source_frames``   int64 ``[t, 2]``            source frames ``[start, end)`` each latent covers
``window_frames``          int64 ``[n_windows]``       source frames in each independent window
``window_latents``         int64 ``[n_windows]``       latent frames of each window
``frame_pts``              int64 ``[T]``               presentation timestamps of the source frames
                                                       (in ``source.time_base``; VFR kept)
``audio_codes``            uint16 ``[n_q, n_codes]``   DAC codes (< 1024); absent without audio
``audio_latent_offsets``   int64 ``[t + 1]``           latent ``i`` <-> ``audio_codes[:, off[i]:off[i+1]]``
=========================  ==========================  ========================================================

The safetensors metadata holds ``format = "avtok-tokens"``, ``format_version``, and one key per
field of :class:`TokenMeta` with a JSON value.

The file is *written streaming*: visual tokens are spilled window by window to a temporary file and the
safetensors file is assembled at the end (header + bytes), so a long video's tokens are never all in
memory. The final file appears atomically (temporary name, then rename).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .errors import TokenFileError
from .settings import VisualSetting

TOKEN_FORMAT = "avtok-tokens"
FORMAT_VERSION = 1

_ST_DTYPES = {
    torch.bfloat16: "BF16",
    torch.uint16: "U16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.float32: "F32",
}


@dataclass
class TokenMeta:
    """Everything needed to interpret the tensors and rebuild the video from the file alone."""

    setting: str
    tokenizer: str
    source: dict[str, Any]
    window: int
    latent_shape: list[int]
    padding: dict[str, Any]
    clip: dict[str, Any] = field(default_factory=dict)
    audio: dict[str, Any] | None = None
    weights: dict[str, Any] = field(default_factory=dict)
    tool_version: str = __version__
    created: str = ""

    @property
    def visual_setting(self) -> VisualSetting:
        """The setting (Cosmos 0.1 ``VisualSetting`` or a diffusers ``DiffusersSetting``)."""
        from .backends.registry import parse_setting

        return parse_setting(self.setting)

    @property
    def backend(self) -> dict[str, Any]:
        """Backend record: ``{"backend": "cosmos-jit"}`` or, for a diffusers VAE, its class, Hub id and
        config hash (kept in ``weights["backend"]`` by the engine)."""
        rec = (self.weights or {}).get("backend")
        if isinstance(rec, dict):
            return rec
        return {"backend": getattr(self.visual_setting, "backend", "cosmos-jit")}

    def to_metadata(self) -> dict[str, str]:
        out = {"format": TOKEN_FORMAT, "format_version": str(FORMAT_VERSION)}
        out.update({k: json.dumps(v) for k, v in asdict(self).items()})
        return out

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: Path) -> TokenMeta:
        if meta.get("format") != TOKEN_FORMAT:
            raise TokenFileError(f"{path.name}: not an avtok token file (metadata 'format' is missing)")
        version = meta.get("format_version", "?")
        if version != str(FORMAT_VERSION):
            raise TokenFileError(
                f"{path.name}: token file format version {version} is not supported "
                f"(this avtok-ui {__version__} reads version {FORMAT_VERSION})"
            )
        kwargs = {}
        for name in cls.__dataclass_fields__:
            if name in meta:
                kwargs[name] = json.loads(meta[name])
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise TokenFileError(f"{path.name}: incomplete token metadata ({err})") from None


@dataclass
class TokenFile:
    """A loaded token file. ``visual`` stays on the CPU in its stored dtype."""

    path: Path
    meta: TokenMeta
    visual: torch.Tensor
    latent_source_frames: torch.Tensor
    window_frames: torch.Tensor
    window_latents: torch.Tensor
    frame_pts: torch.Tensor
    audio_codes: torch.Tensor | None = None
    audio_latent_offsets: torch.Tensor | None = None
    visual_offset: int | None = field(default=None, repr=False)  # byte offset of ``visual`` in the file

    @property
    def setting(self) -> VisualSetting:
        return self.meta.visual_setting

    def window_tokens(self) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(n_source_frames, model_tokens)`` per window; model form: CV ``[1,16,t,h,w]`` bf16,
        DV ``[1,t,h,w]`` int32."""
        start = 0
        for n_frames, n_lat in zip(self.window_frames.tolist(), self.window_latents.tolist(), strict=True):
            chunk = self.visual[:, start:start + n_lat]
            start += n_lat
            yield int(n_frames), stored_to_model(chunk, self.setting)


def model_to_stored(tokens: torch.Tensor, setting: VisualSetting) -> torch.Tensor:
    """Encoder output -> stored form on CPU.

    Continuous latent ``[1, C, t, h, w]`` (any float; C = 16 for Cosmos CV, the VAE's latent channels for a
    diffusers backend) -> bf16 ``[1, t, h, w, C]``;
    DV ids ``[1, t, h, w]`` int32 in [0, 64000) -> uint16 by value (never by reinterpreting bytes).
    """
    tokens = tokens.detach().to("cpu")
    if setting.discrete:
        if tokens.dtype.is_floating_point:
            raise TypeError("discrete tokens must be integer ids")
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= 65536:
            raise ValueError(f"discrete ids out of uint16 range: [{lo}, {hi}]")
        return tokens.to(torch.int32).to(torch.uint16).contiguous()
    return tokens.permute(0, 2, 3, 4, 1).to(torch.bfloat16).contiguous()


def stored_to_model(stored: torch.Tensor, setting: VisualSetting) -> torch.Tensor:
    """Stored form -> decoder input: continuous bf16 ``[1, C, t, h, w]``; DV int32 ``[1, t, h, w]``."""
    if setting.discrete:
        return stored.to(torch.int32)
    return stored.permute(0, 4, 1, 2, 3).contiguous()


class TokenFileWriter:
    """Streaming writer: ``add_window`` per window, then ``finish``; ``abort`` (or an exception inside a
    ``with`` block) leaves nothing behind.

    Only the small per-latent tables are kept in memory; visual bytes go to a spill file in the target
    folder (same filesystem, so the final rename is atomic).
    """

    def __init__(self, path: str | Path, setting: VisualSetting):
        self.path = Path(path)
        self.setting = setting
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, spill = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".spill", dir=self.path.parent)
        self._spill_path = Path(spill)
        self._spill = os.fdopen(fd, "wb")
        self._grid: tuple[int, ...] | None = None
        self._t = 0
        self._window_frames: list[int] = []
        self._window_latents: list[int] = []
        self._spans: list[tuple[int, int]] = []
        self._frames_seen = 0
        self.finished = False

    def add_window(self, tokens: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Append one window's encoder output (model form). Returns the stored form (CPU)."""
        return self.add_stored(model_to_stored(tokens, self.setting), n_frames)

    def add_stored(self, stored: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Append one window already in stored form (:func:`model_to_stored`'s output). Returns it."""
        grid = tuple(stored.shape[2:])
        if self._grid is None:
            self._grid = grid
        elif grid != self._grid:
            raise ValueError(f"window latent grid {grid} differs from the first window's {self._grid}")
        n_lat = int(stored.shape[1])
        expected = self.setting.latents_for_window(n_frames)
        if n_lat != expected:
            raise ValueError(f"window of {n_frames} frames gave {n_lat} latents, expected {expected}")
        self._spill.write(_tensor_bytes(stored))
        base = self._frames_seen
        self._spans.append((base, base + 1))
        tf = self.setting.temporal
        for i in range(1, n_lat):
            s = base + 1 + tf * (i - 1)
            self._spans.append((s, min(s + tf, base + n_frames)))
        self._frames_seen += n_frames
        self._t += n_lat
        self._window_frames.append(n_frames)
        self._window_latents.append(n_lat)
        return stored

    @property
    def latent_spans(self) -> list[tuple[int, int]]:
        return list(self._spans)

    @property
    def n_latents(self) -> int:
        return self._t

    def finish(self, meta: TokenMeta, frame_pts: np.ndarray, audio_codes: np.ndarray | None = None,
               audio_latent_offsets: np.ndarray | None = None) -> Path:
        """Assemble the safetensors file and atomically move it to ``path``."""
        if self._grid is None:
            raise ValueError("no windows were added")
        self._spill.close()
        if len(frame_pts) != self._frames_seen:
            raise ValueError(f"{len(frame_pts)} timestamps for {self._frames_seen} frames")
        visual_shape = [1, self._t, *self._grid]
        meta.latent_shape = visual_shape
        small: dict[str, torch.Tensor] = {
            "latent_source_frames": torch.tensor(self._spans, dtype=torch.int64).reshape(-1, 2),
            "window_frames": torch.tensor(self._window_frames, dtype=torch.int64),
            "window_latents": torch.tensor(self._window_latents, dtype=torch.int64),
            "frame_pts": torch.from_numpy(np.asarray(frame_pts, dtype=np.int64).copy()),
        }
        if audio_codes is not None:
            codes = np.asarray(audio_codes)
            if codes.size and (codes.min() < 0 or codes.max() >= 65536):
                raise ValueError("audio codes out of uint16 range")
            small["audio_codes"] = torch.from_numpy(codes.astype(np.int64)).to(torch.uint16)
            offsets = np.asarray(audio_latent_offsets, dtype=np.int64)
            if offsets.shape != (self._t + 1,):
                raise ValueError(f"audio_latent_offsets must have {self._t + 1} entries, got {offsets.shape}")
            small["audio_latent_offsets"] = torch.from_numpy(offsets.copy())
        visual_dtype = torch.uint16 if self.setting.discrete else torch.bfloat16
        header: dict[str, Any] = {"__metadata__": meta.to_metadata()}
        offset = 0
        blobs: list[bytes] = []
        for name, tensor in small.items():
            data = _tensor_bytes(tensor)
            header[name] = {"dtype": _ST_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                            "data_offsets": [offset, offset + len(data)]}
            offset += len(data)
            blobs.append(data)
        visual_nbytes = self._spill_path.stat().st_size
        expect = int(np.prod(visual_shape)) * 2
        if visual_nbytes != expect:
            raise ValueError(f"spilled {visual_nbytes} bytes of visual tokens, expected {expect}")
        header["visual"] = {"dtype": _ST_DTYPES[visual_dtype], "shape": visual_shape,
                            "data_offsets": [offset, offset + visual_nbytes]}
        head = json.dumps(header, separators=(",", ":")).encode()
        head += b" " * (-len(head) % 8)
        tmp = self.path.with_name(f".{self.path.name}.partial")
        try:
            with open(tmp, "wb") as f:
                f.write(struct.pack("<Q", len(head)))
                f.write(head)
                for blob in blobs:
                    f.write(blob)
                with open(self._spill_path, "rb") as spill:
                    shutil.copyfileobj(spill, f, length=16 << 20)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            self._spill_path.unlink(missing_ok=True)
        self.finished = True
        return self.path

    def abort(self) -> None:
        if not self._spill.closed:
            self._spill.close()
        self._spill_path.unlink(missing_ok=True)

    def __enter__(self) -> TokenFileWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.finished:
            self.abort()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.contiguous().cpu()
    if t.dtype in (torch.bfloat16, torch.uint16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def load_tokens(path: str | Path, *, visual: bool = True) -> TokenFile:
    """Validate (:func:`avtok_ui.tokencheck.validate`) and load a token file written by avtok-ui
    (tensors on CPU, in their stored dtypes).

    Nothing is decoded from a file that fails validation: the error is one line ``<file>: <problem>``.
    ``visual=False`` skips the (possibly large) visual tensor: ``TokenFile.visual`` is then an empty tensor
    and :func:`iter_visual_windows` streams it instead. No ``mmap``: plain reads of the byte ranges.
    """
    from .tokencheck import read_array, validate

    path = Path(path)
    checked = validate(path)
    meta = TokenMeta.from_metadata(checked.meta, path)
    tabs = checked.tables
    tensors: dict[str, torch.Tensor] = {n: torch.from_numpy(tabs[n]) for n in
                                        ("latent_source_frames", "window_frames", "window_latents", "frame_pts")}
    if "audio_codes" in tabs:
        tensors["audio_codes"] = torch.from_numpy(tabs["audio_codes"].view(np.int16)).view(torch.uint16)
        tensors["audio_latent_offsets"] = torch.from_numpy(tabs["audio_latent_offsets"])
    e = checked.entries["visual"]
    if visual:
        raw = torch.from_numpy(read_array(path, e, "<i2"))
        vis = raw.view(torch.uint16 if checked.setting.discrete else torch.bfloat16)
    else:
        vis = torch.empty(0)
    return TokenFile(path=path, meta=meta, visual=vis, visual_offset=e.start, **tensors)


def iter_visual_windows(tf: TokenFile) -> Iterator[tuple[int, torch.Tensor]]:
    """Stream ``(n_source_frames, model_tokens)`` per window, reading only that window from disk."""
    if tf.visual.numel():
        yield from tf.window_tokens()
        return
    if tf.visual_offset is None:
        raise ValueError("this TokenFile was not loaded from a file: no visual data to stream")
    setting = tf.setting
    grid = [int(x) for x in tf.meta.latent_shape[2:]]
    per_latent = 2 * math.prod(grid)
    start = 0
    with open(tf.path, "rb") as f:
        for n_frames, n_lat in zip(tf.window_frames.tolist(), tf.window_latents.tolist(), strict=True):
            chunk = torch.empty([1, n_lat, *grid], dtype=torch.int16)
            f.seek(tf.visual_offset + start * per_latent)
            if f.readinto(memoryview(chunk.numpy()).cast("B")) != n_lat * per_latent:
                raise TokenFileError(f"{tf.path.name}: file is truncated inside the visual tensor")
            start += n_lat
            stored = chunk.view(torch.uint16 if setting.discrete else torch.bfloat16)
            yield int(n_frames), stored_to_model(stored, setting)
