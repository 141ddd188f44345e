"""The diffusers VAE backends: settings registry, weight resolution, and the wrapper against diffusers' own
calls on tiny random-weight models built with the real classes (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avtok_ui.backends import (
    ALL_BACKEND_SETTINGS,
    DIFFUSERS_SETTINGS,
    families,
    load_tokenizer,
    parse_setting,
    settings_of_family,
)
from avtok_ui.backends.diffusers_vae import DiffusersVAETokenizer, config_hash
from avtok_ui.checkpoints import missing_checkpoints, resolve_diffusers
from avtok_ui.errors import CheckpointError
from avtok_ui.settings import ALL_SETTINGS, SettingError, VisualSetting
from avtok_ui.visual import frames_to_tensor, pad_video

pytest.importorskip("diffusers")

IDS = [s.name for s in DIFFUSERS_SETTINGS]


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# ----- registry -------------------------------------------------------------------------------------
def test_every_name_parses_case_insensitively_and_cosmos_is_unchanged() -> None:
    for s in ALL_BACKEND_SETTINGS:
        for text in (s.name, s.name.lower(), s.name.upper(), f"  {s.name} "):
            assert parse_setting(text) is s or parse_setting(text) == s
    for s in ALL_SETTINGS:
        assert isinstance(parse_setting(s.name), VisualSetting)
        assert parse_setting(s.hub_id) == s
    wan = parse_setting("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
    assert wan.name == "Wan2.1-4x8x8" and wan.repo_name == "Wan2.1-T2V-1.3B-Diffusers"
    with pytest.raises(SettingError, match="Wan2.1-4x8x8"):
        parse_setting("Wan3-4x8x8")
    assert families()[0] == "Cosmos 0.1" and len(settings_of_family("cosmos 0.1")) == 6
    assert [s.latent_channels for s in DIFFUSERS_SETTINGS] == [16, 48, 16, 16, 128, 16]


@pytest.mark.parametrize("name", IDS)
def test_closed_forms_match_cosmos_conventions(name: str) -> None:
    s = parse_setting(name)
    tf = s.temporal
    assert s.check_window(1 + 2 * tf) == 1 + 2 * tf
    with pytest.raises(SettingError):
        s.check_window(2 + tf)
    assert s.latent_frames(3 * (1 + 2 * tf) + 2, 1 + 2 * tf) == 3 * 3 + 2
    assert s.latent_source_spans(1 + tf, 1 + tf) == [(0, 1), (1, 1 + tf)]
    assert s.bytes_per_token == 2 * s.latent_channels and not s.discrete and s.kind == "CV"


# ----- weights ----------------------------------------------------------------------------------------
def test_missing_weights_one_line_naming_every_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tmp_path / "env"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    s = parse_setting("Wan2.1-4x8x8")
    with pytest.raises(CheckpointError) as e:
        resolve_diffusers(s, allow_download=False)
    msg = str(e.value)
    assert "\n" not in msg
    for part in (str(tmp_path / "env" / "Wan2.1-T2V-1.3B-Diffusers" / "vae"), "Hugging Face cache",
                 "download not allowed", "hf download Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "Apache-2.0"):
        assert part in msg
    assert set(missing_checkpoints(DIFFUSERS_SETTINGS, include_dac=False)) == set(IDS)


def test_resolution_order_and_wrong_class(tiny_diffusers_checkpoints: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse_setting("HunyuanVideo-4x8x8")
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tiny_diffusers_checkpoints))
    found = resolve_diffusers(s, allow_download=False)
    assert found == tiny_diffusers_checkpoints / "HunyuanVideo" / "vae"
    assert resolve_diffusers(s, found, allow_download=False) == found  # explicit VAE folder
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_diffusers(s, tmp_path / "typo", allow_download=False)
    assert not missing_checkpoints(DIFFUSERS_SETTINGS, include_dac=False)
    # a CogVideoX folder offered for Wan 2.1 is refused by name, in one line
    cog = tiny_diffusers_checkpoints / "CogVideoX-2b" / "vae"
    with pytest.raises(CheckpointError, match="AutoencoderKLCogVideoX config, Wan2.1-4x8x8 needs AutoencoderKLWan"):
        DiffusersVAETokenizer.from_folder(parse_setting("Wan2.1-4x8x8"), cog, device="cpu")


# ----- the wrapper vs diffusers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizers(tiny_diffusers_checkpoints: Path) -> dict[str, DiffusersVAETokenizer]:
    return {n: load_tokenizer(n, tiny_diffusers_checkpoints, device="cpu", allow_download=False) for n in IDS}


@pytest.mark.slow
@pytest.mark.parametrize("name", IDS)
def test_latent_shapes_match_the_closed_form(name: str, tokenizers: dict) -> None:
    tok = tokenizers[name]
    s = tok.setting
    sf, tf = s.spatial, s.temporal
    for n, h, w in ((1, sf - 3, sf + 1), (1 + tf, 2 * sf + 5, sf), (2 + tf, sf + 7, 3 * sf - 1)):
        z = tok.encode_window(_frames(n, h, w))
        lh, lw = s.latent_grid(h, w)
        assert tuple(z.shape) == (1, s.latent_channels, s.latents_for_window(n), lh, lw), (n, h, w)
        assert z.dtype == torch.float32 and torch.isfinite(z).all()
        out = tok.decode_window(z, n, h, w)
        assert out.shape == (n, h, w, 3) and out.dtype == np.uint8


@pytest.mark.slow
@pytest.mark.parametrize("name", IDS)
def test_encode_and_decode_equal_diffusers_own_calls(name: str, tokenizers: dict) -> None:
    tok = tokenizers[name]
    s = tok.setting
    frames = _frames(1 + 2 * s.temporal, s.spatial + 3, 2 * s.spatial - 1, seed=1)  # odd latent count: 3
    ours = tok.encode_window(frames)
    x = pad_video(frames_to_tensor(frames), s)
    with torch.no_grad():
        theirs = tok.vae.encode(x).latent_dist.mode()
        assert torch.equal(ours, theirs)
        assert torch.equal(tok.decode_raw(ours), tok.vae.decode(theirs).sample)
    assert len(config_hash(tok.config)) == 16
    saved = json.loads((tok.folder / "config.json").read_text())
    assert saved["_class_name"] == s.diffusers_class and tok.config_hash == config_hash(saved)


@pytest.mark.slow
def test_cogvideox_even_latent_count_decodes_to_the_frame_rule(tokenizers: dict) -> None:
    tok = tokenizers["CogVideoX-4x8x8"]
    z = tok.encode_window(_frames(5, 8, 8))
    assert z.shape[2] == 2
    with torch.no_grad():
        assert tok.vae.decode(z).sample.shape[2] == 8  # diffusers' own: 4t frames for even t
        padded = torch.cat([z, z[:, :, -1:]], dim=2)
        assert torch.equal(tok.decode_raw(z), tok.vae.decode(padded).sample[:, :, :5])
    assert tok.decode_window(z, 5, 8, 8).shape == (5, 8, 8, 3)


def test_diffusers_settings_have_every_public_attribute_of_visual_setting() -> None:
    from avtok_ui.backends.base import TokenizerSetting

    public = {n for n in dir(VisualSetting) if not n.startswith("_")} - {"parse", "from_flags"}
    for s in (*ALL_SETTINGS, *DIFFUSERS_SETTINGS):
        missing = {n for n in public if not hasattr(s, n)}
        assert not missing, (s.name, missing)
        assert isinstance(s, TokenizerSetting)


def test_both_tokenizers_satisfy_the_interface(tiny_diffusers_checkpoints: Path) -> None:
    from avtok_ui.backends.base import Tokenizer

    for name in ("DV8x16x16", "CogVideoX-4x8x8"):
        tok = load_tokenizer(name, tiny_diffusers_checkpoints, device="cpu", allow_download=False)
        assert isinstance(tok, Tokenizer)
        assert all(p is not None and p.is_file() for p in tok.weight_paths().values())
