"""Pictures for the app, drawn with numpy + Pillow only (no matplotlib): error heatmaps with a colour bar,
audio waveforms and log-frequency spectrograms, and a frame strip helper.

Every function returns ``np.ndarray [H, W, 3] uint8`` RGB (Gradio shows it; PNG keeps it lossless).
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Anchor colours of a perceptually ordered dark-to-bright map (close to matplotlib's "inferno").
_ANCHORS = np.array([
    (0.00, 0, 0, 4), (0.13, 31, 12, 72), (0.25, 85, 15, 109), (0.38, 136, 34, 106), (0.50, 186, 54, 85),
    (0.63, 227, 89, 51), (0.75, 249, 140, 10), (0.88, 249, 201, 50), (1.00, 252, 255, 164),
], dtype=np.float64)
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), _ANCHORS[:, 0], _ANCHORS[:, c]) for c in (1, 2, 3)],
                axis=1).round().astype(np.uint8)

_BG = (255, 255, 255)
_FG = (40, 40, 40)
_GRID = (215, 215, 215)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with the dark-to-bright map."""
    idx = np.clip(np.nan_to_num(values) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return _LUT[idx]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 (no scalable default font)
        return ImageFont.load_default()


def _text_w(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    box = draw.textbbox((0, 0), text, font=font)
    return int(box[2] - box[0])


# ----------------------------------------------------------------------------------------------------
# frames
# ----------------------------------------------------------------------------------------------------
def error_heatmap(orig: np.ndarray, recon: np.ndarray, vmax: float = 64.0, min_width: int = 640) -> np.ndarray:
    """|original - reconstruction| per pixel (mean over R, G, B, in grey levels 0..255), coloured with
    ``0 -> black`` and ``>= vmax -> pale yellow``, with a labelled colour bar underneath. Frames narrower
    than ``min_width`` are enlarged by an integer factor (nearest neighbour) for display."""
    if orig.shape != recon.shape:
        raise ValueError(f"frame shapes differ: {orig.shape} vs {recon.shape}")
    err = np.abs(orig.astype(np.int16) - recon.astype(np.int16)).mean(axis=2)
    img = colormap(err / float(vmax))
    if min_width and img.shape[1] < min_width:  # small frames: enlarge by an integer factor (nearest)
        k = -(-min_width // img.shape[1])
        img = img.repeat(k, axis=0).repeat(k, axis=1)
    h, w = img.shape[:2]
    font = _font(max(11, min(18, w // 60)))
    bar_h = max(10, h // 40)
    pad = 6
    label_h = int(font.size if hasattr(font, "size") else 12) + 4
    out = Image.new("RGB", (w, h + pad + bar_h + label_h + pad), _BG)
    out.paste(Image.fromarray(img), (0, 0))
    bar = colormap(np.linspace(0, 1, w))[None].repeat(bar_h, axis=0)
    out.paste(Image.fromarray(bar), (0, h + pad))
    draw = ImageDraw.Draw(out)
    y = h + pad + bar_h + 2
    ticks = [0, vmax / 4, vmax / 2, 3 * vmax / 4, vmax]
    for t in ticks:
        label = f"{t:.0f}" if t < vmax else f"{t:.0f}+"
        x = int(round(t / vmax * (w - 1)))
        tw = _text_w(draw, label, font)
        draw.text((min(max(0, x - tw // 2), w - tw), y), label, fill=_FG, font=font)
    return np.asarray(out)


def frame_error_stats(orig: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    """PSNR (peak 255, this frame's MSE over pixels and channels) and mean/max absolute error of one frame."""
    d = orig.astype(np.float64) - recon.astype(np.float64)
    mse = float(np.mean(d * d))
    return {
        "psnr": math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse),
        "mean_abs": float(np.abs(d).mean()),
        "max_abs": float(np.abs(d).max()),
    }


# ----------------------------------------------------------------------------------------------------
# audio
# ----------------------------------------------------------------------------------------------------
def read_wav(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV as mono float32 ``[n]`` (channels averaged) and its sample rate."""
    with wave.open(str(path), "rb") as w:
        sr, ch, sw = w.getframerate(), w.getnchannels(), w.getsampwidth()
        n = w.getnframes()
        if max_seconds is not None:
            n = min(n, int(max_seconds * sr))
        raw = w.readframes(n)
    if sw != 2:
        raise ValueError(f"{Path(path).name}: expected 16-bit PCM, got {8 * sw}-bit")
    a = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if ch > 1:
        a = a.reshape(-1, ch).mean(axis=1)
    return a, sr


def _stft_db(x: np.ndarray, sr: int, columns: int, n_fft: int = 2048) -> tuple[np.ndarray, float]:
    """Magnitude spectrogram in dB ``[n_fft//2+1, cols]`` with about ``columns`` columns (max-pooled)."""
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    hop = max(128, (len(x) - n_fft) // max(1, columns - 1) or 128)
    n_frames = 1 + (len(x) - n_fft) // hop
    window = np.hanning(n_fft).astype(np.float32)
    out = np.empty((n_fft // 2 + 1, n_frames), dtype=np.float32)
    step = 512  # frames per chunk (bounded memory for long audio)
    for s in range(0, n_frames, step):
        e = min(n_frames, s + step)
        idx = (np.arange(s, e) * hop)[:, None] + np.arange(n_fft)[None, :]
        seg = x[idx] * window
        mag = np.abs(np.fft.rfft(seg, axis=1)).T
        out[:, s:e] = 20 * np.log10(mag + 1e-6)
    return out, float(hop) / sr


def audio_panel(audio: np.ndarray, sr: int, *, title: str, width: int = 900, wave_h: int = 110,
                spec_h: int = 200, ref_db: float | None = None, dyn_db: float = 80.0) -> tuple[np.ndarray, float]:
    """Waveform (min/max envelope) above a log-frequency spectrogram (30 Hz .. sr/2), with axes.

    ``ref_db``: the dB value mapped to the brightest colour (pass the original's so two panels share one
    scale); returns ``(image, ref_db_used)``.
    """
    left, right, top, gap, bottom = 52, 10, (34 if title else 40), 8, 22  # top: room for the viewer's label
    W = left + width + right
    H = top + wave_h + gap + spec_h + bottom
    img = Image.new("RGB", (W, H), _BG)
    draw = ImageDraw.Draw(img)
    font = _font(12)
    if title:
        tw = _text_w(draw, title, _font(13))
        draw.text((W - right - tw, 12), title, fill=_FG, font=_font(13))
    n = len(audio)
    dur = n / sr if sr else 0.0

    # waveform
    y0 = top
    draw.rectangle([left, y0, left + width - 1, y0 + wave_h - 1], outline=_GRID)
    mid = y0 + wave_h // 2
    draw.line([left, mid, left + width - 1, mid], fill=_GRID)
    if n:
        edges = np.linspace(0, n, width + 1).astype(np.int64)
        edges[-1] = n
        lo = np.minimum.reduceat(audio, np.minimum(edges[:-1], n - 1))
        hi = np.maximum.reduceat(audio, np.minimum(edges[:-1], n - 1))
        half = wave_h / 2 - 2
        for i in range(width):
            ya = mid - int(round(float(np.clip(hi[i], -1, 1)) * half))
            yb = mid - int(round(float(np.clip(lo[i], -1, 1)) * half))
            draw.line([left + i, ya, left + i, max(ya, yb)], fill=(52, 101, 164))
    for v, label in ((1, "+1"), (0, "0"), (-1, "-1")):
        yy = mid - int(round(v * (wave_h / 2 - 2)))
        draw.text((left - 6 - _text_w(draw, label, font), yy - 7), label, fill=_FG, font=font)

    # spectrogram
    y1 = y0 + wave_h + gap
    if n:
        spec, _ = _stft_db(audio, sr, width)
        ref = float(spec.max()) if ref_db is None else float(ref_db)
        fmin, fmax = 30.0, sr / 2
        freqs = fmin * (fmax / fmin) ** (np.arange(spec_h)[::-1] / max(1, spec_h - 1))
        bins = np.clip(np.round(freqs / (sr / 2) * (spec.shape[0] - 1)).astype(int), 0, spec.shape[0] - 1)
        rows = spec[bins]  # [spec_h, frames]
        cols = np.linspace(0, rows.shape[1], width + 1).astype(int)
        cols = np.minimum(cols, rows.shape[1] - 1)
        pooled = np.maximum.reduceat(rows, cols[:-1], axis=1)[:, :width]
        norm = np.clip((pooled - (ref - dyn_db)) / dyn_db, 0, 1)
        pic = colormap(norm)
        if pic.shape[1] != width:
            pic = np.asarray(Image.fromarray(pic).resize((width, spec_h), Image.NEAREST))
        img.paste(Image.fromarray(pic), (left, y1))
        for f in (100, 1000, 10000):
            if fmin < f < fmax:
                yy = y1 + int(round((1 - math.log(f / fmin) / math.log(fmax / fmin)) * (spec_h - 1)))
                label = f"{f // 1000}k" if f >= 1000 else str(f)
                draw.line([left - 4, yy, left, yy], fill=_FG)
                draw.text((left - 6 - _text_w(draw, label, font), yy - 7), label, fill=_FG, font=font)
        draw.text((2, y1 + spec_h // 2 - 7), "Hz", fill=_FG, font=font)
    else:
        ref = 0.0 if ref_db is None else ref_db
        draw.text((left + 8, y1 + 8), "no audio", fill=_FG, font=font)
    draw.rectangle([left, y1, left + width - 1, y1 + spec_h - 1], outline=_GRID)

    # time axis
    if dur > 0:
        step = _nice_step(dur / 8)
        t = 0.0
        while t <= dur + 1e-9:
            x = left + int(round(t / dur * (width - 1)))
            draw.line([x, y1 + spec_h, x, y1 + spec_h + 4], fill=_FG)
            label = f"{t:g}s"
            draw.text((min(x - _text_w(draw, label, font) // 2, W - _text_w(draw, label, font) - 2),
                       y1 + spec_h + 5), label, fill=_FG, font=font)
            t += step
    return np.asarray(img), ref


def audio_panels(original_wav: str | Path | None, recon_wav: str | Path | None,
                 max_seconds: float = 600.0) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Panels for the DAC input and the DAC output with one shared dB scale (the original's peak)."""
    ref = None
    out: list[np.ndarray | None] = []
    for path, title in ((original_wav, ""), (recon_wav, "")):  # the viewer labels them
        if path is None or not Path(path).is_file():
            out.append(None)
            continue
        a, sr = read_wav(path, max_seconds)
        pic, used = audio_panel(a, sr, title=title, ref_db=ref)
        ref = used if ref is None else ref
        out.append(pic)
    return out[0], out[1]


def _nice_step(x: float) -> float:
    if x <= 0:
        return 1.0
    p = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * p >= x:
            return m * p
    return 10 * p
