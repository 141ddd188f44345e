"""All audio/video file I/O (PyAV). Knows nothing about models.

Conventions (see docs/ARCHITECTURE.md):

* Video frames: ``np.ndarray [T, H, W, 3]`` uint8 RGB, *upright* (the container's display rotation is
  applied to the pixels, like ffmpeg's autorotate), C-contiguous.
* Audio: ``np.ndarray [C, N]`` float32 in [-1, 1].
* Time 0 of everything is the presentation time of the first video frame (``VideoInfo.start_s``).
  Audio before it is dropped, a late audio start is filled with silence, and audio is cut/padded to the
  video's duration.
* Every failure is a :class:`~avtok_ui.errors.MediaError` whose message is one line naming the file
  (``"clip.mp4: ..."``); no ``av.error.*`` escapes.

Reading decodes from the start of the file (no seeking), so frame indices are exact even for
variable-frame-rate files; memory is bounded by one window / one audio chunk.

Known simplifications: pixels are treated as square (sample aspect ratio ignored); only the rotation
part of a display matrix is applied (flips are ignored); HDR (PQ/HLG) is converted to 8-bit RGB without
tone mapping; RGB conversion follows the source's colour tags (untagged -> swscale default, BT.601).
"""

from __future__ import annotations

import contextlib
import os
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.audio.resampler import AudioResampler
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from .errors import MediaError
from .settings import DEFAULT_PRESET, X264_PRESETS

__all__ = [
    "AudioInfo",
    "VideoInfo",
    "FrameWindow",
    "probe",
    "iter_windows",
    "read_video_frames",
    "read_audio",
    "frame_count",
    "rotate_upright",
    "VideoWriter",
    "VIDEO_ENCODERS",
    "WavWriter",
    "mux",
]

#: Exceptions from PyAV / the OS that mean "this file cannot be read/written as media".
_AV_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, EOFError)

#: An audio timestamp jump larger than this (seconds) inside the stream is filled with silence.
_AUDIO_GAP_TOLERANCE_S = 0.010

#: numpy dtypes of FFmpeg sample formats (planar variants end in "p").
_SAMPLE_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64,
                  "flt": np.float32, "dbl": np.float64}


# ----------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------
def _reason(err: BaseException) -> str:
    """One-line description of a PyAV/OS error (without errno noise)."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


@contextlib.contextmanager
def _media_errors(path: Path, what: str) -> Iterator[None]:
    """Turn PyAV/OS errors raised inside the block into ``MediaError("<name>: <what> (<reason>)")``."""
    try:
        yield
    except MediaError:
        raise
    except _AV_ERRORS as err:
        raise MediaError(f"{path.name}: {what} ({_reason(err)})") from err


def _check_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path.name}: file not found")
    if path.is_dir():
        raise MediaError(f"{path.name}: is a directory, not a video file")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise MediaError(f"{path.name}: cannot read file ({_reason(err)})") from err
    if size == 0:
        raise MediaError(f"{path.name}: file is empty")
    return path


def _open_input(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), "r")
    except _AV_ERRORS as err:
        raise MediaError(f"{path.name}: not a readable video file ({_reason(err)})") from err


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    """The first real video stream (cover art / attached pictures are skipped)."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        if stream.codec_context is None:
            raise MediaError(f"{path.name}: no decoder for its video codec")
        return stream
    raise MediaError(f"{path.name}: not a video file (no video stream)")


def _audio_stream(container: av.container.InputContainer) -> av.AudioStream | None:
    for stream in container.streams.audio:
        if stream.codec_context is not None:
            return stream
    return None


# ----------------------------------------------------------------------------------------------------
# probe
# ----------------------------------------------------------------------------------------------------
def _frac(value: Any) -> Fraction | None:
    if value is None:
        return None
    frac = Fraction(value)
    return frac if frac > 0 else None


def _frac_str(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


@dataclass(frozen=True)
class AudioInfo:
    """The source's first audio stream. ``start_s`` is in the file's own clock (same as ``VideoInfo.start_s``)."""

    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration_s: float | None
    start_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"codec": self.codec, "sample_rate": self.sample_rate, "channels": self.channels,
                "layout": self.layout, "duration_s": self.duration_s, "start_s": self.start_s}


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found out about a video file.

    ``width``/``height`` are the upright display size (after ``rotation``); ``fps`` is the stream's base
    rate (used as the encoder rate of reconstructions), ``avg_fps`` its average rate. ``n_frames`` is the
    container's declared frame count (capped by ``duration_s * avg_fps`` because an edit list can hide
    declared frames), else an estimate from duration and average rate. Times are seconds; ``start_s`` is
    the presentation time of the first video frame, the origin of all other times in this project.
    """

    path: Path
    container: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    rotation: int
    fps: Fraction
    avg_fps: Fraction
    time_base: Fraction
    n_frames: int
    frames_declared: bool
    duration_s: float
    start_s: float
    audio: AudioInfo | None
    file_size: int
    bit_rate: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: Fractions as ``"num/den"`` strings plus ``<name>_float`` companions."""
        return {
            "path": str(self.path), "name": self.path.name, "container": self.container, "codec": self.codec,
            "pix_fmt": self.pix_fmt, "width": self.width, "height": self.height, "rotation": self.rotation,
            "fps": _frac_str(self.fps), "fps_float": float(self.fps),
            "avg_fps": _frac_str(self.avg_fps), "avg_fps_float": float(self.avg_fps),
            "time_base": _frac_str(self.time_base), "n_frames": self.n_frames,
            "frames_declared": self.frames_declared, "duration_s": self.duration_s, "start_s": self.start_s,
            "audio": self.audio.to_dict() if self.audio else None, "file_size": self.file_size,
            "bit_rate": self.bit_rate,
        }

    @property
    def stored_size(self) -> tuple[int, int]:
        """``(width, height)`` of the decoded pictures before rotation."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


def _normalize_rotation(degrees: float) -> int:
    """PyAV's counter-clockwise rotation in [-180, 180] -> 0/90/180/270 (nearest quarter turn)."""
    return int(round(float(degrees) / 90.0)) % 4 * 90


def rotate_upright(img: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation to stored pixels: ``rotation/90`` quarter turns counter-clockwise.

    ``img`` is ``[H, W, C]`` (or ``[T, H, W, C]``); returns a C-contiguous array, ``H``/``W`` swapped for
    90/270. This matches ffmpeg's autorotate for a display matrix that PyAV reports as ``rotation``.
    """
    k = _normalize_rotation(rotation) // 90
    if k == 0:
        return img
    axes = (0, 1) if img.ndim == 3 else (1, 2)
    return np.ascontiguousarray(np.rot90(img, k=k, axes=axes))


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video file's metadata (and decode its first frame to get the rotation and time origin).

    Raises :class:`MediaError` if the file is missing, not a video, or has no decodable frame.
    """
    path = _check_file(path)
    container = _open_input(path)
    try:
        with _media_errors(path, "cannot read video"):
            return _probe(container, path)
    finally:
        container.close()


def _tag_seconds(text: str | None) -> float | None:
    """Parse a ``"HH:MM:SS.fraction"`` duration tag (Matroska); None if absent or malformed."""
    if not text:
        return None
    try:
        h, m, sec = str(text).strip().split(":")
        value = int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None
    return value if value > 0 else None


def _probe(container: av.container.InputContainer, path: Path) -> VideoInfo:
    stream = _video_stream(container, path)
    time_base = _frac(stream.time_base) or Fraction(1, 90000)

    first = None
    with _media_errors(path, "corrupt video data at the first frame"):
        for frame in container.decode(stream):
            first = frame
            break
    if first is None:
        raise MediaError(f"{path.name}: contains no video frames")

    rotation = _normalize_rotation(first.rotation)
    stored_w, stored_h = first.width, first.height
    width, height = (stored_h, stored_w) if rotation in (90, 270) else (stored_w, stored_h)
    if first.pts is not None:
        start_s = float(first.pts * time_base)
    elif stream.start_time is not None:
        start_s = float(stream.start_time * time_base)
    else:
        start_s = 0.0

    avg = _frac(stream.average_rate)
    fps = _frac(stream.guessed_rate) or _frac(stream.base_rate) or avg or Fraction(25)
    declared = int(stream.frames or 0)

    tagged = _tag_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if stream.duration:
        duration = float(stream.duration * time_base)
    elif tagged is not None:  # Matroska/WebM: per-stream "DURATION" tag (container duration may be audio's)
        duration = tagged - (start_s - float((stream.start_time or 0) * time_base))
    elif container.duration:
        duration = container.duration / av.time_base - (start_s - (container.start_time or 0) / av.time_base)
    elif declared:
        duration = float(declared / (avg or fps))
    else:
        duration = 0.0
    if avg is None:
        avg = Fraction(declared / duration).limit_denominator(1001000) if declared and duration > 0 else fps

    estimate = duration * float(avg)
    if declared:
        # An edit list can hide declared frames (e.g. a stream-copied cut): trust the duration then.
        n_frames = declared if declared <= estimate + 0.5 else max(1, round(estimate))
    else:
        n_frames = max(1, round(estimate))

    audio = None
    astream = _audio_stream(container)
    if astream is not None:
        atb = _frac(astream.time_base) or Fraction(1, astream.sample_rate or 1)
        audio = AudioInfo(
            codec=astream.codec_context.name,
            sample_rate=int(astream.sample_rate or 0),
            channels=int(astream.channels or 0),
            layout=astream.layout.name if astream.layout is not None else "",
            duration_s=float(astream.duration * atb) if astream.duration else None,
            start_s=float(astream.start_time * atb) if astream.start_time is not None else start_s,
        )

    return VideoInfo(
        path=path, container=container.format.name, codec=stream.codec_context.name,
        pix_fmt=first.format.name, width=width, height=height, rotation=rotation, fps=fps, avg_fps=avg,
        time_base=time_base, n_frames=n_frames, frames_declared=declared > 0, duration_s=duration,
        start_s=start_s, audio=audio, file_size=path.stat().st_size, bit_rate=container.bit_rate or None,
    )


# ----------------------------------------------------------------------------------------------------
# video reading
# ----------------------------------------------------------------------------------------------------
@dataclass
class FrameWindow:
    """A run of consecutive frames.

    * ``index`` -- window number (0, 1, ...); ``start`` -- index of its first frame in the whole video.
    * ``frames`` -- ``[T, H, W, 3]`` uint8 RGB, upright, C-contiguous.
    * ``pts`` -- ``[T]`` int64 source timestamps in ``info.time_base`` (kept for VFR).
    * ``times`` -- ``[T]`` float64 seconds relative to ``info.start_s``.
    """

    index: int
    start: int
    frames: np.ndarray
    pts: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def _iter_frames(
    path: Path, info: VideoInfo, start_s: float, duration_s: float | None, size: tuple[int, int] | None
) -> Iterator[tuple[int, np.ndarray, int, float]]:
    """Yield ``(frame_index, rgb [H, W, 3] uint8 upright, pts, time_s)`` for frames in the trim range.

    Decodes from the beginning (exact indices); checks at EOF that no frames went missing.
    """
    eps = 1e-6
    end_s = None if duration_s is None else start_s + duration_s
    tb = info.time_base
    step = max(1, round(1 / (info.fps * tb)))  # pts ticks of one frame, for frames without pts
    if size is None:
        out_w, out_h = info.stored_size
    else:
        w, h = int(size[0]), int(size[1])
        if w < 1 or h < 1:
            raise ValueError(f"size must be positive (W, H), got {size!r}")
        out_w, out_h = (h, w) if info.rotation in (90, 270) else (w, h)

    container = _open_input(path)
    n = 0
    kept = 0
    last_pts: int | None = None
    reached_end = True
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames, None)
            except _AV_ERRORS as err:
                raise MediaError(f"{path.name}: corrupt video data after {n} frames ({_reason(err)})") from err
            if frame is None:
                break
            pts = frame.pts
            if pts is None:
                pts = frame.dts if frame.dts is not None else (0 if last_pts is None else last_pts + step)
            last_pts = pts
            t = float(pts * tb) - info.start_s
            index = n
            n += 1
            if t < start_s - eps:
                continue
            if end_s is not None and t >= end_s - eps:
                reached_end = False
                break
            with _media_errors(path, "cannot convert video frame"):
                rgb = frame.to_ndarray(format="rgb24", width=out_w, height=out_h)
            kept += 1
            yield index, rotate_upright(rgb, info.rotation), int(pts), t
    finally:
        container.close()

    if reached_end:
        if n == 0:
            raise MediaError(f"{path.name}: contains no video frames")
        # A declared count is exact; an estimate (duration x average rate) gets 10% slack.
        expected = info.n_frames if info.frames_declared else int(0.9 * info.n_frames)
        if n < expected:
            about = "" if info.frames_declared else "about "
            raise MediaError(f"{path.name}: truncated or corrupt: decoded {n} of {about}{info.n_frames} frames")
    if kept == 0:
        raise MediaError(f"{path.name}: no video frames between {start_s:.3f}s and "
                         f"{'the end' if end_s is None else f'{end_s:.3f}s'}")


def iter_windows(
    path: str | os.PathLike[str],
    window: int,
    *,
    info: VideoInfo | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[FrameWindow]:
    """Stream the video as windows of ``window`` consecutive frames (the last one may be shorter).

    ``start_s``/``duration_s`` keep only frames whose time (relative to ``info.start_s``) lies in
    ``[start_s, start_s + duration_s)``. ``size=(W, H)`` rescales the upright frames (bilinear).
    Holds one window in memory. Raises :class:`MediaError` for unreadable/corrupt data, if no frame was
    decoded, or (at the end) if fewer frames than ``info.n_frames`` were decoded (a truncated file).
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    path = _check_file(path)
    info = info or probe(path)
    out_w, out_h = size if size is not None else (info.width, info.height)

    buf = pts = times = None
    count = start = w_index = 0
    for index, rgb, p, t in _iter_frames(path, info, start_s, duration_s, size):
        if buf is None:
            buf = np.empty((window, out_h, out_w, 3), dtype=np.uint8)
            pts = np.empty(window, dtype=np.int64)
            times = np.empty(window, dtype=np.float64)
            start = index
        buf[count], pts[count], times[count] = rgb, p, t
        count += 1
        if count == window:
            yield FrameWindow(w_index, start, buf, pts, times)
            buf = pts = times = None
            count = 0
            w_index += 1
    if buf is not None and count:
        yield FrameWindow(w_index, start, buf[:count], pts[:count], times[:count])


def read_video_frames(
    path: str | os.PathLike[str],
    *,
    info: VideoInfo | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the frames one by one as ``[H, W, 3]`` uint8 RGB upright arrays (same checks as iter_windows)."""
    path = _check_file(path)
    info = info or probe(path)
    for _, rgb, _, _ in _iter_frames(path, info, start_s, duration_s, size):
        yield rgb


def frame_count(path: str | os.PathLike[str]) -> int:
    """Exact number of video frames, by decoding the whole stream (no pixel conversion)."""
    path = _check_file(path)
    container = _open_input(path)
    n = 0
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        with _media_errors(path, "corrupt video data"):
            for _ in container.decode(stream):
                n += 1
    finally:
        container.close()
    return n


# ----------------------------------------------------------------------------------------------------
# audio reading
# ----------------------------------------------------------------------------------------------------
def _silence_frame(like: av.AudioFrame, samples: int) -> av.AudioFrame:
    """A silent frame with the format, layout and rate of ``like``."""
    fmt = like.format
    dtype = _SAMPLE_DTYPES[fmt.name.rstrip("p")]
    channels = like.layout.nb_channels
    shape = (channels, samples) if fmt.is_planar else (1, samples * channels)
    zero = 128 if dtype is np.uint8 else 0
    frame = av.AudioFrame.from_ndarray(np.full(shape, zero, dtype=dtype), format=fmt.name,
                                       layout=like.layout)
    frame.sample_rate = like.sample_rate
    return frame


def read_audio(
    path: str | os.PathLike[str],
    *,
    info: VideoInfo | None = None,
    sample_rate: int = 44100,
    mono: bool = True,
    start_s: float = 0.0,
    duration_s: float | None = None,
    chunk_samples: int = 44100 * 10,
) -> Iterator[np.ndarray]:
    """Stream the first audio track as float32 ``[C, n]`` chunks in [-1, 1] on the *video* timeline.

    * Resampled to ``sample_rate`` by PyAV's ``AudioResampler`` (streaming). ``mono=True`` -> ``C = 1``,
      the mean of the source channels; else ``C`` = the source's channel count.
    * Sample 0 is at ``info.start_s + start_s``: earlier audio is dropped, a late start is filled with
      zeros, gaps in the audio timestamps (> 10 ms) are filled with zeros.
    * The total is exactly ``round(D * sample_rate)`` samples, ``D = duration_s`` or
      ``info.duration_s - start_s``: AAC end padding is cut, short audio is zero-padded.
    * Chunks have ``chunk_samples`` samples (the last may be shorter). Nothing is yielded if the file
      has no audio stream.
    """
    if chunk_samples < 1:
        raise ValueError("chunk_samples must be >= 1")
    path = _check_file(path)
    info = info or probe(path)
    if info.audio is None:
        return
    length = duration_s if duration_s is not None else info.duration_s - start_s
    total = max(0, round(length * sample_rate))
    if total == 0:
        return
    origin = info.start_s + start_s
    channels = 1 if mono else max(1, info.audio.channels)

    buf = np.zeros((channels, chunk_samples), dtype=np.float32)
    fill = 0  # samples in buf
    emitted = 0  # samples yielded so far
    position: int | None = None  # timeline index (output samples) of the next resampled sample

    def place(arr: np.ndarray) -> Iterator[np.ndarray]:
        """Put resampled ``[C, n]`` audio at ``position`` on the timeline; yield full chunks."""
        nonlocal fill, emitted, position
        assert position is not None
        if mono and arr.shape[0] > 1:
            arr = arr.mean(axis=0, keepdims=True)
        elif arr.shape[0] != channels:
            raise MediaError(f"{path.name}: audio channel count changes mid-stream")
        n = arr.shape[1]
        begin = position
        position += n
        if begin + n <= emitted + fill:  # entirely before what we already have (dropped / overlap)
            return
        lead = begin - (emitted + fill)
        if lead < 0:  # partly before: drop that part
            arr = arr[:, -lead:]
            lead = 0
        yield from put(None, lead)
        yield from put(arr, arr.shape[1])

    def put(arr: np.ndarray | None, n: int) -> Iterator[np.ndarray]:
        """Append ``n`` samples (zeros if ``arr`` is None), up to ``total``; yield full chunks."""
        nonlocal fill, emitted
        offset = 0
        n = min(n, total - emitted - fill)
        while n > 0:
            k = min(n, chunk_samples - fill)
            if arr is None:
                buf[:, fill:fill + k] = 0.0
            else:
                buf[:, fill:fill + k] = arr[:, offset:offset + k]
            fill += k
            offset += k
            n -= k
            if fill == chunk_samples:
                yield buf.copy()
                emitted += fill
                fill = 0

    resampler = AudioResampler(format="fltp", rate=sample_rate)
    container = _open_input(path)
    try:
        stream = _audio_stream(container)
        if stream is None:
            return
        next_src: int | None = None  # expected pts (in stream time base) of the next decoded frame
        with _media_errors(path, "corrupt audio data"):
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    frame_s = float(frame.pts * frame.time_base)
                    if position is None:
                        position = round((frame_s - origin) * sample_rate)
                    elif next_src is not None:
                        gap_s = float((frame.pts - next_src) * frame.time_base)
                        if gap_s > _AUDIO_GAP_TOLERANCE_S:
                            gap = _silence_frame(frame, round(gap_s * frame.sample_rate))
                            gap.pts, gap.time_base = next_src, frame.time_base
                            for out in _resample(resampler, gap, path):
                                yield from place(out.to_ndarray())
                    next_src = frame.pts + round(frame.samples / (frame.sample_rate * frame.time_base))
                elif position is None:
                    position = round(-start_s * sample_rate)
                for out in _resample(resampler, frame, path):
                    yield from place(out.to_ndarray())
                if emitted + fill >= total:
                    break
            else:
                for out in _resample(resampler, None, path):
                    yield from place(out.to_ndarray())
    finally:
        container.close()

    yield from put(None, total - emitted - fill)  # pad short audio with silence
    if fill:
        yield buf[:, :fill].copy()


def _resample(resampler: AudioResampler, frame: av.AudioFrame | None, path: Path) -> list[av.AudioFrame]:
    try:
        return resampler.resample(frame)
    except ValueError as err:  # "Frame does not match AudioResampler setup."
        raise MediaError(f"{path.name}: audio format changes mid-stream ({_reason(err)})") from err


# ----------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------
def _as_fraction(value: Fraction | int | float | str) -> Fraction:
    frac = Fraction(value)
    if isinstance(value, float):
        frac = frac.limit_denominator(1001000)
    if frac <= 0:
        raise ValueError(f"frame rate must be positive, got {value!r}")
    return frac


#: Encoders :class:`VideoWriter` accepts; ``"auto"`` = ``h264_nvenc`` when a CUDA device is present and the
#: driver opens it, else ``libx264``.
VIDEO_ENCODERS = ("auto", "libx264", "h264_nvenc")
#: NVENC preset (p1 fastest .. p7 best) standing in for each x264 preset.
_NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p3",
                  "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7"}


def _cuda_present() -> bool:
    """Whether a CUDA device is visible: torch's answer when torch is already imported, else the driver's
    device node (this module does not import torch)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return bool(torch.cuda.is_available())
        except Exception:  # noqa: BLE001 -- a broken CUDA setup means "no CUDA" here
            return False
    return os.path.exists("/dev/nvidiactl")


class VideoWriter:
    """Streaming H.264 (yuv420p, BT.709 limited range, faststart) mp4 writer: libx264, or NVENC on a GPU.

    ``width``/``height`` are the size of the frames passed to :meth:`write`. Odd sizes are padded to even
    (4:2:0 needs even sizes) by replicating the last row/column; :attr:`padded_size` is the
    written ``(W, H)``. ``fps`` is the encoder rate (it also sets the last frame's duration); frame
    timestamps come from ``pts`` (in ``time_base``, default ``1/fps``) or from the frame index.
    Given ``pts`` are written minus ``pts_origin`` (default: the first written frame's pts, so the video
    starts at 0; pass the pts of the timeline origin to keep a sub-frame offset after a trim).
    Timestamps are forced strictly increasing. Pixels are converted with BT.709 (limited range) and the
    stream is tagged so.

    ``crf``/``preset`` are x264's (``preset`` one of ``settings.X264_PRESETS``, default
    ``settings.DEFAULT_PRESET``, chosen by measurement: benchmarks/README.md, "x264 preset").
    ``encoder``: ``"libx264"``, ``"h264_nvenc"`` (constant quality ``cq = crf``, preset mapped to p1..p7), or
    ``"auto"`` (NVENC when a CUDA device is present, else libx264). If NVENC fails to open or to encode the first
    frame, the writer falls back to libx264 silently; :attr:`encoder` names the encoder in use.
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: Fraction,
                 time_base: Fraction | None = None, crf: int = 18, preset: str = DEFAULT_PRESET, *,
                 pts_origin: int | None = None, encoder: str = "libx264") -> None:
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        if self.width < 1 or self.height < 1:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        if preset not in X264_PRESETS:
            raise ValueError(f"unknown x264 preset {preset!r}: use one of {', '.join(X264_PRESETS)}")
        if encoder not in VIDEO_ENCODERS:
            raise ValueError(f"unknown video encoder {encoder!r}: use one of {', '.join(VIDEO_ENCODERS)}")
        self.fps = _as_fraction(fps)
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.fps
        self.padded_size = (self.width + self.width % 2, self.height + self.height % 2)
        self.crf, self.preset = int(crf), str(preset)
        self.frames_written = 0
        self._first_pts: int | None = None if pts_origin is None else int(pts_origin)
        self._last_pts: int | None = None
        self._closed = False
        self._fallback_pending = False  # NVENC in use and no frame encoded yet
        # one RGB input frame (and a writable view of its pixels) and one scaler, reused for every frame (_to_yuv)
        pw, ph = self.padded_size
        self._rgb = av.VideoFrame(pw, ph, "rgb24")
        line = self._rgb.planes[0].line_size
        self._rgb_view = np.frombuffer(self._rgb.planes[0], np.uint8).reshape(ph, line)[:, :pw * 3].reshape(ph, pw, 3)
        self._scaler = VideoReformatter()
        if encoder == "auto":
            encoder = "h264_nvenc" if _cuda_present() else "libx264"
        #: The encoder in use: ``"libx264"`` or ``"h264_nvenc"`` (after any fallback).
        self.encoder = encoder
        if encoder == "h264_nvenc":
            try:
                self._open("h264_nvenc")
                self._fallback_pending = True
                return
            except MediaError:
                pass
        self._open("libx264")

    def _open(self, codec: str) -> None:
        """Create the container and the video stream with ``codec`` (NVENC: also open it now, so a missing
        driver shows here). Raises :class:`MediaError`; leaves no file behind on failure."""
        with _media_errors(self.path, "cannot create video file"):
            container = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
            try:
                stream = container.add_stream(codec, rate=self.fps)
                stream.width, stream.height = self.padded_size
                stream.pix_fmt = "yuv420p"
                stream.time_base = self.time_base
                stream.codec_context.time_base = self.time_base
                cc = stream.codec_context
                cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # tv, BT.709
                if codec == "h264_nvenc":
                    stream.options = {"preset": _NVENC_PRESETS[self.preset], "rc": "vbr", "cq": str(self.crf),
                                      "b": "0"}
                    cc.open()
                else:
                    stream.options = {"crf": str(self.crf), "preset": self.preset}
            except BaseException:
                container.close()
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise
        self._container, self._stream, self.encoder = container, stream, codec

    def _fall_back(self) -> None:
        """NVENC failed before any packet was written: start over with libx264."""
        self._fallback_pending = False
        with contextlib.suppress(*_AV_ERRORS):
            self._container.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._open("libx264")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def write(self, frames: np.ndarray, pts: np.ndarray | None = None) -> None:
        """Encode ``frames`` ``[T, H, W, 3]`` (or one ``[H, W, 3]``) uint8 RGB; ``pts`` ``[T]`` int in time_base."""
        if self._closed:
            raise ValueError("VideoWriter is closed")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames [T, {self.height}, {self.width}, 3], got "
                             f"{frames.dtype} {list(frames.shape)}")
        if pts is not None:
            pts = np.asarray(pts, dtype=np.int64).reshape(-1)
            if pts.shape[0] != frames.shape[0]:
                raise ValueError(f"got {frames.shape[0]} frames but {pts.shape[0]} pts")
        with _media_errors(self.path, "cannot encode video"):
            for i in range(frames.shape[0]):
                if pts is None:
                    p = round(self.frames_written / (self.fps * self.time_base))
                else:
                    p = int(pts[i])
                    if self._first_pts is None:
                        self._first_pts = p
                    p -= self._first_pts
                if self._last_pts is not None and p <= self._last_pts:
                    p = self._last_pts + 1  # keep timestamps strictly increasing (muxer requirement)
                self._last_pts = p
                frame = self._to_yuv(frames[i])
                frame.pts = p
                frame.time_base = self.time_base
                self._container.mux(self._encode(frame))
                self.frames_written += 1

    def _to_yuv(self, img: np.ndarray) -> av.VideoFrame:
        """uint8 ``[H, W, 3]`` RGB -> a new yuv420p BT.709 limited-range frame of :attr:`padded_size`.

        The RGB frame and the scaler are made once and reused (a fresh 720p frame per call cost ~3 ms in
        allocation and two copies under the GIL); the scaler runs on this thread alone (the stages already
        keep the cores busy). Odd sizes: the last row/column is replicated."""
        view = self._rgb_view
        h, w = self.height, self.width
        view[:h, :w] = img
        if w < view.shape[1]:
            view[:h, w:] = view[:h, w - 1:w]
        if h < view.shape[0]:
            view[h:] = view[h - 1:h]
        return self._scaler.reformat(self._rgb, format="yuv420p", dst_colorspace=Colorspace.ITU709,
                                     dst_color_range=ColorRange.MPEG, threads=1)

    def _encode(self, frame: av.VideoFrame | None) -> list[av.Packet]:
        """Encode one frame; NVENC failing on the first frame falls back to libx264 (and retries it)."""
        if not self._fallback_pending:
            return self._stream.encode(frame)
        try:
            packets = self._stream.encode(frame)
        except _AV_ERRORS:
            self._fall_back()
            return self._stream.encode(frame)
        self._fallback_pending = False
        return packets

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            with _media_errors(self.path, "cannot finish video file"):
                self._container.mux(self._encode(None))
        finally:
            with _media_errors(self.path, "cannot finish video file"):
                self._container.close()

    def _abort(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(*_AV_ERRORS):
                self._container.close()


class WavWriter:
    """Streaming 16-bit little-endian PCM WAV writer; :meth:`write` takes float32 ``[C, n]`` in [-1, 1]."""

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, channels: int = 1) -> None:
        self.path = Path(path)
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.samples_written = 0
        try:
            self._wav = wave.open(str(self.path), "wb")
        except OSError as err:
            raise MediaError(f"{self.path.name}: cannot create audio file ({_reason(err)})") from err
        self._wav.setnchannels(self.channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.sample_rate)
        self._closed = False

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, audio: np.ndarray) -> None:
        """Append ``audio`` ``[C, n]`` (or ``[n]`` when mono) float in [-1, 1] (clipped)."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1 and self.channels == 1:
            audio = audio[None]
        if audio.ndim != 2 or audio.shape[0] != self.channels:
            raise ValueError(f"expected audio [{self.channels}, n], got {list(audio.shape)}")
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
        try:
            self._wav.writeframes(np.ascontiguousarray(pcm.T).tobytes())
        except OSError as err:
            raise MediaError(f"{self.path.name}: cannot write audio ({_reason(err)})") from err
        self.samples_written += audio.shape[1]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._wav.close()
            except OSError as err:
                raise MediaError(f"{self.path.name}: cannot finish audio file ({_reason(err)})") from err


# ----------------------------------------------------------------------------------------------------
# mux
# ----------------------------------------------------------------------------------------------------
def _named_layout(layout: Any) -> str:
    """A named channel layout for an encoder ("1 channels" from a plain WAV -> "mono")."""
    name = layout.name if layout is not None else ""
    if name and "channels" not in name:
        return name
    n = layout.nb_channels if layout is not None else 1
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}.get(n, "stereo")


def _packet_time(packet: av.Packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base) if ts is not None and packet.time_base is not None else 0.0


def _video_packets(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if packet.dts is None and packet.pts is None:  # demuxer flush packet
            continue
        yield packet


def _aac_packets(container: av.container.InputContainer, astream: av.AudioStream,
                 out_stream: av.AudioStream, max_samples: int) -> Iterator[av.Packet]:
    """Decode the WAV, cut it to ``max_samples``, encode to AAC (1024-sample frames); yield packets."""
    rate = out_stream.codec_context.sample_rate
    resampler = AudioResampler(format="fltp", layout=out_stream.codec_context.layout, rate=rate,
                               frame_size=out_stream.codec_context.frame_size or 1024)
    done = 0

    def encode(frames: list[av.AudioFrame]) -> Iterator[av.Packet]:
        nonlocal done
        for frame in frames:
            if done >= max_samples:
                return
            if done + frame.samples > max_samples:
                arr = frame.to_ndarray()[:, : max_samples - done]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format="fltp",
                                                   layout=out_stream.codec_context.layout)
                frame.sample_rate = rate
            frame.pts = done
            frame.time_base = Fraction(1, rate)
            done += frame.samples
            yield from out_stream.encode(frame)

    for frame in container.decode(astream):
        yield from encode(resampler.resample(frame))
        if done >= max_samples:
            break
    else:
        yield from encode(resampler.resample(None))
    yield from out_stream.encode(None)


def mux(video_path: str | os.PathLike[str], audio_path: str | os.PathLike[str] | None,
        out_path: str | os.PathLike[str], *, audio_bitrate: int = 128_000) -> None:
    """Write a browser-playable mp4: H.264 packets copied from ``video_path`` + ``audio_path`` as AAC.

    The audio (a WAV, normally from :class:`WavWriter`) is encoded at its own rate and channel layout and
    cut to the video's duration; packets are interleaved by time; ``movflags=+faststart``. With
    ``audio_path=None`` the video is just remuxed. ``out_path`` is written via a temporary file in the
    same folder and renamed at the end.
    """
    video_path, out_path = _check_file(video_path), Path(out_path)
    audio_file = _check_file(audio_path) if audio_path is not None else None
    tmp = out_path.with_name(f".{out_path.stem}.partial{os.getpid()}.mp4")
    vin = _open_input(video_path)
    ain = _open_input(audio_file) if audio_file is not None else None
    try:
        vstream = _video_stream(vin, video_path)
        vtb = _frac(vstream.time_base) or Fraction(1, 90000)
        if vstream.duration:
            video_s = float(vstream.duration * vtb)
        else:
            video_s = (vin.duration or 0) / av.time_base
        astream = _audio_stream(ain) if ain is not None else None
        if ain is not None and astream is None:
            raise MediaError(f"{audio_file.name}: no audio stream")  # type: ignore[union-attr]

        with _media_errors(out_path, "cannot write video file"):
            out = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            with _media_errors(out_path, "cannot write video file"):
                vout = out.add_stream_from_template(vstream)
                packets: list[Iterator[av.Packet]] = [_video_packets(vin, vstream)]
                outs: list[Any] = [vout]
                if astream is not None:
                    aout = out.add_stream("aac", rate=astream.sample_rate)
                    aout.layout = _named_layout(astream.layout)
                    aout.bit_rate = int(audio_bitrate)
                    aout.time_base = Fraction(1, astream.sample_rate)
                    max_samples = round(video_s * astream.sample_rate) if video_s > 0 else 1 << 62
                    packets.append(_aac_packets(ain, astream, aout, max_samples))  # type: ignore[arg-type]
                    outs.append(aout)
                _interleave(out, packets, outs)
        finally:
            with _media_errors(out_path, "cannot finish video file"):
                out.close()
        os.replace(tmp, out_path)
    finally:
        vin.close()
        if ain is not None:
            ain.close()
        with contextlib.suppress(OSError):
            tmp.unlink()


def _interleave(out: av.container.OutputContainer, sources: list[Iterator[av.Packet]],
                streams: list[Any]) -> None:
    """Mux packets from several time-ordered sources, always taking the earliest next packet."""
    heads: list[av.Packet | None] = [next(src, None) for src in sources]
    while True:
        live = [i for i, p in enumerate(heads) if p is not None]
        if not live:
            return
        i = min(live, key=lambda k: _packet_time(heads[k]))  # type: ignore[arg-type]
        packet = heads[i]
        assert packet is not None
        packet.stream = streams[i]
        out.mux(packet)
        heads[i] = next(sources[i], None)

