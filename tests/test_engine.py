"""The staged engine: exact conversions, tokens identical to window-by-window model calls, the tokens-only
path, and every stage stopping together on an error or a cancel (no outputs, no threads left)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from _synth import make_video

from avtok_ui import media
from avtok_ui.engine.convert import host_frames, to_model_input, to_uint8_frames
from avtok_ui.errors import AvtokError, Cancelled
from avtok_ui.pipeline import Models, RunConfig, load_models, tokenize
from avtok_ui.settings import DAC_SAMPLE_RATE, VisualSetting
from avtok_ui.tokens import load_tokens, model_to_stored
from avtok_ui.visual import frames_to_tensor, pad_video, tensor_to_frames


def _files(*dirs: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for d in dirs if d.exists() for p in d.rglob("*"))


def _stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("avtok-")]


@pytest.fixture(scope="module")
def odd_clip(tmp_path_factory) -> Path:
    # odd size (needs spatial padding for every setting) and 30 frames (windows of 17 + 13: temporal padding)
    return make_video(tmp_path_factory.mktemp("src") / "odd.mp4", width=70, height=38, n_frames=30, fps=25,
                      audio=True, audio_channels=2, audio_rate=48000)


# ----------------------------------------------------------------------------------------------------
# conversions
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [23, 24])  # odd: one pixel per gather; even: the two-pixel table
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
def test_model_input_equals_reference_conversion(dtype, width):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(5, 19, width, 3), dtype=np.uint8)
    setting = VisualSetting(False, 4, 8)
    ref = pad_video(frames_to_tensor(frames, dtype=dtype), setting)
    ph, pw = setting.padded_size(19, width)
    got = to_model_input(host_frames(frames, torch.device("cpu")), dtype=dtype, device=torch.device("cpu"),
                         padded_t=setting.padded_window_length(5), padded_h=ph, padded_w=pw)
    assert got.shape == ref.shape == (1, 3, 5, 24, 24) and got.dtype == dtype
    assert torch.equal(got, ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
@pytest.mark.parametrize("shape", [(5, 19, 24, 9, 24, 32), (2, 7, 10, 4, 7, 10), (2, 7, 10, 2, 8, 10),
                                   (1, 5, 6, 1, 5, 8), (3, 16, 16, 3, 16, 16)])
def test_model_input_padding_equals_replicate_pad(dtype, shape):
    """The frames are gathered into the padded buffer and only its margins are copied: the same tensor as
    ``F.pad(mode="replicate")`` of the converted frames (time only -- every video's last window --, height only,
    width only, all three, none)."""
    t, h, w, pt, ph, pw = shape
    frames = np.random.default_rng(t * h * w).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    ref = torch.nn.functional.pad(frames_to_tensor(frames, dtype=dtype), (0, pw - w, 0, ph - h, 0, pt - t),
                                  mode="replicate")
    got = to_model_input(host_frames(frames, torch.device("cpu")), dtype=dtype, device=torch.device("cpu"),
                         padded_t=pt, padded_h=ph, padded_w=pw)
    assert got.shape == ref.shape == (1, 3, pt, ph, pw) and got.dtype == dtype and got.is_contiguous()
    assert torch.equal(got, ref)
    assert torch.equal(got[0, :, t:], got[0, :, t - 1 : t].expand(-1, pt - t, -1, -1))  # the last frame repeated


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_model_input_every_pixel_pair(dtype):
    """Every (left, right) byte pair of every channel, against the reference formula."""
    a, b = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    row = np.stack([a, b], axis=-1).reshape(256, 512)  # row i: (i, 0), (i, 1), ... (i, 255) as pixel pairs
    frames = np.stack([row, row[::-1], np.roll(row, 1, axis=1)], axis=-1)[None]  # [1, 256, 512, 3]
    ref = frames_to_tensor(frames, dtype=dtype)
    got = to_model_input(host_frames(frames, torch.device("cpu")), dtype=dtype, device=torch.device("cpu"),
                         padded_t=1, padded_h=256, padded_w=512)
    assert torch.equal(got.view(torch.int16), ref.view(torch.int16))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
def test_uint8_frames_equal_reference_conversion(dtype):
    g = torch.Generator().manual_seed(1)
    video = (torch.randn(3, 4, 9, 11, generator=g) * 1.5).to(dtype)  # values beyond [-1, 1] must clamp
    video[0, 0, 0, :4] = torch.tensor([-1.0, 1.0, 0.0, 7.0], dtype=dtype)
    ref = tensor_to_frames(video)
    got = to_uint8_frames(video)
    assert got.shape == ref.shape == (4, 9, 11, 3) and got.dtype == np.uint8
    assert np.array_equal(got, ref)
    assert got[0, 0, :4, 0].tolist() == [0, 255, 128, 255]
    # a cropped (non-contiguous) view converts like its copy
    assert np.array_equal(to_uint8_frames(video[:, 1:3, 2:7, 3:9]), tensor_to_frames(video[:, 1:3, 2:7, 3:9]))


# ----------------------------------------------------------------------------------------------------
# tokens identical to window-by-window model calls
# ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["CV8x16x16", "DV4x8x8", "CV4x8x8", "DV8x8x8"])
def test_tokens_equal_window_by_window_reference(name, odd_clip, checkpoints_env, tmp_path):
    setting = VisualSetting.parse(name)
    cfg = RunConfig(setting=setting, window=17, lpips="off", metrics=False)
    models = load_models(cfg)
    res = tokenize(odd_clip, tmp_path / "t", tmp_path / "r", "x", cfg, models=models)
    tf = load_tokens(res.tokens)
    # reference: the plain sequential path -- decode frames, convert, pad, encode each window by itself
    windows = [model_to_stored(models.cosmos.encode_window(w.frames), setting)
               for w in media.iter_windows(odd_clip, 17)]
    ref = torch.cat(windows, dim=1)
    assert tf.visual.dtype == ref.dtype and tf.visual.shape == ref.shape
    assert torch.equal(tf.visual, ref)
    # audio: the codes of one streaming encode of the whole (mono, 44.1 kHz) track
    chunks = media.read_audio(odd_clip, sample_rate=DAC_SAMPLE_RATE, mono=True)
    codes = models.dac.encode_stream(chunks, n_codebooks=9)
    assert np.array_equal(tf.audio_codes.to(torch.int64).numpy(), codes)


# ----------------------------------------------------------------------------------------------------
# tokens-only path
# ----------------------------------------------------------------------------------------------------
class _NoDecoder:
    """A tokenizer proxy whose decoder must never be called."""

    def __init__(self, inner):
        self._inner = inner

    def decode_raw(self, *a, **k):
        raise AssertionError("the decoder was called on the tokens-only path")

    decode = decode_window = decode_raw

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.slow
def test_tokens_only_writes_the_token_file_alone(odd_clip, checkpoints_env, tmp_path):
    setting = VisualSetting.parse("DV8x16x16")
    full = tokenize(odd_clip, tmp_path / "full", tmp_path / "rec", "x", RunConfig(setting=setting, lpips="off"))
    models = load_models(RunConfig(setting=setting))
    res = tokenize(odd_clip, tmp_path / "only", None, "x", RunConfig(setting=setting),
                   models=Models(cosmos=_NoDecoder(models.cosmos), dac=models.dac), tokens_only=True,
                   extracted_wav=tmp_path / "odd_audio.wav")
    assert _files(tmp_path / "only") == ["x.safetensors"]
    assert not (tmp_path / "odd_audio.wav").exists()
    assert res.video is None and res.metrics_json is None and "video_metrics" not in res.report
    a, b = load_tokens(full.tokens), load_tokens(res.tokens)
    for key in ("visual", "audio_codes", "audio_latent_offsets", "latent_source_frames", "frame_pts"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert res.report["readouts"]["total_tokens"] == full.report["readouts"]["total_tokens"]
    assert res.report["config"]["tokens_only"] is True


# ----------------------------------------------------------------------------------------------------
# stopping together
# ----------------------------------------------------------------------------------------------------
class _FailingDac:
    def __init__(self, inner):
        self._inner = inner

    def encode_stream(self, chunks, *a, **k):
        for i, _ in enumerate(chunks):
            if i == 0:
                raise AvtokError("audio stage exploded")

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.slow
def test_an_error_in_a_background_stage_stops_the_run(odd_clip, checkpoints_env, tmp_path):
    cfg = RunConfig(setting=VisualSetting.parse("CV8x16x16"), lpips="off")
    models = load_models(cfg)
    with pytest.raises(AvtokError, match="audio stage exploded"):
        tokenize(odd_clip, tmp_path / "t", tmp_path / "r", "e", cfg,
                 models=Models(cosmos=models.cosmos, dac=_FailingDac(models.dac)))
    assert _files(tmp_path / "t", tmp_path / "r") == []
    assert _stage_threads() == []


@pytest.mark.slow
def test_cancel_from_another_thread_stops_every_stage(checkpoints_env, tmp_path):
    src = make_video(tmp_path / "long.mp4", width=64, height=48, n_frames=120, fps=25, audio=True)
    ev = threading.Event()
    seen: list[str] = []

    def progress(stage, done, total):
        seen.append(stage)
        if stage == "visual" and done >= 2:
            threading.Timer(0.01, ev.set).start()

    with pytest.raises(Cancelled):
        tokenize(src, tmp_path / "t", tmp_path / "r", "c", RunConfig(setting=VisualSetting.parse("DV8x8x8")),
                 progress=progress, cancel=ev)
    assert _files(tmp_path / "t", tmp_path / "r") == []
    assert _stage_threads() == []


def test_stage_threads_carry_their_os_name():
    """``top -H`` and /proc show which stage burns CPU: each stage thread names itself ``avtok-<stage>``."""
    import sys

    from avtok_ui.engine.flow import Flow

    if not sys.platform.startswith("linux"):
        pytest.skip("OS thread names are read from /proc")
    names: list[str] = []
    with Flow() as flow:
        flow.start("uint8", lambda: names.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm")
                                                 .read_text().strip()))
        flow.join()
    assert names == ["avtok-uint8"]


def test_windows_per_call_is_validated():
    with pytest.raises(AvtokError, match="windows per call"):
        RunConfig(setting=VisualSetting.parse("CV8x8x8"), windows_per_call=0)
    with pytest.raises(AvtokError, match="preset"):
        RunConfig(setting=VisualSetting.parse("CV8x8x8"), preset="warp")


@pytest.mark.slow
def test_several_windows_per_call(checkpoints_env, tmp_path):
    src = make_video(tmp_path / "w.mp4", width=64, height=48, n_frames=60, fps=25, audio=False)
    setting = VisualSetting.parse("DV8x16x16")
    one = tokenize(src, tmp_path / "a", tmp_path / "a", "x", RunConfig(setting=setting, lpips="off"))
    many = tokenize(src, tmp_path / "b", tmp_path / "b", "x",
                    RunConfig(setting=setting, lpips="off", windows_per_call=3))
    a, b = load_tokens(one.tokens), load_tokens(many.tokens)
    assert a.visual.shape == b.visual.shape
    assert torch.equal(a.window_frames, b.window_frames)
    # batching may change bf16 convolution results slightly, never the layout: most ids agree
    assert (a.visual == b.visual).float().mean() > 0.9
    assert len(list(media.read_video_frames(many.visual_video))) == 60


# ----------------------------------------------------------------------------------------------------
# the CLIs' --tokens-only
# ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_tokens_only(odd_clip, checkpoints_env, tmp_path, capsys):
    from avtok_ui.cli import main, tokenize_video_main

    out = tmp_path / "out"
    assert main(["tokenize", str(odd_clip), "-s", "cv8x16x16", "-o", str(out), "--tokens-only", "-q"]) == 0
    assert _files(out) == ["odd.safetensors"]
    tok, rec = tmp_path / "tok", tmp_path / "rec"
    rc = tokenize_video_main([str(odd_clip.parent), odd_clip.name, "nick", "false", "8", "16", str(tok), str(rec),
                              "--tokens-only", "-q"])
    assert rc == 0, capsys.readouterr().err
    assert _files(tok) == ["nick.safetensors"] and _files(rec) == []
    assert not (odd_clip.parent / "odd_audio.wav").exists()  # no extracted wav on the tokens-only path
    a, b = load_tokens(out / "odd.safetensors"), load_tokens(tok / "nick.safetensors")
    assert torch.equal(a.visual, b.visual) and torch.equal(a.audio_codes, b.audio_codes)


def test_run_config_from_loose_values_is_the_one_validation():
    """The app/API send strings and floats: RunConfig.from_values converts and validates them with the CLI's rules."""
    cfg = RunConfig.from_values("dv8X16x16", window="17", codebooks=9.0, max_side="0", duration_s="",
                                start_s=None, lpips="AUTO", device="CPU")
    assert (cfg.setting.name, cfg.window, cfg.codebooks, cfg.max_side, cfg.duration_s, cfg.lpips, cfg.device) == (
        "DV8x16x16", 17, 9, None, None, "auto", "cpu")
    assert RunConfig.from_values("wan2.1-4x8x8", window=13).setting.name == "Wan2.1-4x8x8"
    for kwargs, words in [({"window": "abc"}, "window must be a whole number"),
                          ({"window": 18}, "18"),
                          ({"codebooks": 2.5}, "codebooks must be a whole number"),
                          ({"lpips": "squeeze"}, "lpips"),
                          ({"max_side": 8}, "max_side must be at least 16")]:
        with pytest.raises(AvtokError, match=words):
            RunConfig.from_values("DV8x16x16", **kwargs)


def test_zip_chunks_pairs_two_streams_cut_differently():
    from avtok_ui.engine.stages import ZipCounts, zip_chunks

    a = np.arange(23)
    b = np.arange(19) * 10
    cuts_a = [a[0:5], a[5:6], a[6:17], a[17:23]]
    cuts_b = [b[0:2], b[2:2], b[2:19]]
    seen: list[int] = []

    def stream_b():  # a stream with a side effect must still be consumed to its end
        for c in cuts_b:
            seen.append(len(c))
            yield c

    counts = ZipCounts()
    pairs = list(zip_chunks(iter(cuts_a), stream_b(), counts))
    assert all(len(x) == len(y) for x, y in pairs)
    xa = np.concatenate([x for x, _ in pairs])
    xb = np.concatenate([y for _, y in pairs])
    assert np.array_equal(xa, a[:19]) and np.array_equal(xb, b)
    assert (counts.a, counts.b) == (23, 19) and seen == [2, 0, 17]


def test_import_sets_thread_and_page_defaults_but_keeps_explicit_ones():
    """``import avtok_ui`` picks passive OpenMP waiting and huge pages for big torch buffers, unless set."""
    import os
    import subprocess
    import sys

    code = "import avtok_ui, os; print(os.environ['OMP_WAIT_POLICY'], os.environ['THP_MEM_ALLOC_ENABLE'])"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PASSIVE", "1"]
    env |= {"OMP_WAIT_POLICY": "ACTIVE", "THP_MEM_ALLOC_ENABLE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ACTIVE", "0"]


def test_keep_heap_policy_in_a_fresh_process():
    """``keep_heap`` (the engine's processes) turns the per-window trim off; ``AVTOK_HEAP=trim`` keeps glibc's
    defaults and the trim."""
    import os
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    code = ("from avtok_ui.engine import heap; kept = heap.keep_heap(); "
            "print(kept, heap.keep_heap(), heap._HEAP_KEPT)")
    env = {k: v for k, v in os.environ.items() if k != "AVTOK_HEAP"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]
    out = subprocess.run([sys.executable, "-c", code], env=env | {"AVTOK_HEAP": "trim"}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_cli_and_dataset_worker_keep_the_heap(monkeypatch, tmp_path):
    from avtok_ui import cli
    from avtok_ui.engine import heap

    calls: list[str] = []
    monkeypatch.setattr(cli, "keep_heap", lambda: calls.append("cli"))
    monkeypatch.setattr(heap, "keep_heap", lambda: calls.append("worker"))
    assert cli.main(["info", str(tmp_path / "missing.mp4")]) == 1
    from avtok_ui.dataset.worker import TokenizeWorker

    with pytest.raises(AvtokError):  # no weights here: loading fails after the heap call
        TokenizeWorker(RunConfig(setting=VisualSetting.parse("CV8x16x16"), checkpoint_dir=str(tmp_path),
                                 allow_download=False))
    assert calls == ["cli", "worker"]


_LATE_THREAD_FAULTS = """
import resource, threading
import numpy as np
stop = threading.Event()
def early():  # threads that allocate before the engine runs (as Ray's own threads do in a worker)
    x = [bytearray(100000) for _ in range(50)]
    stop.wait()
threads = [threading.Thread(target=early) for _ in range(6)]
for t in threads: t.start()
faults = []
def work():  # a stage thread started later: window-sized buffers, three alive at a time
    keep = []
    for _ in range(8):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = np.empty(64 << 20, np.uint8); a[::4096] = 1
        keep = (keep + [a])[-3:]
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
for _ in range(2):
    t = threading.Thread(target=work); t.start(); t.join()
stop.set()
print(sum(faults[-6:]))
"""


def test_heap_env_reuses_window_buffers_in_threads_started_late():
    """A process started with ``heap_env()`` (as the dataset job starts its Ray workers) reuses window-sized
    buffers even in threads created after other threads allocated: glibc accepted the tunables (a malformed
    string would be ignored silently) and no buffer is faulted in again."""
    import os
    import subprocess
    import sys

    from avtok_ui.engine.heap import heap_env

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    base = {k: v for k, v in os.environ.items() if k not in ("AVTOK_HEAP", "GLIBC_TUNABLES")}
    import unittest.mock as mock

    with mock.patch.dict(os.environ, base, clear=True):
        env = heap_env()
    assert set(env) == {"GLIBC_TUNABLES"} and "arena_max=1" in env["GLIBC_TUNABLES"]
    out = subprocess.run([sys.executable, "-c", _LATE_THREAD_FAULTS], env=base | env, capture_output=True,
                         text=True, check=True)
    assert int(out.stdout) < 50  # 64 MiB buffers: ~16k page faults each when mapped afresh
    with mock.patch.dict(os.environ, base | {"AVTOK_HEAP": "trim"}, clear=True):
        assert heap_env() == {}
    with mock.patch.dict(os.environ, base | {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, clear=True):
        assert heap_env() == {}  # the caller's own tunables are kept


def test_dataset_job_starts_ray_workers_with_the_heap_env(monkeypatch):
    """The workers get ``heap_env()`` in their runtime env; the caller's env vars are kept beside it."""
    import ray

    from avtok_ui.dataset import job
    from avtok_ui.engine.heap import heap_env

    seen: list[dict] = []
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append(kw.get("runtime_env")))
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("AVTOK_HEAP", raising=False)
    job._start_ray(None, {"env_vars": {"MY_VAR": "1"}, "worker_process_setup_hook": "x.y"})
    job._start_ray(None, None)
    want = heap_env()
    assert want and seen[0] == {"env_vars": {"MY_VAR": "1", **want}, "worker_process_setup_hook": "x.y"}
    assert seen[1] == {"env_vars": want}
