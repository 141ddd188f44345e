"""Reconstruction metrics: video PSNR / SSIM / LPIPS (batched torch) and audio SI-SDR / mel distance.

Conventions (documented for users in ``docs/METRICS.md``; default = TokenBench after its uint8 fix):

* Inputs are decoded **uint8 RGB** frames ``[T, H, W, 3]`` at native resolution; every value is cast
  before arithmetic (no uint8 wrap-around).
* **PSNR** (headline): one MSE pooled over all frames, pixels and channels of the video, peak 255,
  ``10 log10(255^2 / MSE)``. Sums of squared errors are exact int64. Identical videos give ``inf`` and
  ``lossless=True`` (TokenBench would print 186.6 dB because of a float32 eps; we never show that).
  The mean of per-frame PSNR is reported separately and labelled; it is >= pooled PSNR (Jensen) unless
  lossless frames (infinite PSNR), which it leaves out, are present.
* **SSIM**: exactly scikit-image ``structural_similarity(data_range=255, channel_axis=-1)``: 7x7 uniform
  window, sample covariance (N/(N-1)), K1 0.01, K2 0.03, 3-px border cropped, mean over R,G,B; then the
  mean over frames. Window sums are exact integers (separable 7-tap sums in int32) and so are SSIM's
  cancelling differences, so the only rounding is the final per-pixel ratio
  (float32, ~1e-7 relative); the per-frame mean is float64 (|ours - skimage float64| ~1e-8).
* **Speed**: PSNR and SSIM come from one pass over each window, in strips of rows sized to the CPU cache
  (whole frames in chunks on an accelerator), on the device of ``VideoMetrics`` with work buffers reused
  across strips; ``benchmarks/bench_metrics.py`` prints the cost per 720p frame.
* **LPIPS**: v0.1 VGG on [-1, 1] (:mod:`avtok_ui.lpips_net`), mean over frames, or *unavailable* with a
  reason -- never a made-up number.
* Across videos (done by callers): the unweighted mean of per-video values.

JSON: Python's ``json`` writes ``inf``/``nan`` as invalid tokens. :func:`json_safe` maps every
non-finite float to ``None``; the meaning stays in explicit flags (``lossless``, ``lpips_unavailable``,
``lossless_frames``). :meth:`VideoMetrics.per_frame` already follows that rule (lossless frame -> None).

Audio (the numbers DAC reports): SI-SDR in dB (zero-mean, scale-invariant, float64) and DAC's multi-scale
log-mel L1 distance with the training config of ``descript-audio-codec`` (``conf/base.yml``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .devices import resolve_device
from .lpips_net import LPIPS, LPIPSUnavailable, lpips_status

__all__ = [
    "LPIPS",
    "LPIPSUnavailable",
    "lpips_status",
    "sse_frames",
    "mse_frames",
    "psnr_frames",
    "psnr_from_mse",
    "ssim_frames",
    "VideoMetrics",
    "CONVENTIONS",
    "si_sdr",
    "mel_distance",
    "mel_filterbank",
    "audio_metrics",
    "format_summary",
    "json_safe",
    "MEL_WINDOW_LENGTHS",
    "MEL_N_MELS",
]

PEAK = 255.0
SSIM_WIN = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
_NP = SSIM_WIN * SSIM_WIN  # 49 pixels per window
# SSIM rewritten on exact integer window sums S (see _ssim_strip):
#   ux = Sx/49, vx = (49 Sxx - Sx^2) / (49*48)  (sample covariance) =>
#   SSIM = (2 Sx Sy + 49^2 C1)(2 cxy + 49*48 C2) / ((Sx^2 + Sy^2 + 49^2 C1)(cxx + cyy + 49*48 C2))
#   with cxy = 49 Sxy - Sx Sy and cxx + cyy = 49 (Sxx + Syy) - (Sx^2 + Sy^2).
_C1N = (SSIM_K1 * PEAK) ** 2 * _NP * _NP
_C2N = (SSIM_K2 * PEAK) ** 2 * _NP * (_NP - 1)
_INT32_MAX = 2**31 - 1

#: CPU: elements (rows x 3W) per operation and per torch thread. The frame is cut into strips of rows
#: this size so that every intermediate stays in the L2/L3 cache (a whole 720p plane does not).
_CPU_ELEMS_PER_THREAD = 128 * 1024
#: Accelerators: frame pixels (T*H*W) per chunk (whole frames; ~210 MB of work buffers per 720p frame).
_DEVICE_PIXEL_BUDGET = 1280 * 720 * 4

CONVENTIONS: dict[str, str] = {
    "psnr": "pooled-MSE PSNR over all frames, pixels and channels on [0,255] (TokenBench)",
    "psnr_mean_per_frame": (
        "mean of per-frame PSNR (each frame's MSE over pixels and channels, peak 255); lossless frames "
        "(infinite PSNR) are left out and counted in n_lossless_frames; >= pooled PSNR whenever no frame is lossless (Jensen)"
    ),
    "ssim": "scikit-image structural_similarity, 7x7 uniform window, data_range 255, mean over RGB and frames",
    "lpips": "LPIPS v0.1 VGG on [-1,1], mean over frames",
    "lossless": "identical videos: PSNR = inf, shown as '∞ (lossless)' (TokenBench's script would print 186.6 dB)",
    "scored_on": "decoded uint8 RGB frames before any video re-encode",
    "across_videos": "unweighted mean of per-video values (TokenBench)",
}


# ----- input handling ---------------------------------------------------------------------------------
def _as_tensor(x: np.ndarray | Tensor, name: str) -> Tensor:
    if isinstance(x, Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if t.dtype != torch.uint8:
        raise TypeError(f"{name}: expected uint8 RGB frames, got {t.dtype}")
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"{name}: expected [T, H, W, 3] frames, got shape {tuple(t.shape)}")
    return t


def _pair(orig: np.ndarray | Tensor, recon: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
    a, b = _as_tensor(orig, "orig"), _as_tensor(recon, "recon")
    if a.shape != b.shape:
        raise ValueError(f"orig and recon differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if b.device != a.device:
        b = b.to(a.device)
    return a, b


# ----- exact frame statistics -------------------------------------------------------------------------
# Frames are used in their own layout: a uint8 [T, H, W, 3] frame is a [H, 3W] matrix of interleaved
# R,G,B, so a horizontal 7-pixel window is 7 taps 3 elements apart and every channel is filtered at once
# (no permute, no per-channel loop). All window sums are exact int32 (<= 49*2*255^2), the four of them
# (x, y, x^2 + y^2, xy) filtered in one stacked pass; SSIM's cancelling differences are formed in int32
# too, so the only rounding is the final float32 ratio per pixel (~1e-7) and its float64 mean.
# Few, cache-sized operations: each one is an OpenMP fork/join when torch uses several threads.
class _Buffers:
    """Flat work buffers reused across strips (allocating per operation costs page faults)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._flat: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        n = math.prod(shape)
        buf = self._flat.get(name)
        if buf is None or buf.dtype != dtype or buf.numel() < n:
            buf = torch.empty(n, dtype=dtype, device=self.device)
            self._flat[name] = buf
        return buf[:n].view(shape)


def _box7(q: Tensor, buf: _Buffers, tag: str) -> Tensor:
    """Valid 7x7 window sums of ``q`` ``[..., R, 3W]`` (interleaved RGB rows) -> ``[..., R-6, 3W-18]``.

    Separable, 4 vectorised adds per direction (pairs, quads, +pair, +single); exact for integer dtypes.
    The result is a view into ``buf`` (valid until the next call with the same ``tag``).
    """
    *lead, r, n = q.shape
    ld = tuple(lead)
    nw, rv = n - 3 * (SSIM_WIN - 1), r - (SSIM_WIN - 1)
    s2 = buf.get(tag + "1", (*ld, r, n - 3), q.dtype)
    torch.add(q[..., : n - 3], q[..., 3:], out=s2)  # taps 0,1
    s4 = buf.get(tag + "2", (*ld, r, n - 9), q.dtype)
    torch.add(s2[..., : n - 9], s2[..., 6:], out=s4)  # taps 0..3
    h = s4[..., :nw]
    h.add_(s2[..., 12 : 12 + nw]).add_(q[..., 18 : 18 + nw])  # taps 0..6 (strided view of s4)
    v2 = buf.get(tag + "1", (*ld, r - 1, nw), q.dtype)  # s2 is no longer needed
    torch.add(h[..., : r - 1, :], h[..., 1:, :], out=v2)
    out = buf.get(tag + "3", (*ld, rv, nw), q.dtype)
    torch.add(v2[..., :rv, :], v2[..., 2 : 2 + rv, :], out=out)
    return out.add_(v2[..., 4 : 4 + rv, :]).add_(h[..., 6 : 6 + rv, :])


def _row_sums_int64(x: Tensor, max_abs: int, buf: _Buffers, tag: str) -> Tensor:
    """Exact per-row sums of an int32 ``[n, R, L]`` tensor whose entries are within ``max_abs`` -> int64
    ``[n]`` (summed over rows too). Row sums stay in int32 (vectorised, no int64 copy) when they cannot
    overflow."""
    if x.shape[-1] * max_abs <= _INT32_MAX:
        rs = buf.get(tag, x.shape[:-1], torch.int32)
        torch.sum(x, dim=-1, dtype=torch.int32, out=rs)
        return rs.sum(dim=-1, dtype=torch.int64)
    return x.sum(dim=(-2, -1), dtype=torch.int64)


def _plan(t: int, h: int, w: int, device: torch.device, halo: int) -> tuple[int, int]:
    """(frames per chunk, output rows per strip) for ``t`` frames of ``h x w``.

    On CPU a strip holds about ``_CPU_ELEMS_PER_THREAD * torch.get_num_threads()`` elements per plane (small
    frames: several whole frames at once); elsewhere whole frames within ``_DEVICE_PIXEL_BUDGET``.
    The plan never depends on ``t`` beyond capping the frame count, so per-frame results do not depend on
    how a video is cut into windows.
    """
    rows_out = h - halo
    if device.type == "cpu":
        budget = _CPU_ELEMS_PER_THREAD * max(1, torch.get_num_threads())
        per_row = 3 * w
        if h * per_row <= budget:
            return max(1, min(t, budget // (h * per_row))), rows_out
        return 1, max(8, min(rows_out, budget // per_row - halo))
    return max(1, min(t, _DEVICE_PIXEL_BUDGET // max(1, h * w))), rows_out


def _frame_stats(a: Tensor, b: Tensor, want_ssim: bool = True) -> tuple[Tensor, Tensor | None]:
    """uint8 ``[T,H,W,3]`` pair on one device -> (exact SSE int64 ``[T]``, SSIM float64 ``[T]`` or None).

    Both on the inputs' device. Works in strips of rows (CPU) or chunks of whole frames (accelerators),
    with work buffers allocated once per call.
    """
    t, h, w, _ = a.shape
    if want_ssim and (h < SSIM_WIN or w < SSIM_WIN):
        raise ValueError(f"SSIM needs frames of at least 7x7 (skimage's window), got {w}x{h}")
    dev = a.device
    sse = torch.zeros(t, dtype=torch.int64, device=dev)
    ssim = torch.zeros(t, dtype=torch.float64, device=dev) if want_ssim else None
    if t == 0:
        return sse, ssim
    n = 3 * w
    a3, b3 = a.reshape(t, h, n), b.reshape(t, h, n)  # a view for contiguous frames
    buf = _Buffers(dev)
    halo = SSIM_WIN - 1 if want_ssim else 0
    fb, rows = _plan(t, h, w, dev, halo)
    for f0 in range(0, t, fb):
        f1 = min(t, f0 + fb)
        for r0 in range(0, h - halo, rows):
            ro = min(rows, h - halo - r0)
            last = r0 + ro == h - halo
            a8, b8 = a3[f0:f1, r0 : r0 + ro + halo], b3[f0:f1, r0 : r0 + ro + halo]
            own = ro + halo if last else ro  # input rows whose squared errors this strip counts
            if ssim is None:
                sse[f0:f1] += _sse_strip(a8, b8, buf)
            else:
                s, m = _ssim_strip(a8, b8, own, buf)
                sse[f0:f1] += s
                ssim[f0:f1] += m
    if ssim is not None:
        ssim /= (h - halo) * (n - 3 * halo)
    return sse, ssim


def _sse_strip(a8: Tensor, b8: Tensor, buf: _Buffers) -> Tensor:
    """uint8 ``[n, R, 3W]`` pair -> exact sum of squared errors per frame, int64 ``[n]``."""
    x = buf.get("x", a8.shape, torch.int32)
    y = buf.get("y", b8.shape, torch.int32)
    x.copy_(a8)
    y.copy_(b8)
    x.sub_(y)
    x.mul_(x)
    return _row_sums_int64(x, 255 * 255, buf, "rs")


def _ssim_strip(a8: Tensor, b8: Tensor, own: int, buf: _Buffers) -> tuple[Tensor, Tensor]:
    """uint8 ``[n, R, 3W]`` pair (R = output rows + 6) -> (SSE of the first ``own`` rows, int64 ``[n]``;
    sum of the SSIM map over the strip's R-6 output rows and all channels, float64 ``[n]``)."""
    i32, f32 = torch.int32, torch.float32
    nf, r, n = a8.shape
    q = buf.get("q", (4, nf, r, n), i32)  # x, y, x^2 + y^2, x*y
    x, y = q[0], q[1]
    x.copy_(a8)
    y.copy_(b8)
    torch.mul(x, y, out=q[3])
    torch.mul(x, x, out=q[2]).addcmul_(y, y)
    # SSE = sum (x^2 + y^2) - 2 sum xy over the rows this strip owns
    sse = _row_sums_int64(q[2, :, :own], 2 * 255 * 255, buf, "rq")
    sse -= 2 * _row_sums_int64(q[3, :, :own], 255 * 255, buf, "rp")
    s4 = _box7(q, buf, "b")  # int32 [4, nf, ro, nw]: all four window sums in one pass
    sx, sy = s4[0], s4[1]
    ro, nw = sx.shape[-2:]
    s4[3].mul_(_NP).addcmul_(sx, sy, value=-1)  # cxy = 49 Sxy - Sx Sy                  |.| < 1.6e8
    s4[2].mul_(_NP).addcmul_(sx, sx, value=-1).addcmul_(sy, sy, value=-1)  # cxx + cyy, 0 <= . < 3.2e8
    tmp = buf.get("t", (nf, ro, nw), i32)
    torch.mul(sx, sx, out=tmp).addcmul_(sy, sy)  # Sx^2 + Sy^2                       < 3.2e8
    sy.mul_(sx)  # Sx Sy                                                          < 1.6e8
    sx.copy_(tmp)
    # s4 = [Sx^2 + Sy^2, Sx Sy, cxx + cyy, cxy]: one conversion, one broadcast add of the constants
    f = buf.get("f", (4, nf, ro, nw), f32)
    f.copy_(s4).add_(_ssim_consts(f.device))
    f[1].mul_(f[3])  # (Sx Sy + C1N/2)(cxy + C2N/2) = numerator / 4
    f[0].mul_(f[2])  # denominator
    f[1].div_(f[0])  # SSIM / 4
    rows = buf.get("rf", (nf, ro), f32)
    torch.sum(f[1], dim=-1, out=rows)
    return sse, rows.sum(dim=-1, dtype=torch.float64).mul_(4.0)


_CONSTS: dict[torch.device, Tensor] = {}


def _ssim_consts(device: torch.device) -> Tensor:
    """float32 ``[4, 1, 1, 1]``: the constants added to [Sx^2 + Sy^2, Sx Sy, cxx + cyy, cxy]."""
    c = _CONSTS.get(device)
    if c is None:
        c = torch.tensor([_C1N, _C1N / 2, _C2N, _C2N / 2], dtype=torch.float32, device=device).view(4, 1, 1, 1)
        _CONSTS[device] = c
    return c


# ----- PSNR -------------------------------------------------------------------------------------------
def sse_frames(orig: np.ndarray | Tensor, recon: np.ndarray | Tensor) -> Tensor:
    """Exact per-frame sum of squared errors over pixels and channels: uint8 ``[T,H,W,3]`` -> int64 ``[T]``
    (on the inputs' device)."""
    a, b = _pair(orig, recon)
    return _frame_stats(a, b, want_ssim=False)[0]


def mse_frames(orig: np.ndarray | Tensor, recon: np.ndarray | Tensor) -> Tensor:
    """Per-frame MSE on [0, 255] over pixels and channels: uint8 ``[T,H,W,3]`` -> float64 ``[T]``."""
    a, b = _pair(orig, recon)
    return sse_frames(a, b).to(torch.float64) / (a.shape[1] * a.shape[2] * a.shape[3])


def psnr_from_mse(mse: Tensor | float) -> Tensor | float:
    """``10 log10(255^2 / mse)`` in float64; ``mse == 0`` -> ``inf``."""
    if isinstance(mse, Tensor):
        m = mse.to(torch.float64)
        return torch.where(m > 0, 10.0 * torch.log10(PEAK * PEAK / m), torch.full_like(m, math.inf))
    return math.inf if mse <= 0 else 10.0 * math.log10(PEAK * PEAK / float(mse))


def psnr_frames(orig: np.ndarray | Tensor, recon: np.ndarray | Tensor) -> Tensor:
    """Per-frame PSNR (dB, peak 255): uint8 ``[T,H,W,3]`` -> float64 ``[T]``; identical frame -> ``inf``.

    For the headline video number use :class:`VideoMetrics` (pooled MSE), not the mean of this.
    """
    return psnr_from_mse(mse_frames(orig, recon))  # type: ignore[return-value]


# ----- SSIM -------------------------------------------------------------------------------------------
def ssim_frames(orig: np.ndarray | Tensor, recon: np.ndarray | Tensor) -> Tensor:
    """Per-frame SSIM equal to ``skimage.metrics.structural_similarity(o, r, data_range=255,
    channel_axis=-1)``: uint8 ``[T,H,W,3]`` (any device) -> float64 ``[T]`` on that device.

    Frames must be at least 7x7 (skimage raises too).
    """
    a, b = _pair(orig, recon)
    return _frame_stats(a, b, want_ssim=True)[1]  # type: ignore[return-value]


# ----- streaming accumulator --------------------------------------------------------------------------
class VideoMetrics:
    """Streaming PSNR/SSIM/LPIPS of one video, fed window by window.

    Keeps only per-frame scalars (exact SSE, SSIM, LPIPS): memory is O(frames), not pixels.

    ``lpips``: ``"auto"`` (load real LPIPS ``lpips_net`` if its weights are present, else record why not),
    ``None``/``"off"`` (not computed), or a ready :class:`LPIPS` (e.g. a resident one).
    ``device``: where metrics are computed (default: CUDA if available, else CPU).
    ``batch``: cap on frames per LPIPS trunk pass (default: the device's pixel budget decides -- a whole
    17-frame 720p window in two passes on an accelerator, one frame per pass on CPU).

    :meth:`update` takes uint8 RGB ``[T, H, W, 3]`` numpy arrays or torch tensors on any device (values
    0..255; any strides, contiguous is fastest); frames are scored on ``device`` (tensors already there
    are not copied). One instance is fed from one thread at a time.
    ``scored_on``: label of what the frames are (default: decoder output before any re-encode).
    """

    def __init__(
        self,
        *,
        lpips: LPIPS | None | str = "auto",
        device: str | torch.device | None = None,
        lpips_net: str = "vgg",
        batch: int | None = None,
        scored_on: str = CONVENTIONS["scored_on"],
    ) -> None:
        self.device = resolve_device(device)
        self.batch = None if batch is None else max(1, int(batch))
        self.scored_on = scored_on
        self.resolution_note = "no resize or subsampling by the scorer"
        self._lpips: LPIPS | None = None
        self.lpips_unavailable: str | None = None
        if isinstance(lpips, LPIPS):
            self._lpips = lpips
        elif lpips is None or lpips == "off":
            self.lpips_unavailable = "not computed (disabled)"
        elif lpips == "auto":
            try:
                self._lpips = LPIPS.from_pretrained(net=lpips_net, device=self.device)
            except LPIPSUnavailable as err:
                self.lpips_unavailable = str(err)
        else:
            raise ValueError(f"lpips must be 'auto', 'off', None or an LPIPS instance, got {lpips!r}")
        self._sse: list[int] = []
        self._ssim: list[float] = []
        self._lpips_vals: list[float] = []
        self.height: int | None = None
        self.width: int | None = None

    @property
    def n_frames(self) -> int:
        """Frames scored so far."""
        return len(self._sse)

    def update(self, orig: np.ndarray | Tensor, recon: np.ndarray | Tensor) -> None:
        """Score one window: ``orig`` and ``recon`` uint8 RGB ``[T, H, W, 3]`` of one shape (T may be 0),
        numpy arrays or torch tensors on any device (moved to ``self.device`` if elsewhere)."""
        a, b = _pair(orig, recon)
        t, h, w, _ = a.shape
        if self.height is None:
            self.height, self.width = h, w
        elif (h, w) != (self.height, self.width):
            raise ValueError(f"frame size changed within a video: {w}x{h} after {self.width}x{self.height}")
        if t == 0:
            return
        a, b = a.to(self.device, non_blocking=True), b.to(self.device, non_blocking=True)
        sse, ssim = _frame_stats(a, b, want_ssim=True)
        if self._lpips is not None:
            if min(h, w) < self._lpips.min_size:
                self._disable_lpips(
                    f"unavailable: frames {w}x{h} are smaller than LPIPS {self._lpips.net}'s minimum "
                    f"{self._lpips.min_size}x{self._lpips.min_size}"
                )
            else:
                try:
                    vals = self._lpips(a, b, batch=self.batch)
                    self._lpips_vals.extend(vals.cpu().tolist())
                except RuntimeError as err:  # e.g. out of memory: report, never crash the run
                    first = (str(err).splitlines() or [type(err).__name__])[0][:160]
                    self._disable_lpips(f"unavailable: LPIPS failed at frame {self.n_frames} ({first})")
        self._sse.extend(sse.cpu().tolist())
        self._ssim.extend(ssim.cpu().tolist())  # type: ignore[union-attr]

    def _disable_lpips(self, reason: str) -> None:
        self._lpips = None
        self._lpips_vals = []
        self.lpips_unavailable = reason

    def _conventions(self) -> dict[str, str]:
        conv = dict(CONVENTIONS)
        conv["scored_on"] = self.scored_on
        if self._lpips is not None:
            conv["lpips"] = f"{self._lpips.description}, mean over frames"
        conv["resolution"] = (
            f"{self.width}x{self.height}, {self.n_frames} frames as given to the scorer "
            f"({self.resolution_note})"
        )
        return conv

    def summary(self) -> dict[str, Any]:
        """Per-video numbers and their labels (see module docstring). Raises ValueError if no frames."""
        n = self.n_frames
        if n == 0:
            raise ValueError("no frames were scored")
        assert self.height is not None and self.width is not None
        px = self.height * self.width * 3
        total = sum(self._sse)
        mse = total / (n * px)
        per = [psnr_from_mse(s / px) for s in self._sse]
        finite = [p for p in per if math.isfinite(p)]
        lp = None
        if self._lpips is not None and len(self._lpips_vals) == n:
            lp = float(np.mean(self._lpips_vals))
        return {
            "psnr": psnr_from_mse(mse),
            "lossless": total == 0,
            "mse": mse,
            "psnr_mean_per_frame": float(np.mean(finite)) if finite else math.inf,
            "n_lossless_frames": n - len(finite),
            "ssim": float(np.mean(self._ssim)),
            "lpips": lp,
            "lpips_unavailable": None if lp is not None else (self.lpips_unavailable or "unavailable"),
            "lpips_valid": bool(self._lpips.valid) if (lp is not None and self._lpips is not None) else None,
            "n_frames": n,
            "height": self.height,
            "width": self.width,
            "conventions": self._conventions(),
        }

    def per_frame(self) -> dict[str, list[float | None] | None]:
        """Per-frame series, JSON-safe: ``psnr`` (a lossless frame is ``None``), ``ssim``, ``lpips``
        (``None`` instead of a list when LPIPS is unavailable)."""
        px = (self.height or 0) * (self.width or 0) * 3
        psnr: list[float | None] = []
        for s in self._sse:
            v = psnr_from_mse(s / px)
            psnr.append(v if math.isfinite(v) else None)
        lp = (
            list(self._lpips_vals)
            if self._lpips is not None and len(self._lpips_vals) == self.n_frames
            else None
        )
        return {"psnr": psnr, "ssim": list(self._ssim), "lpips": lp}


# ----- formatting -------------------------------------------------------------------------------------
def json_safe(obj: Any) -> Any:
    """Recursively replace non-finite floats by ``None`` (JSON has no inf/nan); tensors/arrays -> lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (Tensor, np.ndarray)):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


def _fmt_db(v: float | None) -> str:
    if v is None:
        return "n/a"
    if math.isinf(v) and v > 0:
        return "∞ (lossless)"
    if math.isnan(v):
        return "n/a"
    return f"{v:.2f} dB"


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable block for a :meth:`VideoMetrics.summary` (and optional ``"audio"`` sub-dict)."""
    conv = summary.get("conventions", CONVENTIONS)
    lines = []
    lines.append(f"PSNR   {_fmt_db(summary.get('psnr'))}   [{conv.get('psnr', CONVENTIONS['psnr'])}]")
    pf = summary.get("psnr_mean_per_frame")
    extra = ""
    if summary.get("n_lossless_frames"):
        extra = f", {summary['n_lossless_frames']} lossless frame(s) left out"
    lines.append(f"       mean of per-frame PSNR {_fmt_db(pf)}{extra}")
    lines.append(f"SSIM   {summary['ssim']:.4f}   [{conv.get('ssim', CONVENTIONS['ssim'])}]")
    if summary.get("lpips") is not None:
        lines.append(f"LPIPS  {summary['lpips']:.4f}   [{conv.get('lpips', CONVENTIONS['lpips'])}]")
    else:
        lines.append(f"LPIPS  n/a   [{summary.get('lpips_unavailable') or 'unavailable'}]")
    if "n_frames" in summary:
        lines.append(f"Frames {summary['n_frames']} at {summary.get('width')}x{summary.get('height')}")
    if "scored_on" in conv:
        lines.append(f"Scored on {conv['scored_on']}")
    audio = summary.get("audio")
    if isinstance(audio, dict):
        if audio.get("available"):
            sd = audio.get("si_sdr_db")
            sd_s = (
                "n/a"
                if sd is None or (isinstance(sd, float) and math.isnan(sd))
                else ("∞ (identical)" if math.isinf(sd) else f"{sd:.2f} dB")
            )
            md = audio.get("mel_distance")
            md_s = "n/a" if md is None or math.isnan(md) else f"{md:.4f}"
            lines.append(f"Audio  SI-SDR {sd_s}, mel distance {md_s}")
            if audio.get("note"):
                lines.append(f"       {audio['note']}")
        else:
            lines.append(f"Audio  n/a   [{audio.get('reason', 'unavailable')}]")
    return "\n".join(lines)


# ----- audio ------------------------------------------------------------------------------------------
#: DAC's MelSpectrogramLoss as configured for training (descript-audio-codec conf/base.yml):
#: 7 scales, hop = window/4, hann window, centre reflect padding, pow 1.0, clamp 1e-5, log10, L1 mean,
#: magnitude term weight 0, summed over scales; mel filters librosa-compatible (Slaney scale and norm).
MEL_WINDOW_LENGTHS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
MEL_N_MELS: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
MEL_CLAMP_EPS = 1e-5

AUDIO_CONVENTIONS: dict[str, str] = {
    "si_sdr_db": "scale-invariant SDR in dB (zero-mean, float64), channels flattened like DAC's SISDRLoss",
    "mel_distance": (
        "DAC multi-scale mel distance (conf/base.yml): sum over windows 32..2048 (hop/4, hann, n_mels 5..320, "
        "Slaney mel) of mean |log10(max(mel,1e-5))| differences; 0 = identical"
    ),
}


def _audio_2d(x: np.ndarray | Tensor, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected audio [N] or [C, N], got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name}: expected float audio in [-1, 1], got {a.dtype}")
    return a


def si_sdr(reference: np.ndarray | Tensor, estimate: np.ndarray | Tensor) -> float:
    """Scale-invariant SDR (dB) of ``estimate`` against ``reference`` (same shape, [N] or [C, N]).

    Both are flattened (as DAC's ``SISDRLoss`` does) and made zero-mean; computed in float64 without eps:
    ``10 log10(|a r|^2 / |e - a r|^2)`` with ``a = <e, r> / <r, r>``.
    Returns ``inf`` for a perfect (possibly rescaled) estimate, ``-inf`` for an estimate with no reference
    component, and ``nan`` when the reference is silent (SI-SDR undefined).
    """
    r = _audio_2d(reference, "reference").astype(np.float64).ravel()
    e = _audio_2d(estimate, "estimate").astype(np.float64).ravel()
    if r.shape != e.shape:
        raise ValueError(f"reference and estimate differ in length: {r.size} vs {e.size} samples")
    r = r - r.mean()
    e = e - e.mean()
    rr = float(np.dot(r, r))
    if rr <= 0.0:
        return math.nan
    target = (float(np.dot(e, r)) / rr) * r
    noise = e - target
    tt, nn_ = float(np.dot(target, target)), float(np.dot(noise, noise))
    if nn_ == 0.0:
        return math.inf
    if tt == 0.0:
        return -math.inf
    return 10.0 * math.log10(tt / nn_)


# Slaney mel scale (librosa's default): linear below 1 kHz, logarithmic above
_MEL_F_SP = 200.0 / 3
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    log_part = _MEL_MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / _MEL_MIN_LOG_HZ) / _MEL_LOGSTEP
    return np.where(f >= _MEL_MIN_LOG_HZ, log_part, f / _MEL_F_SP)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    log_part = _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (m - _MEL_MIN_LOG_MEL))
    return np.where(m >= _MEL_MIN_LOG_MEL, log_part, _MEL_F_SP * m)


def mel_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters ``[n_mels, 1 + n_fft // 2]`` float32, equal to ``librosa.filters.mel``
    defaults (Slaney mel scale, Slaney area normalisation) -- the filters DAC/audiotools use."""
    if fmax is None:
        fmax = sr / 2.0
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_MEL_CACHE: dict[tuple[int, int, int], Tensor] = {}


def _log_mel(x: Tensor, sr: int, win: int, n_mels: int) -> Tensor:
    """float32 [C, N] -> log10(clamp(mel magnitude, 1e-5)) [C, n_mels, frames] (DAC's recipe, pow 1)."""
    window = torch.hann_window(win, periodic=True, dtype=torch.float32)
    spec = torch.stft(
        x, n_fft=win, hop_length=win // 4, window=window, center=True, pad_mode="reflect", return_complex=True
    )
    mag = spec.abs()  # [C, F, frames]
    key = (sr, win, n_mels)
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = torch.from_numpy(mel_filterbank(sr, win, n_mels))
    mel = torch.einsum("mf,cft->cmt", _MEL_CACHE[key], mag)
    return mel.clamp(min=MEL_CLAMP_EPS).log10()


def mel_distance(
    reference: np.ndarray | Tensor, estimate: np.ndarray | Tensor, sample_rate: int = 44100
) -> float:
    """DAC's multi-scale mel distance (the ``mel`` number DAC reports) between two signals of one shape.

    Sum over the 7 DAC scales of the mean absolute difference of log10 mel magnitudes (float32, like DAC).
    Identical signals give 0. Returns ``nan`` when the signal is too short for the largest window's
    reflect padding (<= 1024 samples).
    """
    r = _audio_2d(reference, "reference").astype(np.float32)
    e = _audio_2d(estimate, "estimate").astype(np.float32)
    if r.shape != e.shape:
        raise ValueError(f"reference and estimate differ in shape: {r.shape} vs {e.shape}")
    if r.shape[1] <= max(MEL_WINDOW_LENGTHS) // 2:
        return math.nan
    rt, et = torch.from_numpy(np.ascontiguousarray(r)), torch.from_numpy(np.ascontiguousarray(e))
    total = 0.0
    with torch.inference_mode():
        for win, n_mels in zip(MEL_WINDOW_LENGTHS, MEL_N_MELS, strict=True):
            total += float(
                (_log_mel(et, sample_rate, win, n_mels) - _log_mel(rt, sample_rate, win, n_mels)).abs().mean()
            )
    return total


def audio_metrics(
    reference: np.ndarray | Tensor | None, estimate: np.ndarray | Tensor | None, sample_rate: int = 44100
) -> dict[str, Any]:
    """SI-SDR and mel distance of a reconstructed soundtrack, with notes.

    Missing audio -> ``{"available": False, "reason": ...}``. Lengths that differ are compared over the
    shorter one (noted); channel counts that differ are both mixed down to mono (noted).
    """
    if reference is None and estimate is None:
        return {"available": False, "reason": "the video has no audio track"}
    if reference is None:
        return {"available": False, "reason": "no source audio to compare with"}
    if estimate is None:
        return {"available": False, "reason": "no reconstructed audio"}
    r = _audio_2d(reference, "reference")
    e = _audio_2d(estimate, "estimate")
    notes: list[str] = []
    if r.shape[0] != e.shape[0]:
        notes.append(f"channel counts differ ({r.shape[0]} vs {e.shape[0]}): both mixed down to mono")
        r, e = r.mean(axis=0, keepdims=True), e.mean(axis=0, keepdims=True)
    if r.shape[1] != e.shape[1]:
        n = min(r.shape[1], e.shape[1])
        notes.append(f"lengths differ ({r.shape[1]} vs {e.shape[1]} samples): scored on the first {n}")
        r, e = r[:, :n], e[:, :n]
    n = int(r.shape[1])
    if n == 0:
        return {"available": False, "reason": "audio is empty"}
    sd = si_sdr(r, e)
    md = mel_distance(r, e, sample_rate)
    if math.isnan(sd):
        notes.append("reference is silent: SI-SDR undefined")
    elif math.isinf(sd) and sd > 0:
        notes.append("estimate equals the reference up to scale: SI-SDR is infinite")
    if math.isnan(md):
        notes.append(f"too short for the mel distance ({n} samples; needs > {max(MEL_WINDOW_LENGTHS) // 2})")
    return {
        "available": True,
        "si_sdr_db": sd,
        "mel_distance": md,
        "n_samples": n,
        "channels": int(r.shape[0]),
        "sample_rate": int(sample_rate),
        "note": "; ".join(notes),
        "conventions": dict(AUDIO_CONVENTIONS),
    }


class AudioMetrics:
    """Streaming audio scores over a long track, fed chunk by chunk (memory O(1) in track length).

    * ``si_sdr_db``: exactly :func:`si_sdr` of the whole concatenated track (zero-mean, flattened), from
      running sums of ``r``, ``e``, ``r.r``, ``e.e`` and ``e.r`` in float64.
    * ``mel_distance``: :func:`mel_distance` per chunk, averaged weighted by chunk length (chunks of at
      least 4096 samples; a whole-track mel distance would need the whole track in memory).
    """

    def __init__(self, sample_rate: int = 44100, scored_on: str = "") -> None:
        self.sample_rate = sample_rate
        self.scored_on = scored_on
        self.n = 0
        self._sr = self._se = self._rr = self._ee = self._er = 0.0
        self._mel_sum = 0.0
        self._mel_n = 0

    def update(self, reference: np.ndarray | Tensor, estimate: np.ndarray | Tensor) -> None:
        """Add one time-aligned chunk: ``[N]`` or ``[C, N]`` float in [-1, 1], same shape for both."""
        r = _audio_2d(reference, "reference").astype(np.float64).ravel()
        e = _audio_2d(estimate, "estimate").astype(np.float64).ravel()
        if r.shape != e.shape:
            raise ValueError(f"reference and estimate differ in length: {r.size} vs {e.size} samples")
        self.n += r.size
        self._sr += float(r.sum())
        self._se += float(e.sum())
        self._rr += float(r @ r)
        self._ee += float(e @ e)
        self._er += float(e @ r)
        if r.size >= 4096:
            d = mel_distance(r.astype(np.float32), e.astype(np.float32), self.sample_rate)
            if math.isfinite(d):
                self._mel_sum += d * r.size
                self._mel_n += r.size

    def si_sdr(self) -> float:
        if self.n == 0:
            return math.nan
        n = self.n
        rr = self._rr - self._sr * self._sr / n  # sum (r - mean r)^2
        ee = self._ee - self._se * self._se / n
        er = self._er - self._se * self._sr / n
        if rr <= 1e-12 * max(1.0, n):
            return math.nan
        a = er / rr
        tt = a * a * rr
        nn_ = ee - 2 * a * er + tt
        if nn_ <= 1e-15 * max(tt, 1e-30):
            return math.inf
        if tt == 0.0:
            return -math.inf
        return 10.0 * math.log10(tt / nn_)

    def summary(self) -> dict[str, Any]:
        sdr = self.si_sdr()
        out: dict[str, Any] = {
            "si_sdr_db": sdr,
            "mel_distance": self._mel_sum / self._mel_n if self._mel_n else None,
            "n_samples": self.n,
            "sample_rate": self.sample_rate,
            "scored_on": self.scored_on,
            "conventions": {
                "si_sdr_db": "scale-invariant SDR over the whole track, zero-mean (dB, higher is better)",
                "mel_distance": "DAC multi-scale log-mel L1 distance (DAC conf/base.yml), mean over chunks "
                                "weighted by length (lower is better)",
            },
        }
        if math.isnan(sdr):
            out["note"] = "reference audio is silent: SI-SDR undefined"
        return out
