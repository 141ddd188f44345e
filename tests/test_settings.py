"""Closed forms of the six settings, checked against brute-force enumeration and the seed's figures."""

from __future__ import annotations

import math

import pytest

from avtok_ui.settings import (
    ALL_SETTINGS,
    DV_VOCAB_SIZE,
    SettingError,
    VisualSetting,
    code_frame_boundary,
)


def test_six_settings_and_names():
    assert sorted(s.name for s in ALL_SETTINGS) == sorted(
        ["CV4x8x8", "CV8x8x8", "CV8x16x16", "DV4x8x8", "DV8x8x8", "DV8x16x16"])
    s = VisualSetting.parse("dv8x16x16")
    assert s.hub_id == "nvidia/Cosmos-0.1-Tokenizer-DV8x16x16"
    assert s.legacy_hub_id == "nvidia/Cosmos-Tokenizer-DV8x16x16"
    assert VisualSetting.parse("nvidia/Cosmos-0.1-Tokenizer-CV4x8x8") == VisualSetting(False, 4, 8)
    assert DV_VOCAB_SIZE == 64000


@pytest.mark.parametrize("t,s", [(4, 16), (16, 8), (8, 4), (2, 8)])
def test_invalid_combinations_refused(t, s):
    with pytest.raises(SettingError, match="temporal 4 only with spatial 8"):
        VisualSetting(True, t, s)


@pytest.mark.parametrize("flags,expected", [
    (("true", "8", "16"), VisualSetting(True, 8, 16)),
    (("0", "4", "8"), VisualSetting(False, 4, 8)),
    (("False", 8, 8), VisualSetting(False, 8, 8)),
])
def test_seed_flags(flags, expected):
    assert VisualSetting.from_flags(*flags) == expected


def test_seed_flags_bad():
    with pytest.raises(SettingError, match="is_discrete"):
        VisualSetting.from_flags("maybe", 8, 8)
    with pytest.raises(SettingError, match="integer"):
        VisualSetting.from_flags("1", "eight", 8)


@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=str)
def test_window_rules(setting):
    tf = setting.temporal
    assert setting.check_window(1 + tf) == 1 + tf
    for bad in (tf, 2 + tf, 0, 1, 18 if tf == 8 else 19):
        with pytest.raises(SettingError):
            setting.check_window(bad)


@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=str)
def test_latent_counts_match_enumeration(setting):
    tf = setting.temporal
    for window in (1 + tf, 1 + 2 * tf, 17, 33):
        if (window - 1) % tf:
            continue
        for n in list(range(1, 80)) + [1000, 1001]:
            spans = setting.latent_source_spans(n, window)
            assert len(spans) == setting.latent_frames(n, window)
            # spans tile the frames exactly once, in order
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
            assert all(0 < e - s <= tf for s, e in spans)
            # the encoder sees 1+tf*k frames per window: t = ceil((T+3)/tf) (the published JIT files) at T=1+tf*k
            for w_len in setting.window_lengths(n, window):
                T = setting.padded_window_length(w_len)
                assert (T - 1) % tf == 0 and T >= w_len
                assert setting.latents_for_window(w_len) == math.ceil((T + 3) / tf)


def test_seed_worked_example():
    s = VisualSetting(True, 8, 16)
    # 8 min 51 s at 25 fps, 129-frame windows: 102 x 17 + 16 = 1,750 latent frames
    assert s.latent_frames(13275, 129) == 1750
    assert s.latent_grid(720, 960) == (45, 60)
    assert s.visual_token_count(13275, 720, 960, 129) == 1750 * 45 * 60


def test_spatial_padding():
    s = VisualSetting(False, 8, 16)
    assert s.latent_grid(118, 202) == (8, 13)
    assert s.padded_size(118, 202) == (128, 208)


def test_code_boundaries_27_or_28():
    # 25 fps, 8 frames per latent = 0.32 s = 27.5625 code frames: cumulative rounding gives 27/28, no drift
    b = [code_frame_boundary(i * 0.32) for i in range(2000)]
    d = {y - x for x, y in zip(b, b[1:], strict=False)}
    assert d == {27, 28}
    for i, v in enumerate(b):
        assert abs(v * 512 / 44100 - i * 0.32) <= 256 / 44100 + 1e-12
