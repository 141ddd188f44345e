"""Shared fixtures: tiny random-weight checkpoints with the real interfaces, laid out as users lay out
real ones (``$AVTOK_CHECKPOINTS/<hub repo name>/{encoder,decoder}.jit`` and ``dac/weights_44khz_8kbps_0.0.1.pth``).
Nothing here downloads: HF_HUB_OFFLINE is forced on for the whole test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
# The tiny models are many small ops: on a 2-core CI box one intra-op thread is several times faster
# than two fighting over the cores with PyAV's and x264's threads (measured 12 s vs 82-397 s for test_audio).
torch.set_num_threads(1)
os.environ.setdefault("AVTOK_LPIPS_BACKBONE", "")  # never pick up a developer's real backbone by accident


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder with all six tiny Cosmos stand-ins and a tiny DAC."""
    from avtok_ui.settings import DAC_WEIGHTS_NAME
    from avtok_ui.testing.tiny_cosmos import build_all_tiny_cosmos
    from avtok_ui.testing.tiny_dac import build_tiny_dac

    root = tmp_path_factory.mktemp("checkpoints")
    build_all_tiny_cosmos(root)
    build_tiny_dac(root / "dac" / DAC_WEIGHTS_NAME)
    return root


@pytest.fixture()
def checkpoints_env(tiny_checkpoints: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``AVTOK_CHECKPOINTS`` pointing at the tiny checkpoints for one test."""
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tiny_checkpoints))
    return tiny_checkpoints


@pytest.fixture(scope="session")
def tiny_diffusers_checkpoints(tiny_checkpoints: Path) -> Path:
    """The same folder plus the six tiny diffusers VAEs (``<repo name>/vae/``), built with the real classes."""
    from avtok_ui.testing.tiny_diffusers import build_all_tiny_diffusers

    return build_all_tiny_diffusers(tiny_checkpoints)
