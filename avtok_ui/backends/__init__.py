"""Tokenizer backends: Cosmos 0.1 (TorchScript, :mod:`avtok_ui.visual`) and diffusers video VAEs
(:mod:`avtok_ui.backends.diffusers_vae`), behind one setting registry and one loader.

* :mod:`.base` -- the protocols a setting and a loaded tokenizer satisfy;
* :mod:`.specs` -- the diffusers VAE settings (pure data);
* :mod:`.registry` -- every setting, ``parse_setting`` (case-insensitive), families;
* :mod:`.diffusers_vae` -- the one wrapper class for all diffusers VAEs (imports torch/diffusers);
* :func:`load_tokenizer` -- load the right tokenizer for any setting.

Importing this package does not import torch or diffusers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Tokenizer, TokenizerSetting
from .registry import (
    ALL_BACKEND_SETTINGS,
    all_setting_names,
    families,
    is_diffusers,
    parse_setting,
    settings_of_family,
)
from .specs import DIFFUSERS_SETTINGS, DiffusersSetting

__all__ = [
    "ALL_BACKEND_SETTINGS", "DIFFUSERS_SETTINGS", "DiffusersSetting", "Tokenizer", "TokenizerSetting",
    "all_setting_names", "families", "is_diffusers", "load_tokenizer", "parse_setting", "settings_of_family",
]


def load_tokenizer(setting: Any, checkpoint_dir: str | Path | None = None, *, device: Any = None,
                   dtype: Any = "auto", allow_download: bool = True) -> Any:
    """Locate and load the tokenizer for ``setting`` (a name or a setting object): Cosmos 0.1 settings
    load :class:`avtok_ui.visual.CosmosTokenizer`, diffusers ones
    :class:`avtok_ui.backends.diffusers_vae.DiffusersVAETokenizer`."""
    setting = parse_setting(setting)
    if is_diffusers(setting):
        from .diffusers_vae import DiffusersVAETokenizer

        return DiffusersVAETokenizer.from_pretrained(setting, checkpoint_dir, device=device, dtype=dtype,
                                                     allow_download=allow_download)
    from ..visual import CosmosTokenizer

    return CosmosTokenizer.from_pretrained(setting, checkpoint_dir, device=device, dtype=dtype,
                                           allow_download=allow_download)
