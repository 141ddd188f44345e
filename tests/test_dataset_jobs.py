"""`avtok dataset` end to end with a diffusers backend named in lower case (`-s wan2.1-4x8x8`, issue 10), and the
worker retry (`--retries`): one small real job (1 worker, tiny diffusers Wan VAE, tiny DAC) through the CLI, with
faults injected into the worker processes by file name (see `_dataset_faults.py`): a video whose tokenizer raises
an unexpected error once is retried and succeeds; one that raises every time is a `failed` row with its reason;
the same for a video that kills its worker process once / every time, and no other video is lost with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from _synth import make_video
from safetensors.torch import load, load_file

from avtok_ui.cli import main
from avtok_ui.dataset import TokenDataset
from avtok_ui.dataset.inputs import make_key
from avtok_ui.dataset.job import qa_keys
from avtok_ui.dataset.shards import read_index

HERE = Path(__file__).resolve().parent
CLIPS = {"a.mp4": {"n_frames": 9}, "b.mp4": {"n_frames": 6, "audio": False, "width": 40, "height": 30},
         "raise_once.mp4": {"n_frames": 5}, "raise_always.mp4": {"n_frames": 5}, "crash_once.mp4": {"n_frames": 5},
         "crash_always.mp4": {"n_frames": 5}}
GOOD = ("a.mp4", "b.mp4", "raise_once.mp4", "crash_once.mp4")
DIED = "the tokenizer worker died on it 2 times (crash or out of memory)"


def _end_session(sid: int) -> None:
    """SIGKILL what is left of the job's process session (Ray's agents take seconds to notice a shutdown)."""
    from test_dataset import _kill_session

    _kill_session(sid)


@pytest.fixture(scope="module")
def wan_job(tiny_diffusers_checkpoints, tmp_path_factory):
    d = tmp_path_factory.mktemp("wan_job")
    videos = d / "videos"
    videos.mkdir()
    for name, kw in CLIPS.items():
        make_video(videos / name, **kw)
    out = d / "out"
    cmd = [sys.executable, str(HERE / "_dataset_faults.py"), str(videos), str(out), "-s", "wan2.1-4x8x8",
           "--workers", "1", "--retries", "1", "--qa-fraction", "0.5", "--lpips", "off", "--shard-size", "1GB",
           "-q", "--offline", "--device", "cpu"]
    env = {**os.environ, "AVTOK_CHECKPOINTS": str(tiny_diffusers_checkpoints), "HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        stdout, stderr = p.communicate(timeout=900)
    finally:
        _end_session(p.pid)
    return {"videos": videos, "out": out, "rc": p.returncode, "stdout": stdout, "stderr": stderr}


@pytest.mark.slow
def test_dataset_job_takes_the_diffusers_setting_names(wan_job, tiny_diffusers_checkpoints, monkeypatch, tmp_path):
    out, videos = wan_job["out"], wan_job["videos"]
    assert wan_job["rc"] == 3, wan_job["stdout"] + wan_job["stderr"]  # the *_always videos failed, the rest ok
    summary = json.loads((out / "summary.json").read_text())
    assert summary["setting"] == "Wan2.1-4x8x8" and (summary["ok"], summary["failed"]) == (4, 2)
    assert json.loads((out / "job.json").read_text())["setting"] == "Wan2.1-4x8x8"
    # every sample is a valid Wan 2.1 token file: bf16 latents [1, t, h, w, 16]; frames padded to 1 + 4k
    samples = {s["key"]: s for s in TokenDataset(out)}
    assert sorted(samples) == sorted(make_key(n) for n in GOOD)
    for name in GOOD:
        s, kw = samples[make_key(name)], CLIPS[name]
        h, w = kw.get("height", 48), kw.get("width", 64)
        assert s["meta"]["setting"] == "Wan2.1-4x8x8" and s["visual"].dtype == torch.bfloat16
        assert tuple(s["visual"].shape) == (1, 1 + -(-(kw["n_frames"] - 1) // 4), -(-h // 8), -(-w // 8), 16), name
        assert (s["audio_codes"] is None) == (kw.get("audio") is False)
    # the shard's tokens are `avtok tokenize --tokens-only` tokens, bit for bit
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tiny_diffusers_checkpoints))
    assert main(["tokenize", str(videos / "a.mp4"), "-o", str(tmp_path), "-n", "ref", "-s", "WAN2.1-4X8X8",
                 "--tokens-only", "-q", "--device", "cpu", "--offline"]) == 0
    ref = load_file(tmp_path / "ref.safetensors")
    with tarfile.open(out / "shards" / "shard-000000.tar") as tar:
        got = load(tar.extractfile(f"{make_key('a.mp4')}.safetensors").read())
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    # the QA sample (those of its keys that succeeded) was reconstructed through the Wan decoder and scored
    index = {r["key"]: r for r in read_index(out)}
    qa = sorted(qa_keys(list(index), 0.5) & {make_key(n) for n in GOOD})
    assert qa and [k for k, r in index.items() if r["qa"]] == qa
    for key in qa:
        import av

        with av.open(str(out / "qa" / f"{key}_reconstructed.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == index[key]["frames"]
        assert index[key]["qa_psnr"] is not None


@pytest.mark.slow
def test_unexpected_worker_error_is_retried_then_succeeds(wan_job):
    row = {r["key"]: r for r in read_index(wan_job["out"])}[make_key("raise_once.mp4")]
    assert row["status"] == "ok" and row["error"] is None and row["attempts"] == 2  # failed once, then retried
    assert row["shard"] == "shard-000000.tar" and row["frames"] == 5


@pytest.mark.slow
def test_error_every_time_is_a_failed_row_with_its_reason(wan_job):
    out = wan_job["out"]
    row = {r["key"]: r for r in read_index(out)}[make_key("raise_always.mp4")]
    reason = "internal error (RuntimeError: injected fault in call 2)"  # the last of 1 + --retries attempts
    assert (row["status"], row["error"], row["attempts"], row["shard"]) == ("failed", reason, 2, None)
    summary = json.loads((out / "summary.json").read_text())
    assert {"key": row["key"], "source": row["source"], "error": reason} in summary["failed_inputs"]
    assert f"failed: {row['source']}: {reason}" in wan_job["stderr"].splitlines()
    assert "Traceback" not in wan_job["stderr"]
    with tarfile.open(out / "shards" / "shard-000000.tar") as tar:
        assert not [n for n in tar.getnames() if n.startswith(row["key"])]


def _crashes(videos: Path, name: str) -> int:
    marker = videos / f".{name}.crashes"  # one character per worker process the video killed
    return len(marker.read_text()) if marker.exists() else 0


@pytest.mark.slow
def test_worker_crash_is_retried_and_takes_only_its_own_video(wan_job):
    out, videos = wan_job["out"], wan_job["videos"]
    index = {r["key"]: r for r in read_index(out)}
    # killed its worker once: the restarted worker tokenized it
    assert _crashes(videos, "crash_once.mp4") == 1 and index[make_key("crash_once.mp4")]["status"] == "ok"
    # killed it every time: 1 + --retries deaths, then a failed row saying so; its error line is on stderr
    row = index[make_key("crash_always.mp4")]
    assert _crashes(videos, "crash_always.mp4") == 2
    assert (row["status"], row["error"], row["attempts"], row["shard"]) == ("failed", DIED, 2, None)
    assert f"failed: {row['source']}: {DIED}" in wan_job["stderr"].splitlines()
    # no other video was lost with the dying worker
    assert sorted(k for k, r in index.items() if r["status"] == "ok") == sorted(make_key(n) for n in GOOD)
    assert "Traceback" not in wan_job["stderr"] + wan_job["stdout"]


def test_prompt_dispatch_lowers_ray_datas_wait_for_the_job_only():
    """The job shortens Ray Data's wait for running tasks (a worker that finishes while the others are busy
    otherwise idles up to 0.1 s per video) and restores it afterwards, even when the consumer stops early. The
    constant is private to the pinned Ray: this fails when an upgrade renames it, instead of a silent slowdown."""
    from ray.data._internal.execution import streaming_executor_state as ses

    from avtok_ui.dataset import job

    before = ses.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S
    assert isinstance(before, float) and before > job.DISPATCH_WAIT_S
    with job._prompt_dispatch():
        assert ses.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == job.DISPATCH_WAIT_S
    assert ses.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == before

    def rows():
        with job._prompt_dispatch():
            yield 1
            yield 2

    gen = rows()
    assert next(gen) == 1 and ses.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == job.DISPATCH_WAIT_S
    gen.close()  # the job's consumer stopped (Ctrl-C, an error): restored
    assert ses.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == before


def test_unreachable_cluster_address_is_a_one_line_error_at_once(tmp_path, tiny_checkpoints):
    """``--address host:port`` / ``ray://host:port`` with nothing listening: one line and exit 1 within
    seconds (Ray alone retries for minutes without a word); a listening address and ``auto`` pass the check."""
    import socket
    import time

    from avtok_ui.dataset import job
    from avtok_ui.errors import AvtokError

    with socket.socket() as s:  # a free port, closed again: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        t0 = time.monotonic()
        with pytest.raises(AvtokError, match=rf"^cannot join the Ray cluster at {address} \(.+\)$"):
            job._check_reachable(address)
        assert time.monotonic() - t0 < job.CONNECT_TIMEOUT_S + 1
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        job._check_reachable(f"127.0.0.1:{srv.getsockname()[1]}")  # reachable: no error
    job._check_reachable("auto")  # left to Ray

    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "a.mp4", n_frames=3)
    r = subprocess.run([sys.executable, "-m", "avtok_ui.cli", "dataset", str(videos), str(tmp_path / "out"),
                        "--offline", "--no-audio", "--address", f"127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=120,
                       env=os.environ | {"HF_HUB_OFFLINE": "1", "AVTOK_CHECKPOINTS": str(tiny_checkpoints)})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: cannot join the Ray cluster at 127.0.0.1:{port} "
                                             "(Connection refused)"]
