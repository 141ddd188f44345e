"""The diffusers backends end to end from the CLI with tiny random-weight VAEs: tokenize -> token file
(backend, class, config hash, bf16 [1, t, h, w, C]) -> info -> reconstruct (tokens-only path), and
`avtok settings` with licences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _synth import make_video
from safetensors import safe_open

from avtok_ui import media
from avtok_ui.backends import parse_setting
from avtok_ui.cli import main
from avtok_ui.tokens import load_tokens

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("vid") / "clip.mp4"
    make_video(p, n_frames=11, fps=25, audio=False, width=40, height=24)
    return p


@pytest.fixture()
def env(tiny_diffusers_checkpoints: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tiny_diffusers_checkpoints))
    return tiny_diffusers_checkpoints


@pytest.mark.slow
# every diffusers setting end to end through the CLI (names in mixed case: parsing is case-insensitive)
@pytest.mark.parametrize("name", ["wan2.1-4x8x8", "WAN2.2-4x16x16", "hunyuanvideo-4x8x8", "CogVideoX-4x8x8",
                                  "LTXVideo-8x32x32", "cosmos1-cv8x8x8"])
def test_tokenize_info_reconstruct(name: str, clip: Path, env: Path, tmp_path: Path, capsys) -> None:
    s = parse_setting(name)
    out = tmp_path / "o"
    rc = main(["tokenize", str(clip), "-s", name, "-w", "9", "-o", str(out), "--lpips", "off", "-q",
               "--offline", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    tok = out / "clip.safetensors"
    tf = load_tokens(tok)
    assert tf.meta.setting == s.name and tf.setting == s
    lh, lw = s.latent_grid(24, 40)
    assert list(tf.visual.shape) == [1, s.latent_frames(11, 9), lh, lw, s.latent_channels]
    assert tf.visual.dtype == torch.bfloat16
    b = tf.meta.backend
    assert b["backend"] == "diffusers" and b["class"] == s.diffusers_class and len(b["config_sha256_16"]) == 16
    with safe_open(str(tok), framework="pt") as f:  # recorded in the file's own metadata
        assert json.loads(f.metadata()["weights"])["backend"]["class"] == s.diffusers_class
    rec = media.probe(out / "clip_reconstructed.mp4")
    assert (rec.n_frames, rec.width, rec.height) == (11, 40, 24)
    report = json.loads((out / "clip_metrics.json").read_text())
    r = report["tokens"] if "tokens" in report else report.get("readouts", report)
    text = json.dumps(r)
    assert "latent_values_per_source_pixel" in text and "visual_bits_per_source_pixel" in text
    capsys.readouterr()
    assert main(["info", str(tok)]) == 0
    info = capsys.readouterr().out
    assert s.diffusers_class in info and "bits per source pixel" in info
    # tokens-only path: reconstruct from the file alone
    rc = main(["reconstruct", str(tok), "-o", str(tmp_path / "r"), "-q", "--offline", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    again = media.probe(next((tmp_path / "r").glob("*_reconstructed*.mp4")))
    assert (again.n_frames, again.width, again.height) == (11, 40, 24)


def test_info_estimates_and_settings_list_every_backend(clip: Path, env: Path, capsys) -> None:
    assert main(["info", str(clip), "--json"]) == 0
    est = json.loads(capsys.readouterr().out)["estimates"]
    wan = est["Wan2.2-4x16x16"]
    assert wan["latent_grid"] == {"t": 4, "h": 2, "w": 3}  # 11 frames in one window: 1+ceil(10/4) and wan["latent_channels"] == 48
    assert wan["latent_values_per_source_pixel"] == pytest.approx(4 * 2 * 3 * 48 / (11 * 24 * 40))
    assert wan["visual_bits_per_source_pixel"] == pytest.approx(4 * 2 * 3 * 96 * 8 / (11 * 24 * 40))
    assert est["DV8x16x16"]["latent_values_per_source_pixel"] == pytest.approx(3 * 2 * 3 / (11 * 24 * 40))
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    for needle in ("Wan2.1-4x8x8", "Tencent Hunyuan Community License", "LTX-Video open weights",
                   "NVIDIA Open Model License", "Apache-2.0"):
        assert needle in out
    assert "Wan2.1-4x8x8  Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in out and "found" in out


def test_unknown_setting_is_one_line(clip: Path, tmp_path: Path, capsys) -> None:
    rc = main(["tokenize", str(clip), "-s", "Wan9-4x8x8", "-o", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err.strip()
    assert rc in (1, 2) and len(err.splitlines()) == 1 and "Wan2.1-4x8x8" in err


@pytest.mark.slow
def test_service_runs_a_named_diffusers_setting(tiny_diffusers_checkpoints: Path, clip: Path, tmp_path: Path) -> None:
    """The app's service (API /tokenize, /sweep with named settings) takes a diffusers name, any case; a
    missing VAE is refused with its one-line reason."""
    from avtok_ui.service import AppConfig, RunRequest, Service

    svc = Service(AppConfig(checkpoint_dir=str(tiny_diffusers_checkpoints), run_root=str(tmp_path / "runs"),
                            max_duration_s=0))
    svc.config.allow_download = False
    out = svc.run(RunRequest(str(clip), "cosmos1-cv8x8x8", 9, 0, "cpu", lpips="off"))
    rep = out.record()["report"]
    assert rep["setting"] == "Cosmos1-CV8x8x8"
    assert rep["readouts"]["latent_channels"] == 16 and rep["readouts"]["family"] == "Cosmos 1.0"
    empty = Service(AppConfig(checkpoint_dir=str(tmp_path / "none"), run_root=str(tmp_path / "r2"), max_duration_s=0))
    (tmp_path / "none").mkdir()
    empty.config.allow_download = False
    with pytest.raises(Exception, match="Cosmos1-CV8x8x8 checkpoint not found|does not exist"):
        empty.run(RunRequest(str(clip), "Cosmos1-CV8x8x8", 9, 0, "cpu", lpips="off"))
