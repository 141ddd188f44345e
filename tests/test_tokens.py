"""Token file: streaming writer, exact round trip, loadable with safetensors alone, atomic."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from avtok_ui.errors import TokenFileError
from avtok_ui.settings import VisualSetting
from avtok_ui.tokens import (
    TokenFileWriter,
    TokenMeta,
    iter_visual_windows,
    load_tokens,
    model_to_stored,
    stored_to_model,
)


def _meta(setting, with_audio=False):
    """Complete metadata for the 3x5 latent grid the tests write (frames 5 x 3 latent cells wide)."""
    h, w = 3 * setting.spatial, 5 * setting.spatial
    audio = {"sample_rate": 44100, "hop": 512, "codebooks": 9, "codebook_size": 1024, "n_code_frames": 50,
             "n_samples": 50 * 512 - 100} if with_audio else None
    return TokenMeta(setting=setting.name, tokenizer=setting.hub_id,
                     source={"file": "x.mp4", "fps": "25/1", "time_base": "1/12800", "width": w, "height": h,
                             "n_frames": 100, "duration_s": 4.0},
                     window=17, latent_shape=[], padding={"width": w, "height": h}, audio=audio)


def _write(path, setting, windows, with_audio=True):
    g = torch.Generator().manual_seed(0)
    produced = []
    with TokenFileWriter(path, setting) as w:
        for n in windows:
            t = setting.latents_for_window(n)
            if setting.discrete:
                tok = torch.randint(0, 64000, (1, t, 3, 5), generator=g, dtype=torch.int32)
            else:
                tok = (torch.randn(1, 16, t, 3, 5, generator=g) * 3).to(torch.bfloat16)
            produced.append(tok)
            w.add_window(tok, n)
        n_frames = sum(windows)
        codes = offsets = None
        if with_audio:
            codes = np.random.default_rng(0).integers(0, 1024, (9, 50))
            offsets = np.linspace(0, 50, w.n_latents + 1).astype(np.int64)
        w.finish(_meta(setting, with_audio), np.arange(n_frames) * 512, codes, offsets)
    return produced, codes


def test_discrete_ids_exact_round_trip(tmp_path):
    s = VisualSetting(True, 8, 16)
    path = tmp_path / "v.safetensors"
    produced, codes = _write(path, s, [17, 17, 5])
    raw = load_file(str(path))  # safetensors alone
    assert raw["visual"].dtype == torch.uint16
    ids = torch.cat(produced, dim=1)
    assert raw["visual"].shape == ids.shape == (1, 3 + 3 + 2, 3, 5)
    assert torch.equal(raw["visual"].to(torch.int64), ids.to(torch.int64))
    assert raw["visual"].to(torch.int64).max() >= 60000  # values above int16 survive (by value, not bytes)
    assert raw["audio_codes"].dtype == torch.uint16
    assert np.array_equal(raw["audio_codes"].to(torch.int64).numpy(), codes)
    tf = load_tokens(path)
    back = [tok for _, tok in tf.window_tokens()]
    assert all(torch.equal(a, b) for a, b in zip(produced, back, strict=True))
    streamed = [tok for _, tok in iter_visual_windows(load_tokens(path, visual=False))]
    assert all(torch.equal(a, b) for a, b in zip(produced, streamed, strict=True))
    assert tf.latent_source_frames[-1].tolist() == [35, 39]
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_continuous_layout_channels_last(tmp_path):
    s = VisualSetting(False, 4, 8)
    path = tmp_path / "c.safetensors"
    produced, _ = _write(path, s, [17, 9], with_audio=False)
    raw = load_file(str(path))
    assert raw["visual"].dtype == torch.bfloat16
    assert raw["visual"].shape == (1, 5 + 3, 3, 5, 16)
    cat = torch.cat(produced, dim=2)
    assert torch.equal(raw["visual"], cat.permute(0, 2, 3, 4, 1))
    assert "audio_codes" not in raw
    meta = load_tokens(path).meta
    assert meta.latent_shape == [1, 8, 3, 5, 16] and meta.setting == "CV4x8x8"


def test_int32_to_uint16_by_value():
    s = VisualSetting(True, 8, 8)
    ids = torch.tensor([[[[0, 1, 255, 256, 32767, 32768, 63999]]]], dtype=torch.int32)
    stored = model_to_stored(ids, s)
    assert stored.dtype == torch.uint16 and stored.shape == ids.shape
    assert torch.equal(stored_to_model(stored, s), ids)
    with pytest.raises(ValueError):
        model_to_stored(torch.tensor([[[[70000]]]], dtype=torch.int32), s)


def test_metadata_is_self_describing(tmp_path):
    s = VisualSetting(True, 8, 16)
    path = tmp_path / "m.safetensors"
    _write(path, s, [17])
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        md = f.metadata()
    assert md["format"] == "avtok-tokens" and md["format_version"] == "1"
    assert json.loads(md["tokenizer"]) == "nvidia/Cosmos-0.1-Tokenizer-DV8x16x16"
    assert json.loads(md["window"]) == 17


def test_abort_leaves_nothing(tmp_path):
    s = VisualSetting(True, 8, 16)
    with pytest.raises(RuntimeError):
        with TokenFileWriter(tmp_path / "a.safetensors", s) as w:
            w.add_window(torch.zeros(1, 3, 2, 2, dtype=torch.int32), 17)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_window_count_mismatch_is_caught(tmp_path):
    s = VisualSetting(True, 8, 16)
    with TokenFileWriter(tmp_path / "b.safetensors", s) as w, pytest.raises(ValueError, match="expected 3"):
        w.add_window(torch.zeros(1, 2, 2, 2, dtype=torch.int32), 17)


def test_bad_token_files(tmp_path):
    with pytest.raises(TokenFileError, match="not found"):
        load_tokens(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_text("hello, I am not a token file")
    with pytest.raises(TokenFileError, match="junk.safetensors"):
        load_tokens(junk)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(TokenFileError, match="not an avtok token file"):
        load_tokens(other)
