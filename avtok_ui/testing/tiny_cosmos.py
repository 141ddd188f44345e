"""Tiny random-weight stand-ins for the Cosmos 0.1 video tokenizers, with the real files' interfaces.

``build_tiny_cosmos(setting, out_dir)`` writes ``out_dir/<setting.repo_name>/{encoder,decoder}.jit``:
``torch.jit.trace``\\ s of ``nn.Sequential``\\ s, traced in bf16 with bf16 weights like the published files,
so that they behave the same way as the published files where it matters to the product:

* encoder input ``[B, 3, T, H, W]`` in [-1, 1], fp32 or bf16 (cast to bf16 inside, as the real patcher);
  it contains an ``aten::avg_pool3d`` in bf16, so on CPU it fails ("avg_pool3d_out_frame" not implemented
  for 'BFloat16') unless :func:`avtok_ui.visual.ensure_cpu_bf16_avg_pool3d` is registered;
* causal time: latent 0 from frame 0 alone, latent ``i >= 1`` from frames ``1+tf*(i-1) .. tf*i``
  (``T = 1 + tf*k`` -> ``t = 1 + k``; other T give ``floor((T + tf - 1)/tf)`` latents, unlike the real
  files: callers pad to ``1 + tf*k``); space ``/ sf`` (H, W multiples of sf);
* CV encoder -> ``(latent [B, 16, t, h, w] bf16, (tensor([0.]), tensor([0.])))``;
  DV encoder -> ``(ids int32 [B, t, h, w] in [0, 64000), codes bf16 [B, 6, t, h, w], zeros fp32
  [B, 1, 1, 1, w])`` with FSQ levels (8, 8, 8, 5, 5, 5) and basis (1, 8, 64, 512, 2560, 12800);
* CV decoder takes a bf16 latent (an fp32 latent fails: "expected scalar type Float but found BFloat16");
  DV decoder takes int32 or int64 ids; both return bf16 ``[B, 3, 1 + tf*(t-1), H, W]``, not clamped;
* after ``.float()`` both fail with dtype mismatches (bf16 casts baked in), like the real files.

The model is "average-pool, random linear projection" and its pseudo-inverse followed by nearest
upsampling, so reconstructions are meaningful (a smooth video comes back at > 20 dB PSNR) and quality
drops with the compression factor. Files are a few KB; everything runs in milliseconds on a CPU.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import ALL_SETTINGS, CV_CHANNELS, FSQ_LEVELS, VisualSetting
from ..visual import ensure_cpu_bf16_avg_pool3d

__all__ = ["build_tiny_cosmos", "build_all_tiny_cosmos", "make_tiny_cosmos_modules", "FSQ_BASIS"]

#: Mixed-radix basis of the FSQ ids: id = sum(digit_c * basis_c).
FSQ_BASIS: tuple[int, ...] = tuple(int(torch.tensor(FSQ_LEVELS[:i]).prod()) for i in range(len(FSQ_LEVELS)))
DV_CHANNELS = len(FSQ_LEVELS)


# ----------------------------------------------------------------------------------------------------
# building blocks (no Python ints derived from input shapes: the traces are shape-generic)
# ----------------------------------------------------------------------------------------------------
class _Patcher(nn.Module):
    """Cast to bf16, causal front padding (frame 0 repeated tf-1 times), average pool (tf, sf, sf)."""

    def __init__(self, tf: int, sf: int) -> None:
        super().__init__()
        self.tf, self.sf = tf, sf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.bfloat16)
        if self.tf > 1:
            x = torch.cat([x[:, :, :1].repeat(1, 1, self.tf - 1, 1, 1), x], dim=2)
        return F.avg_pool3d(x, kernel_size=(self.tf, self.sf, self.sf), stride=(self.tf, self.sf, self.sf))


class _Conv(nn.Conv3d):
    """1x1x1 convolution without bias (a channel mix); fp32 input with bf16 weights fails like the real."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__(weight.shape[1], weight.shape[0], kernel_size=1, bias=False)
        with torch.no_grad():
            self.weight.copy_(weight.reshape(self.weight.shape))


class _Gaussian(nn.Module):
    """The continuous bottleneck's output: ``(latent, (tensor([0.]), tensor([0.])))``."""

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        return z, (torch.zeros(1), torch.zeros(1))


class _FSQ(nn.Module):
    """Finite scalar quantizer: ``(ids int32 [B,t,h,w], codes bf16 [B,6,t,h,w], zeros fp32 [B,1,1,1,w])``."""

    def __init__(self) -> None:
        super().__init__()
        levels = torch.tensor(FSQ_LEVELS, dtype=torch.int64).view(1, -1, 1, 1, 1)
        self.register_buffer("basis", torch.tensor(FSQ_BASIS, dtype=torch.int64).view(1, -1, 1, 1, 1))
        self.register_buffer("half_levels", ((levels - 1).to(torch.float32) / 2))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        zf = z.float().clamp(-1.0, 1.0)
        digits = torch.round((zf + 1.0) * self.half_levels.float())
        codes = (digits / self.half_levels.float() - 1.0).to(torch.bfloat16)
        ids = (digits.to(torch.int64) * self.basis).sum(dim=1).to(torch.int32)
        zeros = torch.zeros_like(codes[:, :1, :1, :1, :], dtype=torch.float32)
        return ids, codes, zeros


class _InvFSQ(nn.Module):
    """ids (int32 or int64) ``[B, t, h, w]`` -> quantized codes bf16 ``[B, 6, t, h, w]``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", torch.tensor(FSQ_BASIS, dtype=torch.int64).view(1, -1, 1, 1, 1))
        self.register_buffer("levels", torch.tensor(FSQ_LEVELS, dtype=torch.int64).view(1, -1, 1, 1, 1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        digits = torch.remainder(torch.div(ids.to(torch.int64).unsqueeze(1), self.basis, rounding_mode="floor"),
                                 self.levels)
        half = (self.levels - 1).to(torch.float32) / 2
        return (digits.to(torch.float32) / half - 1.0).to(torch.bfloat16)


class _Unpatcher(nn.Module):
    """Cast to bf16, nearest upsampling: latent 0 -> frame 0, latent i >= 1 -> tf frames; space x sf."""

    def __init__(self, tf: int, sf: int) -> None:
        super().__init__()
        self.tf, self.sf = tf, sf

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = y.to(torch.bfloat16)
        y = torch.repeat_interleave(y, self.sf, dim=3)
        y = torch.repeat_interleave(y, self.sf, dim=4)
        if self.tf > 1:
            y = torch.cat([y[:, :, :1], torch.repeat_interleave(y[:, :, 1:], self.tf, dim=2)], dim=2)
        return y


# ----------------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------------
def _weights(setting: VisualSetting, seed: int) -> dict[str, torch.Tensor]:
    """Random projection ``P [C, 3]``, decoder mix ``A [3, C]`` and output rotation ``O [3, 3]`` with
    ``O @ A @ P = I`` (A = O^-1 pinv(P)), all fp32 (cast to bf16 with the module)."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(setting.name.encode())) % 2**63)
    c = DV_CHANNELS if setting.discrete else CV_CHANNELS
    p = torch.randn(c, 3, generator=g, dtype=torch.float64)
    if setting.discrete:
        # rows with L1 norm 1: a [-1, 1] picture projects into [-1, 1], the FSQ range (no clipping).
        p = p / p.abs().sum(dim=1, keepdim=True)
    else:
        p = p / 3**0.5
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    o = q * (1.0 + 0.25 * torch.rand(3, generator=g, dtype=torch.float64))  # well-conditioned mix
    a = torch.linalg.solve(o, torch.linalg.pinv(p))
    return {"p": p.float(), "a": a.float(), "o": o.float()}


def make_tiny_cosmos_modules(setting: VisualSetting, seed: int = 0) -> tuple[nn.Sequential, nn.Sequential]:
    """The eager ``(encoder, decoder)`` ``nn.Sequential``\\ s in bf16, eval mode (before tracing)."""
    w = _weights(setting, seed)
    tf, sf = setting.temporal, setting.spatial
    if setting.discrete:
        encoder = nn.Sequential(_Patcher(tf, sf), _Conv(w["p"]), _FSQ())
        decoder = nn.Sequential(_InvFSQ(), _Conv(w["a"]), _Unpatcher(tf, sf), _Conv(w["o"]))
    else:
        encoder = nn.Sequential(_Patcher(tf, sf), _Conv(w["p"]), _Gaussian())
        decoder = nn.Sequential(_Conv(w["a"]), _Unpatcher(tf, sf), _Conv(w["o"]))
    return encoder.to(torch.bfloat16).eval(), decoder.to(torch.bfloat16).eval()


# ----------------------------------------------------------------------------------------------------
# building files
# ----------------------------------------------------------------------------------------------------
def _example(setting: VisualSetting, k: int, hm: int, wm: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(k * 100 + hm * 10 + wm)
    shape = (1, 3, 1 + setting.temporal * k, setting.spatial * hm, setting.spatial * wm)
    return (torch.rand(shape, generator=g) * 2 - 1).to(torch.bfloat16)


def _save_atomic(module: torch.jit.ScriptModule, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        module.save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_tiny_cosmos(setting: VisualSetting, out_dir: str | Path, seed: int = 0) -> Path:
    """Write ``out_dir/<setting.repo_name>/encoder.jit`` and ``decoder.jit``; return that folder.

    Traced on CPU in bf16 (this registers the CPU bf16 ``avg_pool3d`` fallback in the building process:
    tracing runs the pool). Deterministic for a given ``seed``.
    """
    folder = Path(out_dir) / setting.repo_name
    folder.mkdir(parents=True, exist_ok=True)
    encoder, decoder = make_tiny_cosmos_modules(setting, seed)
    ensure_cpu_bf16_avg_pool3d()
    x1, x2 = _example(setting, 2, 2, 3), _example(setting, 1, 3, 1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # "torch.jit.trace is deprecated"
        enc = torch.jit.trace(encoder, x1, check_inputs=[(x2,)])
        z1, z2 = encoder(x1)[0], encoder(x2)[0]
        dec = torch.jit.trace(decoder, z1, check_inputs=[(z2,)])
    _save_atomic(enc, folder / "encoder.jit")
    _save_atomic(dec, folder / "decoder.jit")
    return folder


def build_all_tiny_cosmos(root: str | Path, seed: int = 0) -> Path:
    """Build the six stand-ins under ``root`` (``root/Cosmos-0.1-Tokenizer-XX/``); return ``root``."""
    root = Path(root)
    for setting in ALL_SETTINGS:
        build_tiny_cosmos(setting, root, seed=seed)
    return root
