"""A tiny random-weight Descript Audio Codec (DAC) with the real 44.1 kHz interface.

Same sample rate (44100 Hz), hop (512 samples per code frame: encoder rates 2*4*8*8), 9 codebooks of 1024
entries and the same file format as the released ``weights_44khz_8kbps_0.0.1.pth`` (a ``torch.save``'d
``{"state_dict": ..., "metadata": {"kwargs": ...}}``), so ``dac.DAC.load`` and
:meth:`avtok_ui.audio.DacCodec.from_pretrained` read it. About 0.5 M parameters (the real model has 76 M);
its codes are meaningless but deterministic for a given seed, and its decoder output is in (-1, 1) (tanh).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

#: Constructor arguments of the tiny model (hop = prod(encoder_rates) = 512, like the real 44.1 kHz DAC).
TINY_DAC_KWARGS: dict = {
    "encoder_dim": 8,
    "encoder_rates": [2, 4, 8, 8],
    "latent_dim": None,
    "decoder_dim": 32,
    "decoder_rates": [8, 8, 4, 2],
    "n_codebooks": 9,
    "codebook_size": 1024,
    "codebook_dim": 8,
    "sample_rate": 44100,
}


def make_tiny_dac(seed: int = 0):
    """Build the tiny random-weight ``dac.DAC`` in memory (eval mode, CPU, float32).

    The global torch RNG state is left untouched (the weights come from a forked RNG seeded with ``seed``).
    """
    import dac

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
        torch.manual_seed(seed)
        model = dac.DAC(**TINY_DAC_KWARGS)
    return model.eval()


def build_tiny_dac(path: Path, seed: int = 0) -> Path:
    """Write a tiny random-weight DAC to ``path`` in the released weights format; return ``path``.

    The parent directory is created if needed; the file is readable by ``dac.DAC.load(path)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = make_tiny_dac(seed)
    model.save(str(path), package=False)
    return path
