"""GPU-speed Cosmos stand-ins (avtok_ui.testing.gpu_speed): the published interface, the op survives
tracing and loading in a fresh process (only after importing the module), and the model clock counts it.
Nothing here is timed: the clock is checked against the hold it must at least contain (a sleep never
returns early) and by its call count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _synth import make_video

from avtok_ui.settings import ALL_SETTINGS, VisualSetting
from avtok_ui.testing import gpu_speed
from avtok_ui.visual import CosmosTokenizer

CV = VisualSetting.parse("CV8x16x16")
DV = VisualSetting.parse("DV4x8x8")

_CHILD = r"""
import json, sys, torch
imp, folders = sys.argv[1] == "1", sys.argv[2:]
if imp:
    import avtok_ui.testing.gpu_speed as g
results = []
for folder in folders:
    try:
        enc = torch.jit.load(folder + "/encoder.jit")
        dec = torch.jit.load(folder + "/decoder.jit")
    except Exception as e:
        results.append({"error": str(e)})
        continue
    g.reset_model_clock()
    x = torch.rand(1, 3, 17, 96, 128).mul(2).sub(1).to(torch.bfloat16)
    out = enc(x)
    y = dec(out[0])
    desc = [[list(t.shape), str(t.dtype)] if isinstance(t, torch.Tensor) else [[list(u.shape), str(u.dtype)]
            for u in t] for t in out]
    c = g.model_clock()
    results.append({"out": desc, "dec": [list(y.shape), str(y.dtype)], "calls": c.calls, "model_s": c.model_s,
                    "encode_s": c.encode_s, "decode_s": c.decode_s})
print(json.dumps(results))
"""


def _child(folders: list[Path], imp: bool) -> list[dict]:
    """Load (and run) the stand-ins in a fresh process, importing the op's module first or not."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, "1" if imp else "0", *map(str, folders)],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def gpu_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gpu_speed")
    return gpu_speed.build_all_gpu_speed_cosmos(root, encode_ms=40.0, decode_ms=60.0)


def test_build_writes_six_folders_and_the_holds(gpu_ckpt: Path) -> None:
    for setting in ALL_SETTINGS:
        assert (gpu_ckpt / setting.repo_name / "encoder.jit").is_file()
        assert (gpu_ckpt / setting.repo_name / "decoder.jit").is_file()
    config = json.loads((gpu_ckpt / gpu_speed.CONFIG_FILE).read_text())
    assert config["encode_ms_per_720p_frame"] == 40.0 and config["decode_ms_per_720p_frame"] == 60.0
    assert config["loader_must_import"] == "avtok_ui.testing.gpu_speed"


def test_fresh_process_loads_and_runs_the_op_only_after_import(gpu_ckpt: Path) -> None:
    folders = [gpu_ckpt / CV.repo_name, gpu_ckpt / DV.repo_name]
    missing = _child(folders[:1], imp=False)[0]
    assert "Unknown builtin op: avtok_gpu_speed::encode" in missing["error"]

    for setting, got in zip([CV, DV], _child(folders, imp=True), strict=True):
        tf, sf = setting.temporal, setting.spatial
        t, h, w = 1 + 16 // tf, 96 // sf, 128 // sf
        if setting.discrete:
            assert got["out"] == [[[1, t, h, w], "torch.int32"], [[1, 6, t, h, w], "torch.bfloat16"],
                                  [[1, 1, 1, 1, w], "torch.float32"]]
        else:
            assert got["out"] == [[[1, 16, t, h, w], "torch.bfloat16"],
                                  [[[1], "torch.float32"], [[1], "torch.float32"]]]
        assert got["dec"] == [[1, 3, 17, 96, 128], "torch.bfloat16"]
        # the ops ran (two calls) and held at least their scaled holds: 17 frames of 96x128 at 40 / 60 ms
        # per 720p frame (a sleep never returns early; nothing here measures speed)
        scale = 17 * 96 * 128 / (1280 * 720)
        assert got["calls"] == 2
        assert got["encode_s"] >= 0.040 * scale and got["decode_s"] >= 0.060 * scale
        assert got["model_s"] == pytest.approx(got["encode_s"] + got["decode_s"])


@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=lambda s: s.name)
def test_product_tokenizer_runs_the_stand_ins(gpu_ckpt: Path, setting: VisualSetting) -> None:
    tok = CosmosTokenizer.from_folder(setting, gpu_ckpt / setting.repo_name, device="cpu")
    assert tok.dtype == torch.bfloat16
    frames = np.random.default_rng(0).integers(0, 256, (9, 40, 56, 3), dtype=np.uint8)  # odd length and size
    gpu_speed.reset_model_clock()
    tokens = tok.encode_window(frames)
    assert tuple(tokens.shape) == tok.token_shape(9, 40, 56)
    assert tokens.dtype == (torch.int32 if setting.discrete else torch.bfloat16)
    if setting.discrete:
        assert 0 <= int(tokens.min()) and int(tokens.max()) < 64000
    recon = tok.decode_window(tokens, 9, 40, 56)
    assert recon.shape == (9, 40, 56, 3) and recon.dtype == np.uint8
    clock = gpu_speed.model_clock()
    assert clock.calls == 2 and clock.first_start is not None and clock.last_end is not None
    assert clock.last_end - clock.first_start >= clock.model_s > 0


def test_continuous_reconstruction_follows_the_source(gpu_ckpt: Path) -> None:
    """The CV stand-in's reconstruction is the source subsampled and block-upsampled (not noise): a flat
    source comes back flat at the same grey level."""
    tok = CosmosTokenizer.from_folder(CV, gpu_ckpt / CV.repo_name, device="cpu")
    frames = np.full((17, 32, 48, 3), 200, dtype=np.uint8)
    recon = tok.decode_window(tok.encode_window(frames), 17, 32, 48)
    assert np.abs(recon.astype(int) - 200).max() <= 1


@pytest.mark.slow
def test_cli_wrapper_runs_tokenize_and_writes_the_clock(gpu_ckpt: Path, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", width=64, height=48, n_frames=30, audio=False)
    stats = tmp_path / "stats.json"
    proc = subprocess.run(
        [sys.executable, "-m", "avtok_ui.testing.gpu_speed", "run", "--stats", str(stats), "--",
         "tokenize", str(clip), "-s", "CV8x16x16", "--checkpoints", str(gpu_ckpt), "--no-audio", "--no-metrics",
         "-q", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(stats.read_text())
    assert data["exit_code"] == 0
    assert data["calls"] == 2 * 2  # 30 frames = two 17-frame windows, one encode + one decode each
    assert data["wall_from_first_call_s"] >= data["model_s"] > 0
    assert (tmp_path / "out" / "clip.safetensors").is_file()
    assert (tmp_path / "out" / "clip_reconstructed.mp4").is_file()
