"""Token readouts: closed form == enumeration == what a run writes; the seed's worked example."""

from __future__ import annotations

import math

import pytest

from avtok_ui.readouts import estimate_tokens, format_readouts
from avtok_ui.settings import ALL_SETTINGS, VisualSetting, code_frame_boundary


@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=str)
@pytest.mark.parametrize("n_frames", [1, 9, 17, 18, 33, 100, 13275])
@pytest.mark.parametrize("window", [17, 33, 129])
def test_estimate_matches_enumeration(setting, n_frames, window):
    e = estimate_tokens(setting, n_frames, 118, 202, window, n_frames / 25, 9)
    # enumerate windows and latents by hand, independent of the closed form
    t = 0
    left = n_frames
    while left > 0:
        n = min(window, left)
        t += 1 + math.ceil((n - 1) / setting.temporal)
        left -= n
    h, w = math.ceil(118 / setting.spatial), math.ceil(202 / setting.spatial)
    assert e["latent_grid"] == {"t": t, "h": h, "w": w}
    assert e["visual_tokens"] == t * h * w
    n_code = math.ceil(round(n_frames / 25 * 44100) / 512)
    assert e["audio_code_frames"] == n_code and e["audio_tokens"] == 9 * n_code
    assert e["total_tokens"] == t * h * w + 9 * n_code
    assert e["payload_bytes"] == t * h * w * (2 if setting.discrete else 32) + 9 * n_code * 2
    assert e["hour_projection"]["tokens"] == pytest.approx(e["total_tokens"] / (n_frames / 25) * 3600)
    assert e["compression_vs_rgb24"] == pytest.approx(n_frames * 118 * 202 * 3 / e["payload_bytes"])


def test_seed_worked_example():
    s = VisualSetting(True, 8, 16)
    e = estimate_tokens(s, 13275, 720, 960, 129, 13275 / 25, 9)
    assert e["latent_grid"] == {"t": 1750, "h": 45, "w": 60}
    assert e["visual_tokens_per_latent_frame"] == 60 * 45
    # 44.1 kHz audio at 25 fps and 8 frames per latent: 27 or 28 code frames x 9 codebooks per latent
    bounds = [code_frame_boundary((1 + 8 * i) / 25) for i in range(16)]
    per = {b - a for a, b in zip(bounds, bounds[1:], strict=False)}
    assert per == {27, 28}
    assert "1,750 x 45 x 60".replace(",", "") in format_readouts(e).replace(",", "")


def test_bytes_per_token_convention():
    assert VisualSetting(False, 8, 8).bytes_per_token == 32
    assert VisualSetting(True, 8, 8).bytes_per_token == 2
    e = estimate_tokens(VisualSetting(True, 8, 8), 17, 64, 64, 17, 0.68, 0)
    assert e["audio_tokens"] == 0 and e["audio_share"] == 0
