"""Tiny random-weight stand-ins with the real model interfaces (tests, benchmarks, demo).

* :mod:`avtok_ui.testing.tiny_cosmos` -- Cosmos 0.1 video tokenizer stand-ins (bf16 TorchScript files laid
  out like ``$AVTOK_CHECKPOINTS/Cosmos-0.1-Tokenizer-XX/{encoder,decoder}.jit``);
* :mod:`avtok_ui.testing.tiny_dac` -- a tiny Descript Audio Codec;
* :mod:`avtok_ui.testing.tiny_diffusers` -- tiny diffusers video VAEs (``<repo name>/vae/``), real classes.
* :mod:`avtok_ui.testing.gpu_speed` -- Cosmos stand-ins whose work is a custom op that holds for a set time
  per frame (GPU speed) and counts model time; not imported here: importing it registers the op, which
  any process loading those files must do first.
"""

from __future__ import annotations

from .tiny_cosmos import build_all_tiny_cosmos, build_tiny_cosmos

__all__ = ["build_all_tiny_cosmos", "build_tiny_cosmos"]
