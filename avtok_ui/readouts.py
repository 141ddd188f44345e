"""Token readouts: how many tokens a setting produces and what they cost, in closed form and from a file.

Pure arithmetic (no models, no I/O beyond what the caller passes in).

Conventions (stated in every readout):

* a *visual token* is one latent position ``(t, y, x)``; CV stores 16 bf16 channels = **32 bytes**, DV one
  uint16 FSQ id = **2 bytes** (the id carries log2(64000) = 15.97 bits).
* an *audio token* is one DAC code (one codebook at one code frame); stored as uint16 (2 bytes), carrying
  10 bits (codebook size 1024).
* raw RGB24 = ``frames x height x width x 3`` bytes of the evaluated (possibly trimmed/resized) video.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .settings import (
    DAC_CODEBOOK_SIZE,
    DAC_HOP,
    DAC_SAMPLE_RATE,
    DV_VOCAB_SIZE,
    VisualSetting,
    audio_code_frames,
)

CONVENTIONS = {
    "visual_token": "one latent position (t,y,x); continuous = C bf16 channels (2C bytes: Cosmos CV C=16, "
                    "diffusers VAEs their latent channels), DV = one FSQ id (2 bytes)",
    "latent_values_per_source_pixel": "visual tokens x values per token (C, or 1 id) / (frames x height x width)",
    "visual_bits_per_source_pixel": "visual tokens x stored bytes per token x 8 / (frames x height x width)",
    "audio_token": "one DAC code (one codebook x one code frame, 10 bits, stored as uint16)",
    "raw_rgb24": "frames x height x width x 3 bytes of the evaluated video",
    "source_file": "source file bytes, pro-rated to the evaluated duration when trimmed",
    "hour_projection": "the same tokens-per-second and bytes-per-second extrapolated to 3600 s",
}


def estimate_tokens(setting: VisualSetting, n_frames: int, height: int, width: int, window: int,
                    duration_s: float, codebooks: int) -> dict[str, Any]:
    """Closed-form token counts for a run, before running it (used by the app and the tests)."""
    t = setting.latent_frames(n_frames, window)
    h, w = setting.latent_grid(height, width)
    n_code = audio_code_frames(int(round(duration_s * DAC_SAMPLE_RATE))) if codebooks > 0 else 0
    return _summarise(setting, t, h, w, codebooks, n_code, duration_s, n_frames, height, width, None, None)


def token_readouts(tf: Any, token_file_bytes: int, source_file_bytes: int | None, duration_s: float,
                   width: int, height: int) -> dict[str, Any]:
    """Readouts of a written token file (:class:`avtok_ui.tokens.TokenFile`, visual may be unloaded)."""
    setting = tf.setting
    _, t, h, w = tf.meta.latent_shape[:4]
    n_frames = int(tf.window_frames.sum())
    if tf.audio_codes is not None:
        n_q, n_code = (int(x) for x in tf.audio_codes.shape)
    else:
        n_q, n_code = 0, 0
    out = _summarise(setting, int(t), int(h), int(w), n_q, n_code, duration_s, n_frames, height, width,
                     token_file_bytes, source_file_bytes)
    if getattr(tf, "audio_latent_offsets", None) is not None:
        per = codes_per_latent(tf.audio_latent_offsets.numpy()).tolist()
        counts: dict[str, int] = {}
        for v in per:
            counts[str(v)] = counts.get(str(v), 0) + 1
        out["audio_code_frames_per_latent"] = {
            "min": min(per), "max": max(per), "mean": sum(per) / len(per),
            "histogram": dict(sorted(counts.items(), key=lambda kv: int(kv[0]))),
            "note": "a window's first latent covers 1 frame, the others tf frames (fewer at a video's end)",
        }
    return out


def _summarise(setting: VisualSetting, t: int, h: int, w: int, n_q: int, n_code: int, duration_s: float,
               n_frames: int, height: int, width: int, file_bytes: int | None,
               source_bytes: int | None) -> dict[str, Any]:
    visual = t * h * w
    audio = n_q * n_code
    total = visual + audio
    payload = visual * setting.bytes_per_token + audio * 2
    raw = n_frames * height * width * 3
    per_s = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: float("nan"))
    stored = file_bytes if file_bytes is not None else payload
    out: dict[str, Any] = {
        "setting": setting.name,
        "latent_grid": {"t": t, "h": h, "w": w},
        "visual_tokens_per_latent_frame": h * w,
        "visual_tokens": visual,
        "audio_codebooks": n_q,
        "audio_code_frames": n_code,
        "audio_tokens": audio,
        "total_tokens": total,
        "audio_share": audio / total if total else 0.0,
        "tokens_per_second": per_s(total),
        "visual_tokens_per_second": per_s(visual),
        "audio_tokens_per_second": per_s(audio),
        "bytes_per_visual_token": setting.bytes_per_token,
        "visual_bits_of_information_per_token": (math.log2(DV_VOCAB_SIZE) if setting.discrete
                                                 else 16 * _channels(setting)),
        "family": getattr(setting, "family", "Cosmos 0.1"),
        "latent_channels": _channels(setting),
        "latent_values_per_source_pixel": (visual * _channels(setting) / (n_frames * height * width)
                                           if n_frames else None),
        "visual_bits_per_source_pixel": (visual * setting.bytes_per_token * 8 / (n_frames * height * width)
                                         if n_frames else None),
        "audio_bits_per_token": math.log2(DAC_CODEBOOK_SIZE),
        "payload_bytes": payload,
        "token_file_bytes": file_bytes,
        "bits_per_source_pixel": stored * 8 / (n_frames * height * width) if n_frames else None,
        "compression_vs_rgb24": raw / stored if stored else None,
        "compression_vs_source_file": (source_bytes / stored) if (source_bytes and stored) else None,
        "hour_projection": {
            "tokens": per_s(total) * 3600,
            "bytes": per_s(stored) * 3600,
        },
        "audio_code_frames_per_second": DAC_SAMPLE_RATE / DAC_HOP if n_q else 0.0,
        "evaluated": {"n_frames": n_frames, "height": height, "width": width, "duration_s": duration_s},
        "conventions": CONVENTIONS,
    }
    return out


def _channels(setting: Any) -> int:
    """Values stored per latent position: the latent channels (continuous) or 1 id (discrete)."""
    return 1 if setting.discrete else int(getattr(setting, "latent_channels", 16))


def format_readouts(r: dict[str, Any]) -> str:
    """Human-readable block for the CLI."""
    g = r["latent_grid"]
    lines = [
        f"tokens ({r['setting']}): latent grid {g['t']} x {g['h']} x {g['w']} -> {r['visual_tokens']:,} visual",
        f"  audio: {r['audio_codebooks']} codebooks x {r['audio_code_frames']:,} code frames = "
        f"{r['audio_tokens']:,} ({100 * r['audio_share']:.1f}% of {r['total_tokens']:,} total)",
        f"  {r['latent_values_per_source_pixel'] or 0:.4f} latent values and "
        f"{r['visual_bits_per_source_pixel'] or 0:.3f} visual bits per source pixel ({r['latent_channels']} per token)",
        f"  {r['tokens_per_second']:,.0f} tokens/s; one hour ~ {r['hour_projection']['tokens']:,.0f} tokens, "
        f"{r['hour_projection']['bytes'] / 1e6:,.1f} MB",
    ]
    if r.get("token_file_bytes"):
        lines.append(
            f"  token file {r['token_file_bytes']:,} bytes = {r['bits_per_source_pixel']:.4f} bits/pixel; "
            f"{r['compression_vs_rgb24']:,.0f}x smaller than raw RGB24"
            + (f", {r['compression_vs_source_file']:.2f}x vs the source file"
               if r.get("compression_vs_source_file") else "")
        )
    return "\n".join(lines)


def codes_per_latent(offsets: Any) -> np.ndarray:
    """Number of code frames of each latent: ``int64 [t]`` = ``diff(offsets)``."""
    off = np.asarray(offsets, dtype=np.int64)
    if off.ndim != 1 or off.shape[0] < 1:
        raise ValueError("offsets must be a 1-D array of t+1 code-frame offsets")
    return np.diff(off)
