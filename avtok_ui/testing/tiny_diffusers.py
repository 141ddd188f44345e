"""Tiny random-weight diffusers video VAEs with the real classes, saved like the published ones.

``build_tiny_diffusers(setting, root)`` instantiates the setting's real diffusers class from a small config
(same compression factors and latent channels as the published VAE, a few channels per block, one layer
per block, ~0.2-1 M parameters) and writes it with ``save_pretrained`` into
``root/<repo name>/vae/{config.json, diffusion_pytorch_model.safetensors}`` -- the layout
:func:`avtok_ui.checkpoints.resolve_diffusers` finds under ``$AVTOK_CHECKPOINTS``. Weights are random (seeded):
reconstructions are meaningless, shapes, dtypes and code paths are real. Tests never download anything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..backends.specs import DIFFUSERS_SETTINGS, DiffusersSetting

__all__ = ["TINY_CONFIGS", "build_tiny_diffusers", "build_all_tiny_diffusers", "make_tiny_vae"]

_WAN_COMMON: dict[str, Any] = dict(base_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                                   temperal_downsample=[False, True, True])

#: Small configs per setting name (everything else is the class default, i.e. the published layout).
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "Wan2.1-4x8x8": dict(_WAN_COMMON, z_dim=16, latents_mean=[0.0] * 16, latents_std=[1.0] * 16),
    "Wan2.2-4x16x16": dict(_WAN_COMMON, decoder_base_dim=8, z_dim=48, is_residual=True, in_channels=12,
                           out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                           latents_mean=[0.0] * 48, latents_std=[1.0] * 48),
    "HunyuanVideo-4x8x8": dict(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=4,
                               latent_channels=16),
    "CogVideoX-4x8x8": dict(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=4,
                            latent_channels=16, down_block_types=("CogVideoXDownBlock3D",) * 4,
                            up_block_types=("CogVideoXUpBlock3D",) * 4),
    "LTXVideo-8x32x32": dict(block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 32, 32),
                             layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
                             latent_channels=128),
    "Cosmos1-CV8x8x8": dict(encoder_block_out_channels=(8, 16, 16, 16), decode_block_out_channels=(16, 16, 16, 16),
                            attention_resolutions=(), resolution=64, num_layers=1, latent_channels=16,
                            latents_mean=None, latents_std=None),
}


def make_tiny_vae(setting: DiffusersSetting, seed: int = 0) -> Any:
    """The tiny model (fp32, eval mode) for ``setting``, built with its real diffusers class."""
    import diffusers
    import torch

    cls = getattr(diffusers, setting.diffusers_class)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(**TINY_CONFIGS[setting.name])
    return model.eval()


def build_tiny_diffusers(setting: DiffusersSetting, root: str | Path, seed: int = 0) -> Path:
    """Write the tiny VAE to ``root/<repo name>/<subfolder>/`` (atomically); returns that folder."""
    target = Path(root) / setting.repo_name / setting.subfolder
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{setting.subfolder}.", dir=target.parent))
    try:
        make_tiny_vae(setting, seed).save_pretrained(str(tmp), safe_serialization=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def build_all_tiny_diffusers(root: str | Path, seed: int = 0,
                             settings: tuple[DiffusersSetting, ...] = DIFFUSERS_SETTINGS) -> Path:
    for s in settings:
        build_tiny_diffusers(s, root, seed=seed)
    return Path(root)
