"""Deterministic synthetic test videos, written with PyAV (no external tools, no network).

``make_video`` is shared by every test module: keep it small, fast and deterministic.

Picture content: frame ``i`` is a smooth RGB gradient that moves by a few pixels per frame, plus a
bright square in the top-left corner (so orientation can be checked after rotation) -- every frame
differs from its neighbours, and a codec at the default quality reproduces it within a few grey levels.

Audio: a 440 Hz sine at amplitude 0.5 on every channel (channel ``c`` is scaled by ``1 - 0.1*c`` so
channels differ), AAC in the mp4 container.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: FFmpeg channel layout names by channel count.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}

#: Audio modes accepted by ``make_video(audio=...)``.
AUDIO_MODES = ("sine", "late", "short", "long", "gap")

#: Seconds of silence (no audio packets) before the audio starts in ``audio="late"`` mode.
LATE_AUDIO_S = 0.5

#: Length of the hole in the audio timestamps in ``audio="gap"`` mode (starts at 1/3 of the video).
GAP_S = 0.25

TONE_HZ = 440.0


def synth_frame(i: int, width: int, height: int) -> np.ndarray:
    """Frame ``i`` of the synthetic picture: ``[height, width, 3]`` uint8 RGB.

    A gradient that moves with ``i`` plus a white 1/4-size square in the top-left corner (a marker for
    orientation checks: after a 90-degree counter-clockwise rotation it is in the bottom-left corner).
    """
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    r = 40 + 150 * (0.5 + 0.5 * np.sin(2 * np.pi * (x + 3 * i) / max(width, 8)))
    g = 40 + 150 * (0.5 + 0.5 * np.sin(2 * np.pi * (y + 2 * i) / max(height, 8)))
    b = 40 + 150 * (0.5 + 0.5 * np.cos(2 * np.pi * (x + y - 4 * i) / max(width + height, 8)))
    img = np.stack(np.broadcast_arrays(r, g, b), axis=-1)
    img[: max(1, height // 4), : max(1, width // 4)] = 245
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


def vfr_pts(n_frames: int, fps: Fraction, time_base: Fraction) -> list[int]:
    """Variable-rate presentation timestamps (in ``time_base``) averaging ``fps``.

    Frame intervals cycle through 0.5, 1.5, 1.0, 0.75, 1.25 times the nominal interval, so the average
    rate over every 5 frames is exactly ``fps``.
    """
    steps = (0.5, 1.5, 1.0, 0.75, 1.25)
    ticks = 1 / (fps * time_base)  # ticks per nominal frame
    out, t = [], 0.0
    for i in range(n_frames):
        out.append(round(t))
        t += float(ticks) * steps[i % len(steps)]
    return out


def make_video(
    path: str | Path,
    *,
    width: int = 64,
    height: int = 48,
    n_frames: int = 30,
    fps: Fraction | int = Fraction(25),
    audio: bool | str = True,
    audio_rate: int = 48000,
    audio_channels: int = 2,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    rotation: int = 0,
    vfr: bool = False,
    faststart: bool = False,
) -> Path:
    """Write a small deterministic test video and return its path.

    * ``width x height`` are the *stored* (coded) size; with ``rotation`` 90/270 a player shows it
      transposed. Odd sizes need a 4:4:4 ``pix_fmt`` (e.g. ``yuv444p``) with libx264.
    * ``fps`` is the nominal rate; the video lasts ``n_frames / fps`` seconds. With ``vfr=True`` the frame
      intervals vary (see :func:`vfr_pts`), time base 1/90000.
    * ``audio``: ``False`` -> no audio stream; ``True``/``"sine"`` -> 440 Hz for the whole video;
      ``"late"`` -> the audio starts :data:`LATE_AUDIO_S` after the video; ``"short"`` -> audio covers only
      the first half; ``"long"`` -> audio runs 0.5 s past the end of the video; ``"gap"`` -> no audio
      packets for :data:`GAP_S` seconds after the first third (timestamps jump).
    * ``rotation``: counter-clockwise display rotation written as the stream's display matrix
      (read back as ``VideoFrame.rotation``).
    * ``faststart``: move the index (moov) to the front (needed to make a *truncated* file readable).
    """
    path = Path(path)
    fps = Fraction(fps)
    if audio is True:
        audio = "sine"
    if audio and audio not in AUDIO_MODES:
        raise ValueError(f"audio must be a bool or one of {AUDIO_MODES}, got {audio!r}")
    subsampled = any(tag in pix_fmt for tag in ("420", "422", "411", "nv12", "nv21"))
    if subsampled and (width % 2 or (height % 2 and "422" not in pix_fmt)):
        raise ValueError(f"{width}x{height} needs a 4:4:4 pix_fmt such as yuv444p, not {pix_fmt}")

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4" if path.suffix in ("", ".mp4") else None,
                 options=options) as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        time_base = Fraction(1, 90000) if vfr else 1 / fps
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        if codec == "libx264":
            # Deterministic, quick, and with B-frames (pts != dts, like real files).
            vs.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        if rotation:
            vs.set_display_rotation(rotation)

        as_ = None
        if audio:
            as_ = out.add_stream("aac", rate=audio_rate)
            as_.layout = _LAYOUTS[audio_channels]
            as_.time_base = Fraction(1, audio_rate)

        pts = vfr_pts(n_frames, fps, time_base) if vfr else list(range(n_frames))
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(synth_frame(i, width, height), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts = pts[i]
            frame.time_base = time_base
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))

        if as_ is not None:
            _write_tone(out, as_, audio, n_frames / fps, audio_rate, audio_channels)
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.AudioStream, mode: str,
                video_s: Fraction, rate: int, channels: int) -> None:
    """Encode the 440 Hz tone for ``make_video``'s audio ``mode`` (whole 1024-sample AAC frames)."""
    start_s = LATE_AUDIO_S if mode == "late" else 0.0
    end_s = {"short": float(video_s) / 2, "long": float(video_s) + 0.5}.get(mode, float(video_s))
    start, end = round(start_s * rate), round(end_s * rate)
    frame_size = stream.codec_context.frame_size or 1024
    gains = (1.0 - 0.1 * np.arange(channels, dtype=np.float32))[:, None]
    gap = (round(float(video_s) / 3 * rate), round((float(video_s) / 3 + GAP_S) * rate)) if mode == "gap" else None
    for s0 in range(start, end, frame_size):
        n = min(frame_size, end - s0)
        if gap is not None and s0 + n > gap[0] and s0 < gap[1]:
            continue
        t = (np.arange(s0, s0 + n) - start) / rate
        tone = (0.5 * np.sin(2 * math.pi * TONE_HZ * t)).astype(np.float32)[None, :] * gains
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone), format="fltp",
                                           layout=_LAYOUTS[channels])
        frame.sample_rate = rate
        frame.pts = s0
        frame.time_base = Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
