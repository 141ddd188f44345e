"""The Gradio app and its service, driven through ``gradio_client`` against an app launched on 127.0.0.1 with
tiny random-weight models: full runs, bad input, concurrency, missing weights; plus the service's model
cache, cancellation and run-folder bookkeeping, and the Space's requirements.txt."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest
from _app_server import running_app
from _synth import make_video

from avtok_ui.backends.registry import ALL_BACKEND_SETTINGS, parse_setting
from avtok_ui.errors import AvtokError, Cancelled, MediaError
from avtok_ui.service import AppConfig, ModelCache, RunRequest, Service, nearest_window, summary_row
from avtok_ui.settings import VisualSetting

ROOT = Path(__file__).resolve().parents[1]
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError, ValidationError  # noqa: E402


# ----------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------
def _client(url: str) -> Client:
    """A gradio client that waits long enough for a loaded 2-core CI machine (httpx's default is 5 s)."""
    return Client(url, verbose=False, httpx_kwargs={"timeout": 120})


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    bad = d / "notes.mp4"
    bad.write_text("this is a text file, not a video\n" * 20)
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    return {
        "a": make_video(d / "alpha.mp4", width=64, height=48, n_frames=30, fps=25, audio=True),
        "b": make_video(d / "bravo.mp4", width=96, height=64, n_frames=20, fps=20, audio=True, audio_channels=1),
        "silent": make_video(d / "silent.mp4", width=64, height=48, n_frames=12, fps=25, audio=False),
        "long": make_video(d / "long.mp4", width=32, height=32, n_frames=130, fps=25, audio=False),
        "bad": bad,
        "empty": empty,
    }


@pytest.fixture(scope="module")
def app(tiny_diffusers_checkpoints, tmp_path_factory):
    """The app on a free local port: tiny models of every backend, runs of at most 4 s, two runs at once."""
    with running_app(tiny_diffusers_checkpoints, tmp_path_factory.mktemp("runs"), max_duration_s=4.0,
                     concurrent_runs=2) as (url, service):
        yield url, service


@pytest.fixture()
def client(app) -> Client:
    return _client(app[0])


def _playable(path: str | Path) -> dict:
    """Open with PyAV and decode everything: codecs, pixel format, frame count, audio presence."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        out = {"video": v.codec_context.name, "pix_fmt": v.format.name, "size": (v.width, v.height),
               "audio": a.codec_context.name if a is not None else None, "frames": 0}
        for _ in c.decode(video=0):
            out["frames"] += 1
    return out


def _tokenize(client: Client, video: Path, setting: str = "DV8x16x16", **kw):
    args = {"window": 17, "codebooks": 9, "device": "cpu", "start_s": 0, "duration_s": 0, "max_side": 0,
            "lpips": "off"} | kw
    return client.predict(handle_file(str(video)), setting, args["window"], args["codebooks"], args["device"],
                          args["start_s"], args["duration_s"], args["max_side"], args["lpips"],
                          api_name="/tokenize")


# ----------------------------------------------------------------------------------------------------
# gradio_client against the running app
# ----------------------------------------------------------------------------------------------------
def test_info_and_api_names(client):
    info = client.predict(api_name="/info")
    assert info["usable_settings"] == info["settings"] == [s.name for s in ALL_BACKEND_SETTINGS]
    assert info["missing_checkpoints"] == {} and info["audio_available"] is True
    assert info["families"][0] == "Cosmos 0.1" and {"Wan 2.1", "LTX-Video", "Cosmos 1.0"} <= set(info["families"])
    by_name = {b["name"]: b for b in info["backends"]}
    assert set(by_name) == set(info["settings"]) and all(b["usable"] for b in by_name.values())
    hy = by_name["HunyuanVideo-4x8x8"]
    assert hy["class"] == "AutoencoderKLHunyuanVideo" and hy["latent_channels"] == 16
    assert "Hunyuan" in hy["licence"] and hy["licence_url"].startswith("https://")
    assert by_name["DV8x16x16"]["licence_url"].startswith("https://") and by_name["DV8x16x16"]["discrete"]
    assert info["limits"]["max_duration_s"] == 4.0
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/info", "/probe", "/estimate", "/tokenize", "/sweep", "/compare", "/reconstruct"} <= names
    assert not any(n.startswith("/ui_") for n in names)  # the page's own events are private


def test_probe_and_estimate(client, clips):
    p = client.predict(handle_file(str(clips["a"])), api_name="/probe")
    assert (p["width"], p["height"], p["n_frames"]) == (64, 48, 30)
    assert p["audio"]["channels"] == 2 and "path" not in p  # server paths are not leaked
    est = client.predict(handle_file(str(clips["a"])), "CV4x8x8", 17, 9, 0, 0, 0, api_name="/estimate")
    vs = VisualSetting.parse("CV4x8x8")
    assert est["visual_tokens"] == vs.visual_token_count(30, 48, 64, 17)
    assert est["audio_codebooks"] == 9 and est["audio_tokens"] == 9 * est["audio_code_frames"]


@pytest.mark.slow
def test_full_run_returns_playable_video_metrics_and_counts(client, clips, tmp_path):
    est = client.predict(handle_file(str(clips["a"])), "DV8x16x16", 17, 9, 0, 0, 0, api_name="/estimate")
    tokens, video, metrics_file, report = _tokenize(client, clips["a"])
    # the reconstruction is a browser-playable mp4 with audio, every frame there
    s = _playable(video)
    assert s == {"video": "h264", "pix_fmt": "yuv420p", "size": (64, 48), "audio": "aac", "frames": 30}
    # the token file is the engine's, and agrees with the prediction made before running
    from avtok_ui.tokens import load_tokens

    tf = load_tokens(tokens)
    t = VisualSetting.parse("DV8x16x16").latent_frames(30, 17)  # 17 + 13 frames -> 3 + 3 latents
    assert tf.setting.name == "DV8x16x16" and tuple(tf.visual.shape) == (1, t, 3, 4)
    r = report["readouts"]
    assert r["visual_tokens"] == est["visual_tokens"] == t * 3 * 4
    assert r["audio_tokens"] == est["audio_tokens"] > 0
    assert r["total_tokens"] == est["total_tokens"]
    # metrics with their conventions; the JSON file is the same report
    vm = report["video_metrics"]
    assert 5 < vm["psnr"] < 60 and 0 < vm["ssim"] <= 1 and vm["n_frames"] == 30
    assert "pooled" in vm["conventions"]["psnr"] and vm["lpips"] is None
    assert len(report["per_frame"]["psnr"]) == 30
    assert report["audio_metrics"]["si_sdr_db"] is not None
    saved = json.loads(Path(metrics_file).read_text())
    assert saved["readouts"]["total_tokens"] == r["total_tokens"]


@pytest.mark.slow
def test_trim_cap_and_no_audio(client, clips):
    _, video, _, report = _tokenize(client, clips["a"], setting="CV8x8x8", start_s=0.2, duration_s=0.6,
                                    max_side=32)
    ev = report["evaluated"]
    assert (ev["width"], ev["height"], ev["n_frames"]) == (32, 24, 15) and ev["resized"]
    # the clip's own duration (not start + duration), and per-second figures over it
    assert ev["duration_s"] == pytest.approx(0.6, abs=1e-6)
    r = report["readouts"]
    assert r["tokens_per_second"] == pytest.approx(r["total_tokens"] / 0.6)
    est = client.predict(handle_file(str(clips["a"])), "CV8x8x8", 17, 9, 0.2, 0.6, 32, api_name="/estimate")
    assert est["total_tokens"] == r["total_tokens"]
    assert _playable(video)["frames"] == 15
    _, video, _, report = _tokenize(client, clips["silent"], setting="DV4x8x8")
    assert report["readouts"]["audio_tokens"] == 0 and "audio_metrics" not in report
    assert _playable(video)["audio"] is None


@pytest.mark.parametrize("which, words", [
    ("bad", "not a readable video file"),
    ("empty", "file is empty"),
    ("long", "AVTOK_MAX_DURATION_S"),
])
def test_bad_input_gives_one_line_error_and_the_app_keeps_serving(client, clips, which, words):
    # an unreadable upload is refused by the validator (before the queue): gradio_client's ValidationError
    # names the input; a readable one that breaks a run limit is refused by the run (AppError)
    with pytest.raises(ValidationError if which in ("bad", "empty") else AppError) as err:
        _tokenize(client, clips[which])
    msg = str(err.value)
    line = msg.strip().splitlines()[-1]
    assert words in line and "Traceback" not in msg
    if which in ("bad", "empty"):
        assert msg.strip().splitlines() == ["1 parameter(s) failed validation:", line]
        assert line.startswith(f"- video: {clips[which].name}: ")
    else:
        assert "\n" not in msg.strip()
    assert client.predict(api_name="/info")["usable_settings"]  # still serving


def test_bad_uploads_are_refused_before_the_run_queue(app, clips, tmp_path, monkeypatch):
    """With both run slots taken, a bad video (/tokenize, /sweep, /compare) or a bad token file (/reconstruct)
    is refused while the runs still hold the queue (without the validator it would wait behind them)."""
    url, service = app
    release = threading.Event()
    started = threading.Semaphore(0)
    real_run = service.run

    def held_run(*args, **kwargs):
        started.release()
        release.wait(300)  # a safety net: never hang the suite
        return real_run(*args, **kwargs)

    monkeypatch.setattr(service, "run", held_run)
    fake_tokens = tmp_path / "fake.safetensors"
    fake_tokens.write_bytes(b"\x10" + b"\0" * 7 + b'{"a": 1}' + b"\0" * 10)
    holders = [_client(url).submit(handle_file(str(clips["silent"])), "DV8x16x16", 17, 0, "cpu", 0,
                                                 0, 0, "off", api_name="/tokenize") for _ in range(2)]
    try:
        assert started.acquire(timeout=240) and started.acquire(timeout=240)  # both slots are held
        c = _client(url)
        with pytest.raises(ValidationError, match="notes.mp4: not a readable video file"):
            _tokenize(c, clips["bad"])
        with pytest.raises(ValidationError, match="notes.mp4: not a readable video file"):
            c.predict(handle_file(str(clips["bad"])), "", 17, 0, "cpu", 0, 0, 0, "off", api_name="/sweep")
        with pytest.raises(ValidationError, match="reconstruction: empty.mp4: file is empty"):
            c.predict(handle_file(str(clips["a"])), handle_file(str(clips["empty"])), "off", api_name="/compare")
        with pytest.raises(ValidationError, match="fake.safetensors: not a readable safetensors token file"):
            c.predict(handle_file(str(fake_tokens)), api_name="/reconstruct")
        assert not release.is_set() and not any(h.done() for h in holders)
    finally:
        release.set()
    for h in holders:
        assert h.result(timeout=300)[3]["setting"] == "DV8x16x16"


def test_bad_arguments_are_one_line_errors(client, clips):
    with pytest.raises(AppError, match="window 12 is not valid"):
        _tokenize(client, clips["a"], window=12)
    with pytest.raises(AppError, match="cannot parse setting"):
        _tokenize(client, clips["a"], setting="XV9x9x9")
    with pytest.raises(AppError, match="past the end"):
        _tokenize(client, clips["a"], start_s=99)


@pytest.mark.slow
def test_two_concurrent_clients_get_their_own_results(app, clips):
    url, service = app
    jobs = [("a", "DV8x8x8"), ("b", "CV8x16x16")]

    def one(job):
        name, setting = job
        c = _client(url)
        return _tokenize(c, clips[name], setting=setting)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, jobs))
    for (name, setting), (_tokens, video, _, report) in zip(jobs, results, strict=True):
        assert report["setting"] == setting
        assert report["source"]["name"] == clips[name].name and "path" not in report["source"]
        want = {"a": (64, 48, 30), "b": (96, 64, 20)}[name]
        assert (report["evaluated"]["width"], report["evaluated"]["height"], report["evaluated"]["n_frames"]) == want
        assert _playable(video)["frames"] == want[2]
    assert results[0][0] != results[1][0]
    # each model was loaded once, whichever request asked first
    assert all(n == 1 for n in service.cache.loads.values())


@pytest.mark.slow
def test_sweep_compare_and_reconstruct_endpoints(client, clips):
    out = client.predict(handle_file(str(clips["b"])), "DV8x16x16, CV4x8x8", 9, 0, "cpu", 0, 0, 0, "off",
                         api_name="/sweep")
    assert [r["setting"] for r in out["rows"]] == ["DV8x16x16", "CV4x8x8"]
    assert all(r["audio tokens"] == 0 and r["PSNR dB"] > 0 for r in out["rows"])
    tokens, video, _, report = _tokenize(client, clips["b"], setting="DV8x8x8", codebooks=4)
    cmp = client.predict(handle_file(str(clips["b"])), handle_file(video), "off", api_name="/compare")
    assert cmp["video_metrics"]["n_frames"] == 20 and cmp["video_metrics"]["psnr"] > 5
    rebuilt = client.predict(handle_file(tokens), api_name="/reconstruct")
    s = _playable(rebuilt)
    assert s["frames"] == 20 and s["audio"] == "aac" and s["size"] == (96, 64)


@pytest.mark.slow
def test_sweep_across_families_rows_and_chart(client, clips):
    """/sweep with names of three families in any case: one row per setting with its family, latent channels,
    latent values and bits per source pixel (closed form from the clip), and the chart has one series per family."""
    from avtok_ui.ui import RQ_X, RQ_Y, rate_quality_frame

    out = client.predict(handle_file(str(clips["b"])), "dv8x16x16, WAN2.1-4x8x8 ,ltxvideo-8x32x32", 9, 0, "cpu",
                         0, 0.5, 0, "off", api_name="/sweep")
    rows = out["rows"]
    assert [r["setting"] for r in rows] == ["DV8x16x16", "Wan2.1-4x8x8", "LTXVideo-8x32x32"]
    assert [r["family"] for r in rows] == ["Cosmos 0.1", "Wan 2.1", "LTX-Video"]
    assert [r["latent ch"] for r in rows] == [1, 16, 128]
    n, h, w = 10, 64, 96  # 0.5 s of the 20 fps clip at 96x64
    for r in rows:
        vs = parse_setting(r["setting"])
        assert r["frames"] == n and r["window"] == nearest_window(vs, 9)
        tokens = vs.visual_token_count(n, h, w, r["window"])
        assert r["visual tokens"] == tokens
        assert r["values/pixel"] == pytest.approx(tokens * r["latent ch"] / (n * h * w), abs=1e-5)
        assert r["bits/pixel"] == pytest.approx(tokens * vs.bytes_per_token * 8 / (n * h * w), abs=1e-5)
        assert r["file bits/pixel"] > r["bits/pixel"]  # the file adds its header and window table
        assert 0 < r["PSNR dB"] < 80 and 0 < r["SSIM"] <= 1
    # LTX 8x32x32 on 10 frames of 96x64 in windows of 9 + 1: (2 + 1) latent frames x 2 x 3 positions
    assert rows[2]["visual tokens"] == 3 * 2 * 3
    reports = [run["report"] for run in out["runs"]]
    assert [rep["readouts"]["family"] for rep in reports] == [r["family"] for r in rows]
    # the rate-quality chart reads these rows: x = bits per source pixel, one colour (series) per family
    hist = [r | {"run": i + 1} for i, r in enumerate(rows)]
    for y_label, col in (("PSNR (dB)", "PSNR dB"), ("SSIM", "SSIM"), ("LPIPS", "LPIPS")):
        df, xc, yc = rate_quality_frame(hist, "bits per source pixel", y_label)
        assert (xc, yc) == (RQ_X["bits per source pixel"][1], RQ_Y[y_label][1])
        assert list(df["family"]) == ["Cosmos 0.1", "Wan 2.1", "LTX-Video"]
        assert list(df[xc]) == pytest.approx([r["bits/pixel"] for r in rows])
        if col != "LPIPS":
            assert list(df[yc]) == pytest.approx([r[col] for r in rows])
        else:  # LPIPS was off: no points, not zeros
            assert df[yc].isna().all()
    with pytest.raises(AppError, match="cannot parse setting"):
        client.predict(handle_file(str(clips["b"])), "DV8x16x16, Wan9-1x1x1", 9, 0, "cpu", 0, 0.5, 0, "off",
                       api_name="/sweep")


@pytest.mark.slow
def test_inspector_opens_runs_of_two_backends_side_by_side(app, clips):
    """The frame inspector re-decodes a diffusers run from its token file (what the metrics scored) and shows two
    runs of different backends side by side; runs of different clips are refused in one line."""
    import numpy as np

    _, svc = app
    req = RunRequest(str(clips["b"]), "CogVideoX-4x8x8", 9, 0, "cpu", duration_s=0.5, lpips="off")
    cog = svc.run(req).record()
    cosmos = svc.run(RunRequest(**{**req.__dict__, "setting": "CV8x8x8"})).record()
    other = svc.run(RunRequest(str(clips["silent"]), "CV8x8x8", 9, 0, "cpu", lpips="off")).record()
    for rec in (cog, cosmos):
        for index in (0, 9):
            orig, recon, note = svc.frame_pair(rec, index)
            assert orig.shape == recon.shape == (64, 96, 3) and "token file" in note
            mse = np.mean((orig.astype(np.float64) - recon.astype(np.float64)) ** 2)
            want = rec["report"]["per_frame"]["psnr"][index]
            assert 10 * np.log10(255.0 ** 2 / mse) == pytest.approx(want, abs=1e-3)
    a, b, note = svc.run_frames(cog, cosmos, 4)
    assert a.shape == b.shape == (64, 96, 3) and "token file" in note
    assert np.array_equal(a, svc.frame_pair(cog, 4)[1]) and np.array_equal(b, svc.frame_pair(cosmos, 4)[1])
    with pytest.raises(AvtokError, match="not of the same clip"):
        svc.run_frames(cog, other, 0)


def test_missing_weights_app_starts_and_says_what_is_missing(tmp_path, monkeypatch, clips):
    monkeypatch.delenv("AVTOK_CHECKPOINTS", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # DAC's own cache lives under ~
    empty = tmp_path / "ckpt"
    empty.mkdir()
    with running_app(empty, tmp_path / "runs") as (url, service):
        c = _client(url)
        info = c.predict(api_name="/info")
        assert set(info["missing_checkpoints"]) == {s.name for s in ALL_BACKEND_SETTINGS} | {"dac"}
        wan = next(b for b in info["backends"] if b["name"] == "Wan2.1-4x8x8")
        assert not wan["usable"] and "Wan2.1-T2V-1.3B-Diffusers" in wan["missing"]
        assert info["usable_settings"] == [] and info["audio_available"] is False
        assert "Cosmos-0.1-Tokenizer-DV8x16x16" in info["missing_checkpoints"]["DV8x16x16"]
        with pytest.raises(AppError, match="DV8x16x16 checkpoint not found"):
            _tokenize(c, clips["a"])
        est = c.predict(handle_file(str(clips["a"])), "DV8x16x16", 17, 9, 0, 0, 0, api_name="/estimate")
        assert est["total_tokens"] > 0  # predictions need no weights
        # the page itself renders the instructions (server-side HTML config)
        import urllib.request

        page = urllib.request.urlopen(url + "config").read().decode()
        assert "Missing weights" in page and "AVTOK_CHECKPOINTS" in page
        # every missing backend is listed with where to get it and its licence (name + link)
        for s in ALL_BACKEND_SETTINGS:
            assert s.hub_id in page and s.licence_url in page, s.name


# ----------------------------------------------------------------------------------------------------
# the service without the web layer
# ----------------------------------------------------------------------------------------------------
def test_model_cache_loads_once_and_evicts_lru():
    cache = ModelCache(budget_bytes=250)
    calls: list[str] = []

    def loader(name):
        def load():
            calls.append(name)
            time.sleep(0.05)
            return f"model-{name}"
        return load

    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda _: cache.get(("a",), loader("a"), lambda m: 100), range(6)))
    assert got == ["model-a"] * 6 and calls == ["a"]  # six concurrent requests, one load
    cache.get(("b",), loader("b"), lambda m: 100)
    cache.get(("a",), loader("a"), lambda m: 100)  # a is now the most recent
    cache.get(("c",), loader("c"), lambda m: 100)  # 300 > 250: evict the least recent (b)
    assert cache.peek(("b",)) is None and cache.peek(("a",)) == "model-a" and cache.peek(("c",)) == "model-c"
    assert cache.evictions == 1 and cache.stats()["resident_bytes"] == 200
    big = cache.get(("huge",), loader("huge"), lambda m: 10_000)  # larger than the budget: kept alone
    assert big == "model-huge" and [e["key"] for e in cache.stats()["resident"]] == [["huge"]]


@pytest.mark.slow
def test_service_cancel_and_run_folders(tiny_checkpoints, tmp_path, clips):
    svc = Service(AppConfig(checkpoint_dir=str(tiny_checkpoints), dac_weights=str(tiny_checkpoints),
                            run_root=str(tmp_path), keep_runs=2, max_duration_s=0))
    req = RunRequest(str(clips["b"]), "DV8x16x16", 9, 0, "cpu", lpips="off")
    cancel = threading.Event()
    seen: list[str] = []

    def progress(frac, desc):
        seen.append(desc)
        if desc.startswith("video"):
            cancel.set()

    with pytest.raises(Cancelled):
        svc.run(req, progress=progress, cancel=cancel)
    assert list(svc.runs.root.iterdir()) == []  # a cancelled run leaves nothing behind
    outs = [svc.run(req) for _ in range(3)]
    kept = sorted(p.name for p in svc.runs.root.iterdir())
    assert kept == sorted(o.run_dir.name for o in outs[-2:])  # only the last `keep_runs` are kept
    rec = outs[-1].record()
    json.dumps(rec)  # JSON-able (it lives in the browser session state)
    row = summary_row(rec)
    assert row["setting"] == "DV8x16x16" and row["visual tokens"] == rec["report"]["readouts"]["visual_tokens"]
    orig, recon, note = svc.frame_pair(rec, 5)
    assert orig.shape == recon.shape == (64, 96, 3) and "token file" in note
    with pytest.raises(AvtokError, match="out of range"):
        svc.frame_pair(rec, 20)
    svc.runs.cleanup()


def test_limits_and_helpers(tmp_path, clips):
    svc = Service(AppConfig(run_root=str(tmp_path), max_upload_mb=0.001, max_duration_s=1.0))
    with pytest.raises(MediaError, match="AVTOK_MAX_UPLOAD_MB"):
        svc.probe(clips["a"])
    svc.config.max_upload_mb = 500
    info = svc.probe(clips["a"])
    assert svc.clip_span(info, 0.2, 0.5) == pytest.approx(0.5)
    with pytest.raises(MediaError, match="AVTOK_MAX_DURATION_S"):
        svc.clip_span(info, 0, None)
    with pytest.raises(MediaError, match="no video"):
        svc.probe("")
    assert nearest_window(VisualSetting.parse("DV8x8x8"), 13) in (9, 17)
    assert nearest_window(VisualSetting.parse("CV4x8x8"), 13) == 13
    svc.runs.cleanup()


def test_app_py_reads_host_and_port_from_env(monkeypatch):
    sys.path.insert(0, str(ROOT))
    import app

    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    a = app.parse_args([])
    assert (a.host, a.port) == ("0.0.0.0", 7999)
    monkeypatch.setenv("AVTOK_HOST", "127.0.0.2")
    monkeypatch.setenv("AVTOK_PORT", "7001")
    a = app.parse_args([])
    assert (a.host, a.port) == ("127.0.0.2", 7001)
    cfg = AppConfig.from_env()
    monkeypatch.setenv("AVTOK_MAX_DURATION_S", "7.5")
    assert AppConfig.from_env().max_duration_s == 7.5 and cfg.allow_download in (True, False)


def test_requirements_txt_is_in_sync_with_pyproject():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_requirements.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert "gradio>=6.0" in lines and any(ln.startswith("torch") for ln in lines)


def test_lpips_auto_reaches_the_engine_rule_on_cpu(client, clips, tmp_path, monkeypatch):
    """The app's default "auto" is not remapped: on a CPU the engine picks AlexNet (and the report says so)."""
    from avtok_ui.lpips_net import BACKBONE_FILES, LPIPSNet

    trunk = LPIPSNet("alex")
    trunk.random_trunk(seed=3)
    state = {f"features.{k}": v for k, v in trunk.features.state_dict().items()}
    torch_save = pytest.importorskip("torch").save
    torch_save(state, tmp_path / BACKBONE_FILES["alex"][0])  # only the AlexNet trunk exists (no VGG file)
    monkeypatch.setenv("AVTOK_LPIPS_BACKBONE", str(tmp_path))
    *_, report = _tokenize(client, clips["silent"], lpips="auto", codebooks=0)
    vm = report["video_metrics"]
    assert vm["lpips_unavailable"] is None and vm["lpips"] is not None and vm["lpips"] >= 0, vm
    assert "AlexNet" in vm["conventions"]["lpips"] and "VGG" not in vm["conventions"]["lpips"]
    with pytest.raises(AppError, match="lpips must be auto, vgg, alex or off"):
        _tokenize(client, clips["silent"], lpips="squeeze", codebooks=0)


@pytest.mark.slow
def test_launched_app_prints_missing_weights_and_sigterm_removes_its_run_folder(tiny_diffusers_checkpoints, clips,
                                                                                 tmp_path):
    """``python app.py`` as Spaces/Docker/systemd run it: the console names the missing DAC weights at start;
    after one run, SIGTERM stops the app and its ``avtok-ui-<pid>-*`` run folder is gone."""
    import os
    import signal
    import urllib.request

    from _app_server import free_port

    runs = tmp_path / "runs"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AVTOK_CHECKPOINTS", "AVTOK_DAC_WEIGHTS")}
    env |= {"HOME": str(tmp_path / "home"), "AVTOK_RUN_ROOT": str(runs), "AVTOK_ALLOW_DOWNLOAD": "0",
            "HF_HUB_CACHE": str(tmp_path / "hf"), "AVTOK_LPIPS": "off", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "console.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--checkpoints",
                                 str(tiny_diffusers_checkpoints)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 240
        while True:
            try:
                urllib.request.urlopen(url + "config", timeout=5).read()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        console = log.read_text()
        assert "weights missing: dac" in console and "DAC weights not found" in console, console[-3000:]
        assert "AVTOK_CHECKPOINTS" in console and "AVTOK_ALLOW_DOWNLOAD=1" in console
        _tokenize(_client(url), clips["silent"], codebooks=0)
        (folder,) = list(runs.glob(f"avtok-ui-{proc.pid}-*"))
        assert any(p.suffix == ".mp4" for p in folder.rglob("*"))  # the run's outputs are there
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(runs.glob(f"avtok-ui-{proc.pid}-*")) == [], log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()
