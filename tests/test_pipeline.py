"""End-to-end engine runs with tiny random-weight models: shapes, counts, files, sync, atomicity."""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from _synth import make_video
from safetensors.torch import load_file

from avtok_ui import media
from avtok_ui.errors import Cancelled, MediaError
from avtok_ui.pipeline import RunConfig, load_models, reconstruct, tokenize
from avtok_ui.settings import ALL_SETTINGS, DAC_HOP, DAC_SAMPLE_RATE, VisualSetting, code_frame_boundary
from avtok_ui.tokens import load_tokens

ROOT = Path(__file__).resolve().parents[1]


def _streams(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        out = {"video": (v.codec_context.name, v.format.name, v.width, v.height), "frames": 0}
        a = c.streams.audio[0] if c.streams.audio else None
        out["audio"] = (a.codec_context.name, a.rate, a.channels) if a is not None else None
        for _ in c.decode(video=0):
            out["frames"] += 1
        out["video_s"] = float(v.duration * v.time_base) if v.duration else None
        out["audio_s"] = float(a.duration * a.time_base) if a is not None and a.duration else None
        out["rate"] = v.average_rate
    return out


def _files(*dirs: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for d in dirs if d.exists() for p in d.rglob("*"))


@pytest.fixture(scope="module")
def clip25(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("src") / "clip25.mp4", width=64, height=48, n_frames=30,
                      fps=25, audio=True, audio_channels=2, audio_rate=48000)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=str)
def test_all_six_settings(setting, clip25, checkpoints_env, tmp_path):
    cfg = RunConfig(setting=setting, window=17, lpips="off")
    models = load_models(cfg)
    res = tokenize(clip25, tmp_path / "tok", tmp_path / "rec", "clip", cfg, models=models)
    # exactly one token file, named from the nickname; reconstructions named as the seed tool's
    assert sorted(p.name for p in (tmp_path / "tok").glob("*.safetensors")) == ["clip.safetensors"]
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [
        "clip_reconstructed.mp4", "clip_reconstructed_audio.wav", "clip_reconstructed_visual.mp4"]
    raw = load_file(str(res.tokens))
    n_lat = setting.latent_frames(30, 17)
    h, w = setting.latent_grid(48, 64)
    if setting.discrete:
        assert raw["visual"].dtype == torch.uint16 and raw["visual"].shape == (1, n_lat, h, w)
        assert int(raw["visual"].to(torch.int64).max()) < 64000
    else:
        assert raw["visual"].dtype == torch.bfloat16 and raw["visual"].shape == (1, n_lat, h, w, 16)
    # ids written == ids read == ids the encoder produced (window by window, independently)
    if setting.discrete:
        frames = np.concatenate([w.frames for w in media.iter_windows(clip25, 17)])
        direct = torch.cat([models.cosmos.encode_window(frames[:17]).cpu(),
                            models.cosmos.encode_window(frames[17:]).cpu()], dim=1)
        assert direct.dtype == torch.int32
        assert torch.equal(raw["visual"].to(torch.int32), direct)
    # reconstruction: frame count, size, fps, duration, codecs
    s = _streams(res.video)
    assert s["video"] == ("h264", "yuv420p", 64, 48) and s["frames"] == 30
    assert s["audio"] == ("aac", DAC_SAMPLE_RATE, 1)
    assert s["rate"] == 25
    assert abs(s["audio_s"] - 30 / 25) <= 1024 / DAC_SAMPLE_RATE + 1e-6
    # report
    rep = json.loads(res.metrics_json.read_text())
    assert rep["readouts"]["visual_tokens"] == n_lat * h * w
    assert rep["readouts"]["audio_code_frames"] == int(np.ceil(round(1.2 * DAC_SAMPLE_RATE) / DAC_HOP))
    assert len(rep["per_frame"]["psnr"]) == 30


def test_alignment_and_token_file(clip25, checkpoints_env, tmp_path):
    setting = VisualSetting(True, 8, 16)
    res = tokenize(clip25, tmp_path, tmp_path, "a", RunConfig(setting=setting, lpips="off"))
    tf = load_tokens(res.tokens)
    off = tf.audio_latent_offsets.numpy()
    n_codes = tf.audio_codes.shape[1]
    assert off[0] == 0 and off[-1] == n_codes and np.all(np.diff(off) >= 0)
    assert tf.audio_codes.shape[0] == 9 and int(tf.audio_codes.to(torch.int64).max()) < 1024
    # each latent's codes start at its first frame's time (within half a hop)
    spans = tf.latent_source_frames.numpy()
    for i, (s, _e) in enumerate(spans):
        assert off[i] == min(code_frame_boundary(s / 25), n_codes)
        assert abs(off[i] * DAC_HOP / DAC_SAMPLE_RATE - s / 25) <= DAC_HOP / DAC_SAMPLE_RATE / 2 + 1e-9
    m = tf.meta
    assert m.source["n_frames"] == 30 and m.source["fps"] == "25/1" and m.window == 17
    assert m.audio["codebooks"] == 9 and m.audio["sample_rate"] == 44100
    assert m.tokenizer == "nvidia/Cosmos-0.1-Tokenizer-DV8x16x16"
    assert tf.frame_pts.shape == (30,)
    cpl = res.report["readouts"]["audio_code_frames_per_latent"]
    assert sum(int(k) * v for k, v in cpl["histogram"].items()) == n_codes
    assert sum(cpl["histogram"].values()) == tf.visual.shape[1]


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(width=202, height=118, n_frames=20, fps=Fraction(30000, 1001), pix_fmt="yuv444p", audio=False),
    dict(width=201, height=117, n_frames=26, fps=30, pix_fmt="yuv444p", audio=True, audio_channels=1,
         audio_rate=22050),
], ids=["202x118-29.97-silent", "201x117-30-mono22k"])
def test_odd_sizes_and_lengths(kw, checkpoints_env, tmp_path):
    src = make_video(tmp_path / "odd.mp4", **kw)
    setting = VisualSetting(False, 4, 8)
    res = tokenize(src, tmp_path / "t", tmp_path / "r", "odd", RunConfig(setting=setting, window=9, lpips="off"))
    s = _streams(res.video)
    even = (kw["width"] + kw["width"] % 2, kw["height"] + kw["height"] % 2)
    assert s["video"] == ("h264", "yuv420p", *even)
    assert s["frames"] == kw["n_frames"]
    assert abs(float(s["rate"]) - float(kw["fps"])) < 1e-3
    tf = load_tokens(res.tokens)
    assert tf.visual.shape[1] == setting.latent_frames(kw["n_frames"], 9)
    rep = res.report
    assert rep["video_metrics"]["width"] == kw["width"] and rep["video_metrics"]["height"] == kw["height"]
    if kw["audio"]:
        assert s["audio"][0] == "aac" and res.audio_wav.exists()
    else:
        assert s["audio"] is None and res.audio_wav is None and tf.audio_codes is None


def test_reconstruct_from_token_file_alone(clip25, checkpoints_env, tmp_path):
    setting = VisualSetting(True, 8, 8)
    res = tokenize(clip25, tmp_path / "t", tmp_path / "r1", "x", RunConfig(setting=setting, lpips="off"))
    rec = reconstruct(res.tokens, tmp_path / "r2")
    a = np.stack(list(media.read_video_frames(res.visual_video)))
    b = np.stack(list(media.read_video_frames(rec.visual_video)))
    assert a.shape == b.shape == (30, 48, 64, 3)
    assert np.array_equal(a, b)
    s = _streams(rec.video)
    assert s["audio"] == ("aac", 44100, 1) and s["frames"] == 30


def test_trim_and_resolution_cap(checkpoints_env, tmp_path):
    src = make_video(tmp_path / "big.mp4", width=160, height=96, n_frames=50, fps=25, audio=True)
    cfg = RunConfig(setting=VisualSetting(True, 8, 16), start_s=0.4, duration_s=1.0, max_side=80, lpips="off")
    res = tokenize(src, tmp_path / "t", tmp_path / "r", "trim", cfg)
    s = _streams(res.video)
    assert s["video"][2:] == (80, 48) and s["frames"] == 25
    assert abs(s["audio_s"] - 1.0) <= 1024 / 44100 + 1e-6
    # times are clip-relative: duration is the clip's, latents map to codes from the clip's start
    assert res.report["evaluated"]["duration_s"] == pytest.approx(1.0, abs=1e-6)
    tf = load_tokens(res.tokens)
    off = tf.audio_latent_offsets.numpy()
    assert tf.meta.clip["duration_s"] == pytest.approx(1.0, abs=1e-6) and tf.meta.clip["n_frames"] == 25
    assert tf.meta.source["duration_s"] == pytest.approx(2.0, abs=1e-6)  # the source itself
    for i, (start, _e) in enumerate(tf.latent_source_frames.numpy()):
        assert off[i] == code_frame_boundary(start / 25)  # clip frame k starts at k/25 s
    assert off[-1] == tf.audio_codes.shape[1] == int(np.ceil(44100 / 512))


def test_failure_leaves_no_outputs(checkpoints_env, tmp_path):
    good = make_video(tmp_path / "g.mp4", n_frames=40, faststart=True)
    data = good.read_bytes()
    bad = tmp_path / "src" / "trunc.mp4"
    bad.parent.mkdir()
    bad.write_bytes(data[: int(len(data) * 0.6)])
    out_t, out_r = tmp_path / "t", tmp_path / "r"
    with pytest.raises(MediaError, match="trunc.mp4"):
        tokenize(bad, out_t, out_r, "bad", RunConfig(setting=VisualSetting(True, 8, 16), lpips="off"),
                 extracted_wav=bad.parent / "trunc_audio.wav")
    assert _files(out_t, out_r) == []
    assert sorted(p.name for p in bad.parent.iterdir()) == ["trunc.mp4"]


def test_cancel_leaves_no_outputs(clip25, checkpoints_env, tmp_path):
    ev = threading.Event()

    def progress(stage, done, total):
        if stage == "visual":
            ev.set()

    with pytest.raises(Cancelled):
        tokenize(clip25, tmp_path / "t", tmp_path / "r", "c", RunConfig(setting=VisualSetting(True, 8, 16)),
                 progress=progress, cancel=ev)
    assert _files(tmp_path / "t", tmp_path / "r") == []


def test_rerun_replaces_outputs(clip25, checkpoints_env, tmp_path):
    cfg = RunConfig(setting=VisualSetting(True, 8, 16), lpips="off")
    r1 = tokenize(clip25, tmp_path, tmp_path, "same", cfg)
    m1 = r1.video.stat().st_mtime_ns
    cfg2 = RunConfig(setting=VisualSetting(True, 8, 16), lpips="off", codebooks=2)
    r2 = tokenize(clip25, tmp_path, tmp_path, "same", cfg2)
    assert r2.video.stat().st_mtime_ns >= m1
    assert load_tokens(r2.tokens).audio_codes.shape[0] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_real_clip_bigbuckbunny(checkpoints_env, tmp_path):
    src = ROOT / "assets" / "bigbuckbunny.mp4"
    setting = VisualSetting(True, 8, 16)
    res = tokenize(src, tmp_path, tmp_path, "bbb", RunConfig(setting=setting, lpips="off"))
    s = _streams(res.video)
    assert s["video"] == ("h264", "yuv420p", 1280, 720) and s["frames"] == 132
    assert s["audio"] == ("aac", 44100, 1)
    assert abs(s["audio_s"] - 132 / 25) <= 1024 / 44100 + 1e-6
    tf = load_tokens(res.tokens)
    assert tf.visual.shape == (1, setting.latent_frames(132, 17), 45, 80)
    assert tf.meta.audio["source_channels"] == 6
    per = np.diff(tf.audio_latent_offsets.numpy())
    assert set(per[1:-1].tolist()) <= {3, 4, 27, 28}  # 8-frame latents: 27/28 code frames; 1-frame: 3/4
