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
  mean over frames. Window sums are computed exactly in int32 (uint8 inputs), so the only rounding is the
  final per-pixel ratio (float32, ~1e-7 relative); the per-frame mean is float64.
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
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

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
# SSIM rewritten on exact integer window sums S (see _ssim_planes):
#   ux = Sx/49, vx = (49 Sxx - Sx^2) / (49*48)  (sample covariance) =>
#   SSIM = (2 Sx Sy + 49^2 C1)(2 cxy + 49*48 C2) / ((Sx^2 + Sy^2 + 49^2 C1)(cxx + cyy + 49*48 C2))
_C1N = (SSIM_K1 * PEAK) ** 2 * _NP * _NP
_C2N = (SSIM_K2 * PEAK) ** 2 * _NP * (_NP - 1)

#: Frame pixels (T*H*W) per chunk on CUDA; on CPU we go frame by frame (memory- and cache-friendly).
_CUDA_PIXEL_BUDGET = 1280 * 720 * 16

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


# ----- streaming accumulator --------------------------------------------------------------------------
class VideoMetrics:
    """Streaming PSNR/SSIM/LPIPS of one video, fed window by window.

    Keeps only per-frame scalars (exact SSE, SSIM, LPIPS): memory is O(frames), not pixels.

    ``lpips``: ``"auto"`` (load real LPIPS ``lpips_net`` if its weights are present, else record why not),
    ``None``/``"off"`` (not computed), or a ready :class:`LPIPS` (e.g. a resident one).
    ``device``: where metrics are computed (default: CUDA if available, else CPU).
    ``batch``: frames per LPIPS trunk pass (further capped by a per-device pixel budget).
    ``scored_on``: label of what the frames are (default: decoder output before any re-encode).
    """

    def __init__(
        self,
        *,
        lpips: LPIPS | None | str = "auto",
        device: str | torch.device | None = None,
        lpips_net: str = "vgg",
        batch: int = 8,
        scored_on: str = CONVENTIONS["scored_on"],
    ) -> None:
        self.device = (
            torch.device(device)
            if device is not None
            else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.batch = max(1, int(batch))
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
        """Score one window: two uint8 ``[T, H, W, 3]`` arrays of one shape (T may be 0)."""
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
