"""`avtok dataset`: inputs and keys, job-level errors, and one real Ray job (2 CPUs, tiny models) that is
SIGKILLed mid-run and resumed; its shards are then checked against `avtok tokenize`, the index, the summary,
`TokenDataset` and plain `webdataset`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
from _synth import make_video
from safetensors.torch import load, load_file

from avtok_ui.cli import main
from avtok_ui.dataset.inputs import collect_inputs, make_key
from avtok_ui.dataset.job import plan_workers, qa_keys
from avtok_ui.dataset.shards import parse_size, read_index

# ----------------------------------------------------------------------------------------------------
# inputs, keys, plans (no Ray)
# ----------------------------------------------------------------------------------------------------


def test_keys_are_stable_unique_and_webdataset_safe(tmp_path):
    (tmp_path / "v" / "ep 1").mkdir(parents=True)
    for rel in ("a.mp4", "a.mov", "ep 1/x.y.mkv", ".hidden/z.mp4", "notes.txt"):
        (tmp_path / "v" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "v" / rel).write_bytes(b"x")
    items = collect_inputs(tmp_path / "v")
    assert sorted(it.rel for it in items) == ["a.mov", "a.mp4", "ep 1/x.y.mkv"]  # hidden and non-videos skipped
    keys = [it.key for it in items]
    assert len(set(keys)) == 3 and all("." not in k and "/" not in k for k in keys)
    assert make_key("ep 1/x.y.mkv") in keys and make_key("ep 1/x.y.mkv").startswith("ep_1__x_y-")
    # the same relative path and trim give the same key anywhere; another trim another key
    assert {it.rel: it.key for it in collect_inputs(tmp_path / "v")}["a.mp4"] == make_key("a.mp4")
    assert make_key("a.mp4", 10, 5) != make_key("a.mp4") != make_key("a.mov")
    # a glob: keys from the path below the fixed prefix, the same as the folder's
    assert {it.key for it in collect_inputs(str(tmp_path / "v" / "**" / "*.mkv"))} == {make_key("ep 1/x.y.mkv")}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_manifests(fmt, tmp_path):
    (tmp_path / "clips").mkdir()
    rows = [{"path": "clips/a.mp4", "start_s": 1.5, "duration_s": 2.0, "key": None},
            {"path": str(tmp_path / "b.mp4"), "start_s": None, "duration_s": None, "key": "my_b"}]
    m = tmp_path / f"m.{fmt}"
    if fmt == "csv":
        m.write_text("path,start_s,duration_s,key\nclips/a.mp4,1.5,2,\n" + f"{tmp_path / 'b.mp4'},,,my_b\n")
    elif fmt == "jsonl":
        m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), m)
    items = {it.path: it for it in collect_inputs(m, start_s=0.5)}
    a, b = items[str(tmp_path / "clips" / "a.mp4")], items[str(tmp_path / "b.mp4")]
    assert a.path == str(tmp_path / "clips" / "a.mp4")  # relative to the manifest's folder
    assert (a.start_s, a.duration_s, a.key) == (1.5, 2.0, make_key("clips/a.mp4", 1.5, 2.0))
    assert (b.start_s, b.duration_s, b.key) == (0.5, None, "my_b")  # the default trim where none is given


@pytest.mark.parametrize("content,needle", [
    ("file,start_s\nx.mp4,0\n", "no 'path' column"),
    ("path,start_s\nx.mp4,soon\n", "start_s must be a number"),
    ("path,key\nx.mp4,a.b\n", "key 'a.b'"),
    ("path\nx.mp4\nx.mp4\n", "listed twice"),
])
def test_bad_manifest_is_one_line(content, needle, tmp_path, capsys):
    m = tmp_path / "m.csv"
    m.write_text(content)
    rc = main(["dataset", str(m), str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err
    assert not (tmp_path / "out").exists()


def test_job_level_errors_before_any_work(tmp_path, monkeypatch, capsys):
    videos = tmp_path / "v"
    videos.mkdir()
    make_video(videos / "a.mp4", n_frames=9)
    # bad INPUT
    assert main(["dataset", str(tmp_path / "nope"), str(tmp_path / "o1"), "-q"]) == 1
    assert "no such folder, manifest or file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["dataset", str(tmp_path / "empty"), str(tmp_path / "o1"), "-q"]) == 1
    assert "no video files" in capsys.readouterr().err
    # OUT not writable (a file where the folder should be)
    (tmp_path / "file").write_text("x")
    assert main(["dataset", str(videos), str(tmp_path / "file" / "out"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "output folder is not writable" in err
    # missing weights: the same one-line message as `avtok tokenize`
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tmp_path / "empty-ckpt"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["dataset", str(videos), str(tmp_path / "o2"), "--offline", "-q"]) == 1
    err_ds = capsys.readouterr().err.strip()
    assert main(["tokenize", str(videos / "a.mp4"), "-o", str(tmp_path / "o3"), "--offline", "-q"]) == 1
    err_tok = capsys.readouterr().err.strip()
    assert err_ds == err_tok and "encoder.jit" in err_ds and len(err_ds.splitlines()) == 1
    assert not list((tmp_path / "o2").glob("shards/*"))


def test_plan_and_helpers():
    assert plan_workers(2, 0, 2, None, None) == (2, 0.5, 0.0)  # two actors leave a CPU to Ray Data's tasks
    assert plan_workers(2, 0, None, None, None) == (1, 1.0, 0.0)
    assert plan_workers(16, 4, None, None, None) == (4, 3.75, 1.0)  # one actor per GPU
    assert plan_workers(16, 1, 4, 0.25, None)[0] == 4
    assert parse_size("1GB") == 10**9 and parse_size("64KiB") == 65536 and parse_size("500") == 500
    keys = [f"k{i}" for i in range(50)]
    assert len(qa_keys(keys, 0.02)) == 1 and qa_keys(keys, 0.1) == qa_keys(list(reversed(keys)), 0.1)
    assert qa_keys(keys, 0) == set()


# ----------------------------------------------------------------------------------------------------
# one real job: killed mid-run (SIGKILL), then resumed
# ----------------------------------------------------------------------------------------------------
GOOD = {"a.mp4": {"n_frames": 30}, "sub/silent.mp4": {"n_frames": 20, "audio": False},
        "odd.mp4": {"width": 33, "height": 25, "pix_fmt": "yuv444p", "n_frames": 12},
        "vfr.mp4": {"vfr": True, "n_frames": 25}, "sub/deeper/c.mp4": {"n_frames": 40, "audio_channels": 1},
        "d.mov": {"n_frames": 17, "fps": 30}}
BAD = {"corrupt.mp4": "truncated or corrupt", "notes.mp4": "not a readable video file"}


def _dataset_cmd(videos: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "avtok_ui.cli", "dataset", str(videos), str(out), "--qa-fraction", "0.25",
            "--lpips", "off", "--shard-size", "8kB", "-q", *extra]


def _env(ckpt: Path) -> dict[str, str]:
    return {**os.environ, "AVTOK_CHECKPOINTS": str(ckpt), "HF_HUB_OFFLINE": "1"}


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (the killed driver's; Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("library")
    for rel, kw in GOOD.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        make_video(d / rel, **kw)
    full = make_video(d / "full.mp4", width=128, height=96, n_frames=45, faststart=True)
    (d / "corrupt.mp4").write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])  # truncated
    full.unlink()
    (d / "notes.mp4").write_text("not a video\n")
    return d


@pytest.fixture(scope="module")
def job(videos, tiny_checkpoints, tmp_path_factory):
    """Run 1 (one worker) is SIGKILLed once a shard is complete; run 2 (two workers) is the same command."""
    out = tmp_path_factory.mktemp("dataset") / "out"
    env = _env(tiny_checkpoints)
    p = subprocess.Popen(_dataset_cmd(videos, out, "--workers", "1"), env=env, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not list((out / "shards").glob("shard-*.tar")) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        time.sleep(1)
        _kill_session(p.pid)  # Ray's per-node agents outlive a SIGKILLed driver: end them (same session)
    killed_shards = {s.name: s.stat().st_mtime_ns for s in (out / "shards").glob("shard-*.tar")}
    assert p.returncode == -signal.SIGKILL, p.stdout.read().decode()[-2000:]
    assert 1 <= len(killed_shards) and not (out / "summary.json").exists()  # really interrupted mid-run
    p2 = subprocess.Popen(_dataset_cmd(videos, out, "--workers", "2"), env=env, start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = p2.communicate(timeout=900)
    finally:
        _kill_session(p2.pid)  # worker processes take a few seconds to notice Ray's shutdown: don't wait
    r = subprocess.CompletedProcess(p2.args, p2.returncode, stdout, stderr)
    return {"out": out, "killed_shards": killed_shards, "run": r}


@pytest.mark.slow
def test_resumed_job_has_every_input_exactly_once(job, videos):
    out, r = job["out"], job["run"]
    assert r.returncode == 3, r.stdout + r.stderr  # some inputs failed
    assert "Traceback" not in r.stderr
    assert "logging.cc" not in r.stderr + r.stdout  # Ray's native start-up line is not shown to the user
    shards = sorted((out / "shards").glob("*"))
    assert all(s.name.startswith("shard-") and s.suffix == ".tar" for s in shards)  # no partial left
    for name, mtime in job["killed_shards"].items():  # the killed run's complete shards were kept as they were
        assert (out / "shards" / name).stat().st_mtime_ns == mtime
    keys_in_shards = []
    for s in shards:
        with tarfile.open(s) as tar:
            names = tar.getnames()
        assert len(names) == 2 * len({n.split(".")[0] for n in names})  # .safetensors + .json per sample
        keys_in_shards += sorted({n.split(".")[0] for n in names})
    assert len(keys_in_shards) == len(set(keys_in_shards)) == len(GOOD)
    assert set(keys_in_shards) == {make_key(rel) for rel in GOOD}
    # failed rows: one line each, naming the file and the problem; listed in the summary and on stderr
    index = {row["key"]: row for row in read_index(out)}
    assert set(index) == {make_key(rel) for rel in [*GOOD, *BAD]}
    for rel, needle in BAD.items():
        row = index[make_key(rel)]
        assert row["status"] == "failed" and row["shard"] is None
        assert Path(rel).name in row["error"] and needle in row["error"] and "\n" not in row["error"]
        assert row["error"] in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert {f["key"] for f in summary["failed_inputs"]} == {make_key(rel) for rel in BAD}


@pytest.mark.slow
def test_index_and_summary_agree_with_shards(job):
    out = job["out"]
    index = {row["key"]: row for row in read_index(out)}
    seen = {}
    for s in sorted((out / "shards").glob("shard-*.tar")):
        with tarfile.open(s) as tar:
            for m in tar:
                key, ext = m.name.split(".", 1)
                data = tar.extractfile(m).read()
                if ext == "json":
                    rec = json.loads(data)
                    assert rec["key"] == key and index[key]["shard"] == s.name and index[key]["status"] == "ok"
                    seen.setdefault(key, {})["rec"] = rec
                else:
                    seen.setdefault(key, {})["tok"] = load(data)
    visual = audio = 0
    for key, v in seen.items():
        row, tok = index[key], v["tok"]
        _, t, h, w = tok["visual"].shape
        assert row["visual_tokens"] == t * h * w == v["rec"]["visual_tokens"]
        n_audio = tok["audio_codes"].numel() if "audio_codes" in tok else 0
        assert row["audio_tokens"] == n_audio
        assert row["frames"] == int(tok["frame_pts"].numel()) == int(tok["window_frames"].sum())
        visual, audio = visual + row["visual_tokens"], audio + n_audio
    assert index[make_key("sub/silent.mp4")]["audio_tokens"] == 0
    assert index[make_key("odd.mp4")]["width"] == 33 and index[make_key("odd.mp4")]["frames"] == 12
    s = json.loads((out / "summary.json").read_text())
    assert (s["inputs"], s["ok"], s["failed"]) == (len(GOOD) + len(BAD), len(GOOD), len(BAD))
    assert (s["visual_tokens"], s["audio_tokens"], s["total_tokens"]) == (visual, audio, visual + audio)
    hours = sum(row["duration_s"] for row in index.values() if row["status"] == "ok") / 3600
    assert s["hours_of_video"] == pytest.approx(hours) and s["shards"] == len(list(out.glob("shards/*.tar")))
    assert s["processed_this_run"] < len(GOOD) + len(BAD)  # the resumed run skipped the killed run's shards
    assert s["workers"]["workers"] == 2 and s["workers"]["cpus_per_worker"] == pytest.approx(0.5)
    # QA sample: reconstruction + metrics as `avtok tokenize` writes them, scores in the index and qa/summary
    qa = [k for k, row in index.items() if row["qa"]]
    assert qa == sorted(qa_keys(list(index), 0.25) & set(seen))
    qs = json.loads((out / "qa" / "summary.json").read_text())
    assert sorted(qs["keys"]) == sorted(qa) and qs["psnr_db"]["n"] == len(qa)
    for key in qa:
        metrics = json.loads((out / "qa" / f"{key}_metrics.json").read_text())
        assert metrics["video_metrics"]["psnr"] == pytest.approx(index[key]["qa_psnr"])
        import av

        with av.open(str(out / "qa" / f"{key}_reconstructed.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == index[key]["frames"]


@pytest.mark.slow
def test_tokens_equal_avtok_tokenize_tokens_only(job, videos, checkpoints_env, tmp_path):
    out = job["out"]
    shard_tokens = {}
    for s in sorted((out / "shards").glob("shard-*.tar")):
        with tarfile.open(s) as tar:
            for m in tar:
                if m.name.endswith(".safetensors"):
                    shard_tokens[m.name.split(".")[0]] = load(tar.extractfile(m).read())
    for rel in GOOD:
        rc = main(["tokenize", str(videos / rel), "-o", str(tmp_path), "-n", "ref", "--tokens-only", "-q"])
        assert rc == 0
        ref = load_file(tmp_path / "ref.safetensors")
        got = shard_tokens[make_key(rel)]
        assert set(got) == set(ref), rel
        for name in ref:
            assert got[name].dtype == ref[name].dtype and torch.equal(got[name], ref[name]), (rel, name)


@pytest.mark.slow
def test_token_dataset_and_webdataset_read_every_sample(job):
    from torch.utils.data import DataLoader

    from avtok_ui.dataset import TokenDataset

    out = job["out"]
    want = {make_key(rel) for rel in GOOD}
    got = [s["key"] for s in DataLoader(TokenDataset(out), batch_size=None, num_workers=2)]
    assert sorted(got) == sorted(want)
    parts = [[s["key"] for s in TokenDataset(out, rank=r, world_size=3)] for r in range(3)]
    assert sorted(sum(parts, [])) == sorted(want) and all(parts)  # disjoint ranks, together everything
    sample = next(s for s in TokenDataset(out) if s["key"] == make_key("a.mp4"))
    t = sample["visual"].shape[1]
    assert sample["visual"].dtype == torch.uint16 and sample["audio_codes"].shape[0] == 9
    assert sample["audio_latent_offsets"].shape == (t + 1,) and sample["meta"]["setting"] == "DV8x16x16"
    silent = next(s for s in TokenDataset(out) if s["key"] == make_key("sub/silent.mp4"))
    assert silent["audio_codes"] is None

    import webdataset as wds

    urls = [str(p) for p in sorted((out / "shards").glob("shard-*.tar"))]
    plain = list(wds.WebDataset(urls, shardshuffle=False))
    assert sorted(s["__key__"] for s in plain) == sorted(want)
    assert all(set(s) >= {"safetensors", "json"} for s in plain)


@pytest.mark.slow
def test_readme_training_side_read_runs(job, tmp_path, monkeypatch):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Datasets", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    assert len(code.strip().splitlines()) <= 5
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(job["out"])
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the README's own example
    assert ns["ids"].dtype == torch.uint16 and ns["ids"].dim() == 4
    assert ns["offsets"] is None or ns["offsets"].shape == (ns["ids"].shape[1] + 1,)
