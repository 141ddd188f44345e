"""The PSNR/SSIM implementation this branch replaced (avtok_ui/metrics.py at db9b335), kept for
``bench_metrics.py`` only so that before and after are timed side by side in one run. Not used elsewhere.

It permutes each frame to int32 [3, H, W] planes and builds every 7x7 window sum from 12 full-plane adds
(whole frames; CUDA: chunks of 16 720p frames).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from avtok_ui.metrics import _C1N, _C2N, _NP, SSIM_WIN, _pair

_CUDA_PIXEL_BUDGET = 1280 * 720 * 16


def _chunks(t: int, h: int, w: int, device: torch.device) -> Sequence[tuple[int, int]]:
    step = 1 if device.type == "cpu" else max(1, _CUDA_PIXEL_BUDGET // max(1, h * w))
    return [(s, min(t, s + step)) for s in range(0, t, step)]


# ----- PSNR -------------------------------------------------------------------------------------------
def _sse(x: Tensor, y: Tensor) -> Tensor:
    """int32 [n, 3, H, W] pair -> exact int64 sum of squared errors per frame [n]."""
    d = x - y
    return (d * d).sum(dim=(1, 2, 3), dtype=torch.int64)




def sse_frames(orig: np.ndarray | Tensor, recon: np.ndarray | Tensor) -> Tensor:
    """Exact per-frame sum of squared errors over pixels and channels: uint8 ``[T,H,W,3]`` -> int64 ``[T]``."""
    a, b = _pair(orig, recon)
    return _frame_stats(a, b, want_ssim=False)[0]




def _box7(x: Tensor) -> Tensor:
    """Valid 7x7 window sums over the last two dims (exact for integer tensors)."""
    h, w = x.shape[-2:]
    r = x[..., 0 : h - 6, :].clone()
    for i in range(1, SSIM_WIN):
        r += x[..., i : h - 6 + i, :]
    c = r[..., 0 : w - 6].clone()
    for i in range(1, SSIM_WIN):
        c += r[..., i : w - 6 + i]
    return c


def _ssim_planes(x: Tensor, y: Tensor) -> Tensor:
    """skimage-equivalent SSIM of int32 planes ``[..., H, W]`` (values 0..255) -> float64 ``[...]``.

    Integer window sums are exact in int32 (max 49*255^2 < 2^31), so are the (co)variance numerators
    ``49*Sxy - Sx*Sy`` (|.| < 1.6e8). Only the final ratio is rounded (float32).
    """
    sx, sy = _box7(x), _box7(y)
    sxx, syy, sxy = _box7(x * x), _box7(y * y), _box7(x * y)
    p = sx * sy
    q = sx * sx + sy * sy
    cxy = _NP * sxy - p
    v = _NP * (sxx + syy) - q
    f = torch.float32
    num = (2 * p).to(f).add_(_C1N).mul_((2 * cxy).to(f).add_(_C2N))
    den = q.to(f).add_(_C1N).mul_(v.to(f).add_(_C2N))
    return num.div_(den).mean(dim=(-2, -1), dtype=torch.float64)


def _frame_stats(a: Tensor, b: Tensor, want_ssim: bool = True) -> tuple[Tensor, Tensor | None]:
    """uint8 ``[T,H,W,3]`` pair on one device -> (SSE int64 [T], SSIM float64 [T] or None)."""
    t, h, w, _ = a.shape
    if want_ssim and (h < SSIM_WIN or w < SSIM_WIN):
        raise ValueError(f"SSIM needs frames of at least 7x7 (skimage's window), got {w}x{h}")
    sse = torch.empty(t, dtype=torch.int64, device=a.device)
    ssim = torch.empty(t, dtype=torch.float64, device=a.device) if want_ssim else None
    for s, e in _chunks(t, h, w, a.device):
        x = a[s:e].permute(0, 3, 1, 2).to(torch.int32).contiguous()
        y = b[s:e].permute(0, 3, 1, 2).to(torch.int32).contiguous()
        sse[s:e] = _sse(x, y)
        if ssim is not None:
            ssim[s:e] = _ssim_planes(x, y).mean(dim=1)
    return sse, ssim


def ssim_frames(orig: np.ndarray | Tensor, recon: np.ndarray | Tensor) -> Tensor:
    """Per-frame SSIM equal to ``skimage.metrics.structural_similarity(o, r, data_range=255,
    channel_axis=-1)``: uint8 ``[T,H,W,3]`` (any device) -> float64 ``[T]`` on that device.

    Frames must be at least 7x7 (skimage raises too).
    """
    a, b = _pair(orig, recon)
    return _frame_stats(a, b, want_ssim=True)[1]  # type: ignore[return-value]
