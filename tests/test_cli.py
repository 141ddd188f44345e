"""The two CLIs as a user runs them: outputs, exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _synth import make_video

from avtok_ui.cli import main, tokenize_video_main

BIN = Path(sys.executable).parent


def _all_files(*dirs: Path) -> list[str]:
    return sorted(str(p) for d in dirs if d.exists() for p in d.rglob("*"))


@pytest.fixture(scope="module")
def src_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    make_video(d / "clip.mp4", n_frames=20, fps=25, audio=True)
    make_video(d / "silent.mp4", n_frames=12, fps=30, audio=False)
    (d / "notes.mp4").write_text("this is a text file, not a video\n")
    (d / "empty.mp4").write_bytes(b"")
    return d


def test_tokenize_video_seed_interface(src_dir, checkpoints_env, tmp_path, capsys):
    tok, rec = tmp_path / "tokens", tmp_path / "recon"
    rc = tokenize_video_main([str(src_dir), "clip.mp4", "nick", "true", "8", "16", str(tok), str(rec),
                              "--lpips", "off", "-q"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in tok.glob("*.safetensors")) == ["nick.safetensors"]
    assert sorted(p.name for p in rec.iterdir()) == [
        "nick_reconstructed.mp4", "nick_reconstructed_audio.wav", "nick_reconstructed_visual.mp4"]
    wav = src_dir / "clip_audio.wav"  # the extracted audio goes beside the video, as in the seed tool
    assert wav.exists()
    import wave

    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (44100, 2, 1)
        assert abs(w.getnframes() - round(20 / 25 * 44100)) <= 1
    out = capsys.readouterr().out
    assert "visual" in out and "PSNR" in out
    wav.unlink()


@pytest.mark.parametrize("args,needle", [
    (["missing.mp4", "n", "true", "8", "16"], "missing.mp4"),
    (["notes.mp4", "n", "true", "8", "16"], "notes.mp4"),
    (["empty.mp4", "n", "true", "8", "16"], "empty.mp4"),
    (["clip.mp4", "n", "true", "4", "16"], "temporal 4 only with spatial 8"),
    (["clip.mp4", "n", "perhaps", "8", "16"], "is_discrete"),
])
def test_tokenize_video_bad_inputs(args, needle, src_dir, checkpoints_env, tmp_path, capsys):
    tok, rec = tmp_path / "tokens", tmp_path / "recon"
    before = _all_files(src_dir)
    rc = tokenize_video_main([str(src_dir), *args, str(tok), str(rec), "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err
    assert "Traceback" not in err
    assert _all_files(tok, rec) == [] and _all_files(src_dir) == before


def test_missing_weights_one_line(src_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tmp_path / "empty-ckpt"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    rc = main(["tokenize", str(src_dir / "clip.mp4"), "-o", str(tmp_path / "o"), "--offline", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1
    assert "encoder.jit" in err and "AVTOK_CHECKPOINTS" in err
    assert _all_files(tmp_path / "o") == []


def test_avtok_tokenize_info_reconstruct(src_dir, checkpoints_env, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["tokenize", str(src_dir / "silent.mp4"), "-s", "CV8x8x8", "-w", "9", "-o", str(out), "-q",
               "--lpips", "off"])
    assert rc == 0, capsys.readouterr().err
    tok = out / "silent.safetensors"
    assert tok.exists() and (out / "silent_metrics.json").exists()
    report = json.loads((out / "silent_metrics.json").read_text())
    assert report["setting"] == "CV8x8x8" and report["config"]["window"] == 9
    capsys.readouterr()
    assert main(["info", str(tok)]) == 0
    text = capsys.readouterr().out
    assert "CV8x8x8" in text and "12 frames" in text
    assert main(["info", str(src_dir / "clip.mp4"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["estimates"]["DV8x16x16"]["latent_grid"] == {"t": 5, "h": 3, "w": 4}  # windows 17+3 -> 3+2
    assert main(["reconstruct", str(tok), "-o", str(tmp_path / "r"), "-q"]) == 0
    assert (tmp_path / "r" / "silent_reconstructed.mp4").exists()


def test_bad_window_and_codebooks(src_dir, checkpoints_env, tmp_path, capsys):
    assert main(["tokenize", str(src_dir / "clip.mp4"), "-w", "16", "-o", str(tmp_path), "-q"]) == 1
    assert "window 16" in capsys.readouterr().err
    assert main(["tokenize", str(src_dir / "clip.mp4"), "--codebooks", "12", "-o", str(tmp_path), "-q"]) == 1
    assert "codebooks" in capsys.readouterr().err


@pytest.mark.slow
def test_console_scripts_installed(src_dir, checkpoints_env, tmp_path):
    """The real entry points, as a shell user runs them (subprocess, exit codes, stderr)."""
    env = dict(os.environ)
    p = subprocess.run([str(BIN / "tokenize_video"), str(src_dir), "notes.mp4", "n", "1", "8", "8",
                        str(tmp_path / "t"), str(tmp_path / "r")], capture_output=True, text=True, env=env)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "notes.mp4" in p.stderr
    p = subprocess.run([str(BIN / "avtok"), "compare", str(src_dir / "clip.mp4"), str(src_dir / "clip.mp4"),
                        "--lpips", "off", "-q"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "inf" in p.stdout.lower() or "∞" in p.stdout


def test_rerun_removes_outputs_the_new_run_does_not_make(src_dir, checkpoints_env, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["tokenize", str(src_dir / "clip.mp4"), "-o", str(out), "-n", "same", "-q", "--lpips", "off"]) == 0
    assert (out / "same_metrics.json").exists() and (out / "same_reconstructed_audio.wav").exists()
    assert main(["tokenize", str(src_dir / "clip.mp4"), "-o", str(out), "-n", "same", "-q", "-s", "CV8x8x8",
                 "--no-audio", "--no-metrics"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "same.safetensors", "same_reconstructed.mp4", "same_reconstructed_visual.mp4"]


def test_unwritable_output_and_no_empty_folders(src_dir, checkpoints_env, tmp_path, capsys):
    if os.geteuid() == 0:
        blocker = tmp_path / "file-not-dir"
        blocker.write_text("x")
        target = blocker / "sub"  # a folder cannot be created under a file, even as root
    else:
        target = tmp_path / "ro" / "sub"
        (tmp_path / "ro").mkdir(mode=0o500)
    assert main(["tokenize", str(src_dir / "clip.mp4"), "-o", str(target), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "output folder is not writable" in err and "internal" not in err
    # a failing run does not leave the empty folders it created
    deep = tmp_path / "a" / "b"
    assert tokenize_video_main([str(src_dir), "notes.mp4", "n", "1", "8", "8", str(deep / "t"), str(deep / "r"),
                                "-q"]) == 1
    assert not (tmp_path / "a").exists()


def test_reconstruct_given_a_video_and_missing_dir(src_dir, tmp_path, capsys):
    assert main(["reconstruct", str(src_dir / "clip.mp4"), "-o", str(tmp_path)]) == 1
    assert "is a video, not a token file" in capsys.readouterr().err
    assert tokenize_video_main([str(tmp_path / "nodir"), "clip.mp4", "n", "1", "8", "8", "t", "r"]) == 1
    assert f"{tmp_path / 'nodir'}: orig_video_dir is not a folder" in capsys.readouterr().err


def test_compare_matches_a_trimmed_run(src_dir, checkpoints_env, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["tokenize", str(src_dir / "clip.mp4"), "-o", str(out), "--start", "0.2", "--duration", "0.4",
                 "-q", "--lpips", "off"]) == 0
    capsys.readouterr()
    js = tmp_path / "c.json"
    assert main(["compare", str(src_dir / "clip.mp4"), str(out / "clip_reconstructed_visual.mp4"),
                 "--start", "0.2", "--duration", "0.4", "--lpips", "off", "-q", "--json", str(js)]) == 0
    rep = json.loads(js.read_text())
    run = json.loads((out / "clip_metrics.json").read_text())
    assert rep["video_metrics"]["n_frames"] == run["video_metrics"]["n_frames"] == 10
    # compare scores the H.264 file, the run the decoder's frames: close, not equal
    assert abs(rep["video_metrics"]["psnr"] - run["video_metrics"]["psnr"]) < 1.0
    assert "H.264 round trip" in rep["video_metrics"]["conventions"]["scored_on"]


def test_info_pipe_closed_early(src_dir):
    p = subprocess.run(f"'{BIN / 'avtok'}' info '{src_dir / 'clip.mp4'}' | head -1", shell=True,
                       capture_output=True, text=True)
    assert "clip.mp4" in p.stdout and "error" not in p.stderr.lower()


@pytest.mark.slow
def test_ctrl_c_exits_130_and_leaves_nothing(checkpoints_env, tmp_path):
    import signal
    import time

    # long enough that the run is surely still going when the signal lands
    src = make_video(tmp_path / "long.mp4", width=256, height=144, n_frames=1500, fps=25, audio=True)
    out = tmp_path / "out"
    # restore SIGINT's default in the child: a test run started in the background of a non-interactive shell
    # (CI) inherits SIGINT ignored, and a process that starts with it ignored never sees Ctrl-C
    proc = subprocess.Popen([str(BIN / "avtok"), "tokenize", str(src), "-o", str(out), "--lpips", "off"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.startswith(".avtok-staging") for p in out.glob(".*")):
        time.sleep(0.05)  # wait until the run is writing
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted; no outputs were written"
    assert "Traceback" not in err
    assert _all_files(out) == []


def test_missing_weights_are_reported_together_with_their_flags(src_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AVTOK_CHECKPOINTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    rc = main(["tokenize", str(src_dir / "clip.mp4"), "-o", str(tmp_path / "o"), "--offline", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1, err
    # both pieces in one message, each with the flag that provides it
    assert "2 weight files missing" in err and "(1) DV8x16x16 checkpoint not found" in err
    assert "(2) DAC weights not found" in err and "--checkpoints DIR" in err and "--dac-weights PATH" in err
    # a silent clip needs no DAC: only the Cosmos piece is named
    rc = main(["tokenize", str(src_dir / "silent.mp4"), "-o", str(tmp_path / "o"), "--offline", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "DV8x16x16 checkpoint not found" in err and "DAC" not in err
    assert _all_files(tmp_path / "o") == []


def test_settings_show_path_size_hash_and_flag_stand_ins(tiny_checkpoints, capsys):
    import hashlib

    assert main(["settings", "--checkpoints", str(tiny_checkpoints),
                 "--dac-weights", str(tiny_checkpoints / "dac")]) == 0
    out = capsys.readouterr().out
    enc = tiny_checkpoints / "Cosmos-0.1-Tokenizer-CV4x8x8" / "encoder.jit"
    line = next(ln for ln in out.splitlines() if str(enc) in ln)
    assert hashlib.sha256(enc.read_bytes()).hexdigest()[:12] in line
    kb = enc.stat().st_size / 1e3
    assert f"{kb:.1f} KB" in line or f"{kb / 1e3:.1f} MB" in line, line
    # random-weight stand-ins are far from the published sizes: said plainly, for every file
    assert "NOT the published file's size (~60.6 MB)" in line
    assert out.count("NOT the published file's size") == 13  # 6 x (encoder, decoder) + DAC


def test_compare_error_names_roles_and_trim(src_dir, capsys):
    clip = str(src_dir / "clip.mp4")
    assert main(["compare", clip, clip, "--duration", "0.4", "--lpips", "off", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "the reconstruction has 20 frames but the original clip.mp4 trimmed" in err, err
    assert "--duration 0.4" in err and "has 10" in err


def test_identical_files_spell_infinity_one_way(src_dir, capsys):
    clip = str(src_dir / "clip.mp4")
    assert main(["compare", clip, clip, "--lpips", "off", "-q"]) == 0
    out = capsys.readouterr().out
    assert "PSNR   ∞ (lossless)" in out and "SI-SDR ∞" in out, out
    assert "inf" not in out.replace("info", "")


def test_help_keeps_each_command_on_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert any(ln.split()[:2] == ["reconstruct", "token"] for ln in out.splitlines()), out
    assert not any(ln.strip() == "reconstruct" for ln in out.splitlines())


def test_readme_synopsis_names_every_tokenize_option():
    import argparse

    from avtok_ui.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    synopsis = readme.split("## CLI", 1)[1].split("```", 2)[1]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    import re

    def named(opt: str) -> bool:
        return re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", synopsis) is not None

    missing = [a.option_strings for a in sub.choices["tokenize"]._actions
               if a.option_strings and "--help" not in a.option_strings and not any(map(named, a.option_strings))]
    assert not missing, missing


def test_usage_errors_exit_2_and_input_errors_exit_1(src_dir, capsys):
    # the README's promise, checked: a bad option value is argparse's usage error (exit 2) ...
    with pytest.raises(SystemExit) as e:
        main(["tokenize", str(src_dir / "clip.mp4"), "--lpips", "foo"])
    assert e.value.code == 2 and "usage:" in capsys.readouterr().err
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "exits 2" in readme and "exits 1" in readme and "`error: <problem>`" in readme
