"""Every tokenizer setting the tool knows (Cosmos 0.1's six + the diffusers VAEs) and one parser.

Pure Python (no torch): safe to import from the CLI's argument parsing.
"""

from __future__ import annotations

import re

from ..settings import ALL_SETTINGS, SettingError, VisualSetting
from .specs import DIFFUSERS_SETTINGS, DiffusersSetting

__all__ = ["ALL_BACKEND_SETTINGS", "parse_setting", "all_setting_names", "families", "settings_of_family",
           "is_diffusers"]

#: Cosmos 0.1 first (the default family), then the diffusers VAEs in table order.
ALL_BACKEND_SETTINGS: tuple[VisualSetting | DiffusersSetting, ...] = (*ALL_SETTINGS, *DIFFUSERS_SETTINGS)

_BY_KEY: dict[str, DiffusersSetting] = {}
for _s in DIFFUSERS_SETTINGS:
    for _key in (_s.name, _s.hub_id, _s.repo_name):
        _BY_KEY[_key.lower()] = _s


def all_setting_names() -> list[str]:
    return [s.name for s in ALL_BACKEND_SETTINGS]


def families() -> list[str]:
    """Family names in registry order (``"Cosmos 0.1"`` first)."""
    out: list[str] = []
    for s in ALL_BACKEND_SETTINGS:
        if s.family not in out:
            out.append(s.family)
    return out


def settings_of_family(family: str) -> list[VisualSetting | DiffusersSetting]:
    key = family.strip().lower()
    return [s for s in ALL_BACKEND_SETTINGS if s.family.lower() == key]


def is_diffusers(setting: object) -> bool:
    return getattr(setting, "backend", "") == "diffusers"


def parse_setting(text: str | VisualSetting | DiffusersSetting) -> VisualSetting | DiffusersSetting:
    """Parse any setting name, case-insensitively: Cosmos 0.1 (``"DV8x16x16"``, ``"cv4x8x8"``, Hub ids)
    or a diffusers VAE (``"Wan2.1-4x8x8"``, ``"wan2.1-4x8x8"``, its Hub id or repo name).

    Settings are returned unchanged. Raises :class:`SettingError` (one line listing every name) otherwise.
    """
    if isinstance(text, (VisualSetting, DiffusersSetting)):
        return text
    key = str(text).strip()
    hit = _BY_KEY.get(key.lower()) or _BY_KEY.get(key.lower().removesuffix("/vae"))
    if hit is not None:
        return hit
    try:
        return VisualSetting.parse(re.sub(r"(?<=\d)X(?=\d)", "x", key))  # "CV4X8X8" too
    except SettingError as err:
        if str(err).startswith("cannot parse"):
            raise SettingError(f"cannot parse setting {text!r}: expected one of {', '.join(all_setting_names())}") from None
        raise SettingError(f"{err} (other backends: {', '.join(s.name for s in DIFFUSERS_SETTINGS)})") from None
