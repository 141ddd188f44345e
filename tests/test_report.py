"""The typed run report: built by the engine, serialised to the JSON the app and files carry, read back."""

from __future__ import annotations

import json

import pytest
from _synth import make_video

from avtok_ui.engine.report import AudioScores, Readouts, RunReport, Timings, VideoScores
from avtok_ui.pipeline import RunConfig, tokenize
from avtok_ui.settings import VisualSetting


@pytest.mark.slow
def test_run_report_round_trip(checkpoints_env, tmp_path):
    src = make_video(tmp_path / "c.mp4", width=64, height=48, n_frames=20, fps=25, audio=True)
    res = tokenize(src, tmp_path / "t", tmp_path / "r", "c", RunConfig(setting=VisualSetting.parse("CV8x16x16"),
                                                                       lpips="off"))
    rr = res.run_report
    assert isinstance(rr.readouts, Readouts) and isinstance(rr.video_metrics, VideoScores)
    assert isinstance(rr.audio_metrics, AudioScores) and isinstance(rr.timings, Timings)
    assert rr.readouts.total_tokens == rr.readouts.visual_tokens + rr.readouts.audio_tokens > 0
    assert rr.video_metrics.n_frames == 20 and 0 < rr.video_metrics.ssim <= 1
    assert rr.timings.total >= rr.timings.after_first_model_call > 0
    # the JSON form: what the metrics file holds, with the keys code and users rely on
    on_disk = json.loads(res.metrics_json.read_text())
    for key in ("readouts", "video_metrics", "audio_metrics", "timings_s", "outputs", "per_frame", "config"):
        assert key in on_disk, key
    assert on_disk["readouts"]["total_tokens"] == rr.readouts.total_tokens
    assert on_disk["readouts"]["conventions"]  # untyped keys are kept
    assert on_disk["timings_s"]["model_calls"] == pytest.approx(rr.timings.model_calls)
    assert "visual encode" in on_disk["timings_s"]
    assert "windows of 17 source frames" in on_disk["windowing"]
    # lossless round trip through the typed form
    assert RunReport.from_dict(res.report).to_dict() == res.report
