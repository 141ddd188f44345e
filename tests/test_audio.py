"""DacCodec (chunked DAC encode/decode) and latent <-> code-frame alignment, on a tiny random-weight DAC."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from avtok_ui.audio import (
    DacCodec,
    codes_per_latent,
    latent_code_offsets,
    latent_times_from_frames,
    load_dac_model,
)
from avtok_ui.errors import CheckpointError
from avtok_ui.settings import VisualSetting, audio_code_frames
from avtok_ui.testing.tiny_dac import build_tiny_dac

SR, HOP = 44100, 512
HALF_HOP_S = HOP / SR / 2


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The tiny model's many small convolutions run ~7x slower with 2 OpenMP threads on a busy 2-core box
    (measured 82 s vs 12 s for this file): use one thread here, restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dac_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_dac(tmp_path_factory.mktemp("dac") / "tiny_dac.pth", seed=0)


@pytest.fixture(scope="session")
def codec(tiny_dac_path: Path) -> DacCodec:
    return DacCodec(load_dac_model(tiny_dac_path))


def _noise(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal(n)).astype(np.float32)


def _whole_encode(codec: DacCodec, x: np.ndarray, n_q: int = 9) -> np.ndarray:
    """Reference: one DAC.encode over the whole (preprocessed) signal."""
    with torch.inference_mode():
        t = codec.model.preprocess(torch.from_numpy(x).view(1, 1, -1), SR)
        _, codes, *_ = codec.model.encode(t, n_q)
    return codes[0].numpy().astype(np.int64)


def _whole_decode(codec: DacCodec, codes: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        z, _, _ = codec.model.quantizer.from_codes(torch.from_numpy(codes)[None])
        return codec.model.decode(z)[0, 0].numpy()


# ----- loading ---------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::FutureWarning")  # dac's own weight_norm use
def test_tiny_dac_file_is_released_format(tiny_dac_path: Path) -> None:
    import dac

    m = dac.DAC.load(str(tiny_dac_path))
    assert m.sample_rate == SR and int(np.prod(m.encoder_rates)) == HOP
    assert m.n_codebooks == 9 and m.codebook_size == 1024
    assert sum(p.numel() for p in m.parameters()) < 1_000_000


def test_same_seed_same_weights(tmp_path: Path, tiny_dac_path: Path) -> None:
    p = build_tiny_dac(tmp_path / "again.pth", seed=0)
    a = torch.load(p, weights_only=True)["state_dict"]
    b = torch.load(tiny_dac_path, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found") as e:
        load_dac_model(tmp_path / "missing.pth")
    assert "\n" not in str(e.value)
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth") as e:
        load_dac_model(bad)
    assert "\n" not in str(e.value)
    other = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="other.pth"):
        load_dac_model(other)


def test_from_pretrained_uses_resolve_dac(monkeypatch: pytest.MonkeyPatch, tiny_dac_path: Path,
                                          tmp_path: Path) -> None:
    """Wiring only: ``checkpoints.resolve_dac`` is replaced (it is tested with the checkpoints module)."""
    import importlib
    import sys
    import types

    calls: list[tuple[object, bool]] = []

    def fake_resolve(path=None, *, allow_download=True):
        calls.append((path, allow_download))
        return Path(path) if path is not None else tiny_dac_path

    try:
        mod = importlib.import_module("avtok_ui.checkpoints")
    except ImportError:
        mod = types.ModuleType("avtok_ui.checkpoints")
        monkeypatch.setitem(sys.modules, "avtok_ui.checkpoints", mod)
    monkeypatch.setattr(mod, "resolve_dac", fake_resolve, raising=False)
    c = DacCodec.from_pretrained(allow_download=False)
    assert calls == [(None, False)] and c.n_codebooks == 9 and c.device == torch.device("cpu")
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    with pytest.raises(CheckpointError, match="bad.pth"):
        DacCodec.from_pretrained(bad)


def test_codec_attributes(codec: DacCodec) -> None:
    assert (codec.sample_rate, codec.hop, codec.n_codebooks) == (44100, 512, 9)
    assert not codec.model.training


# ----- encode ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [512 * 40, 512 * 40 + 1, 512 * 47 - 1, 512, 1, 3000])
def test_chunked_encode_equals_whole(codec: DacCodec, n: int) -> None:
    """Exact multiples of 512 included (the original tool crashed there, defect 10)."""
    x = _noise(n, seed=n)
    ref = _whole_encode(codec, x)
    assert ref.shape == (9, math.ceil(n / HOP))
    for chunk in (3, 8, 256):
        got = codec.encode(x, chunk_frames=chunk)
        assert got.dtype == np.int64 and got.shape == ref.shape
        assert np.array_equal(got, ref), f"chunk_frames={chunk}: {(got != ref).mean():.4%} codes differ"


def test_codes_are_varied_and_in_range(codec: DacCodec) -> None:
    codes = codec.encode(_noise(512 * 64))
    assert codes.min() >= 0 and codes.max() < 1024
    assert all(len(np.unique(row)) > 10 for row in codes)  # equality tests are not vacuous


def test_encode_accepts_layouts(codec: DacCodec) -> None:
    x = _noise(5000)
    ref = codec.encode(x)
    assert np.array_equal(codec.encode(x[None]), ref)
    assert np.array_equal(codec.encode(torch.from_numpy(x)[None]), ref)
    assert np.array_equal(codec.encode(x.astype(np.float64)), ref)
    assert codec.encode(np.zeros(0, np.float32)).shape == (9, 0)
    with pytest.raises(ValueError, match="mono"):
        codec.encode(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="float"):
        codec.encode(np.zeros(1000, np.int16))


def test_encode_progress(codec: DacCodec) -> None:
    calls: list[tuple[int, int]] = []
    codec.encode(_noise(512 * 10 + 5), chunk_frames=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(4, 11), (8, 11), (11, 11)]


@pytest.mark.parametrize("n", [512 * 50, 512 * 50 + 77])
def test_encode_stream_random_pieces_equals_encode(codec: DacCodec, n: int) -> None:
    x = _noise(n, seed=7)
    ref = codec.encode(x, chunk_frames=8)
    rng = np.random.default_rng(n)
    for trial in range(3):
        cuts = np.sort(rng.choice(np.arange(1, n), size=int(rng.integers(1, 40)), replace=False))
        pieces = np.split(x, cuts)
        pieces = [p[None] if i % 2 else p for i, p in enumerate(pieces)]  # mix [n] and [1, n]
        got = codec.encode_stream(iter(pieces), chunk_frames=8)
        assert np.array_equal(got, ref), f"trial {trial}"
    # one-sample pieces, and empty pieces in between
    tiny = [x[i : i + 1] for i in range(512 * 30)]
    tiny.insert(5, np.zeros(0, np.float32))
    assert np.array_equal(codec.encode_stream(tiny, chunk_frames=8), codec.encode(x[: 512 * 30], chunk_frames=8))


def test_encode_stream_keeps_bounded_buffer(codec: DacCodec) -> None:
    """The stream consumes pieces lazily: codes of early chunks exist before the last piece is read."""
    x = _noise(512 * 40)
    consumed: list[int] = []
    progress: list[tuple[int, int]] = []

    def gen():
        for i in range(0, x.shape[0], 1000):
            consumed.append(i)
            yield x[i : i + 1000]

    codec.encode_stream(gen(), chunk_frames=4, context_frames=2,
                        progress=lambda done: progress.append((done, len(consumed))))
    assert progress[0][1] < len(consumed) // 2  # first chunk encoded while most input was still unread


@pytest.mark.parametrize("k", range(1, 10))
def test_n_codebooks_prefix(codec: DacCodec, k: int) -> None:
    x = _noise(512 * 20 + 100, seed=3)
    full = codec.encode(x, 9, chunk_frames=8)
    got = codec.encode(x, k, chunk_frames=8)
    assert got.shape == (k, 21)
    assert np.array_equal(got, full[:k])
    y = codec.decode(got, x.shape[0])
    assert y.shape == x.shape and y.dtype == np.float32


@pytest.mark.parametrize("bad", [0, 10, -1, 2.5, True])
def test_n_codebooks_validated(codec: DacCodec, bad) -> None:
    with pytest.raises(ValueError, match="n_codebooks") as e:
        codec.encode(_noise(1000), bad)
    assert "\n" not in str(e.value)


# ----- decode ----------------------------------------------------------------------------------------
def test_chunked_decode_matches_whole_decode(codec: DacCodec) -> None:
    x = _noise(512 * 40 + 13, seed=11)
    codes = codec.encode(x)
    ref = _whole_decode(codec, codes)
    for chunk in (3, 8, 256):
        y = codec.decode(codes, chunk_frames=chunk)
        assert y.shape == (codes.shape[1] * HOP,) and y.dtype == np.float32
        diff = float(np.abs(y - ref).max())
        assert diff <= 1e-6, f"chunk_frames={chunk}: max abs diff {diff}"


def test_decode_stream_concatenates_to_decode(codec: DacCodec) -> None:
    x = _noise(512 * 30 + 300, seed=5)
    codes = codec.encode(x)
    whole = codec.decode(codes, x.shape[0], chunk_frames=7)
    pieces = list(codec.decode_stream(codes, x.shape[0], chunk_frames=7))
    assert len(pieces) == math.ceil(codes.shape[1] / 7)
    assert all(p.dtype == np.float32 and p.ndim == 1 for p in pieces)
    assert np.array_equal(np.concatenate(pieces), whole)


def test_decode_length_trim_and_validation(codec: DacCodec) -> None:
    codes = codec.encode(_noise(512 * 6 + 1))
    assert codes.shape == (9, 7)
    assert codec.decode(codes).shape == (7 * 512,)
    for n in (512 * 6 + 1, 512 * 6, 100, 0):
        assert codec.decode(codes, n, chunk_frames=2).shape == (n,)
    assert np.array_equal(codec.decode(codes, 1000, chunk_frames=2), codec.decode(codes)[:1000])
    with pytest.raises(ValueError, match="n_samples"):
        codec.decode(codes, 7 * 512 + 1)
    with pytest.raises(ValueError, match="codebooks"):
        codec.decode(np.zeros((10, 4), np.int64))
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        codec.decode(np.full((9, 4), 1024))
    with pytest.raises(ValueError, match="integers"):
        codec.decode(np.zeros((9, 4), np.float32))
    assert codec.decode(codes.astype(np.uint16)).shape == (7 * 512,)  # stored dtype
    assert codec.decode(np.zeros((9, 0), np.int64)).shape == (0,)


def test_tone_roundtrip_lengths_and_no_seams(codec: DacCodec) -> None:
    """A 440 Hz tone keeps its exact length (original defect 9 changed pitch and left gaps).

    Random weights cannot reproduce pitch, so check exact lengths and that chunked decoding has no seams:
    it matches a whole-signal decode everywhere, in particular around chunk boundaries.
    """
    for n in (SR, SR + 511, 512 * 130):
        t = np.arange(n) / SR
        tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        codes = codec.encode(tone, chunk_frames=16)
        assert codes.shape == (9, audio_code_frames(n))
        y = codec.decode(codes, n, chunk_frames=16)
        assert y.shape == (n,)
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
        ref = _whole_decode(codec, codes)[:n]
        assert float(np.abs(y - ref).max()) <= 1e-6
        seams = [b * 16 * HOP for b in range(1, codes.shape[1] // 16 + 1) if b * 16 * HOP < n]
        for s in seams:
            assert float(np.abs(y[s - 64 : s + 64] - ref[s - 64 : s + 64]).max()) <= 1e-6


# ----- alignment -------------------------------------------------------------------------------------
def _timeline(n_frames: int, fps: float, vfr: bool, seed: int = 0) -> tuple[np.ndarray, float]:
    if not vfr:
        times = np.arange(n_frames) / fps
        return times, n_frames / fps
    rng = np.random.default_rng(seed)
    durs = rng.uniform(0.5, 1.5, n_frames) / fps
    times = np.concatenate([[0.0], np.cumsum(durs[:-1])])
    return times, float(times[-1] + durs[-1])


def _check_alignment(setting: VisualSetting, window: int, times: np.ndarray, duration: float) -> np.ndarray:
    spans = setting.latent_source_spans(times.shape[0], window)
    lt = latent_times_from_frames(spans, times, duration)
    assert lt[0][0] == 0.0 and lt[-1][1] == duration
    assert all(lt[i][1] == lt[i + 1][0] for i in range(len(lt) - 1))  # contiguous
    n_code = audio_code_frames(round(duration * SR))
    off = latent_code_offsets(lt, n_code)
    assert off.dtype == np.int64 and off.shape == (len(spans) + 1,)
    assert off[0] == 0 and off[-1] == n_code and np.all(np.diff(off) >= 0)
    per = codes_per_latent(off)
    assert per.sum() == n_code
    # every code frame belongs to exactly one latent
    owner = np.repeat(np.arange(len(per)), per)
    assert owner.shape == (n_code,) and np.all(np.diff(owner) >= 0)
    # no drift: every boundary within half a hop of its latent's start time
    starts = np.array([s for s, _ in lt])
    drift = np.abs(off[:-1] * HOP / SR - starts)
    assert drift.max() <= HALF_HOP_S + 1e-12, drift.max()
    return per


def test_alignment_25fps_tf8_window17() -> None:
    setting = VisualSetting(discrete=True, temporal=8, spatial=16)
    times, duration = _timeline(25 * 600, 25.0, vfr=False)  # 10 minutes
    spans = setting.latent_source_spans(times.shape[0], 17)
    per = _check_alignment(setting, 17, times, duration)
    eight = np.array([e - s == 8 for s, e in spans])
    assert set(np.unique(per[eight])) == {27, 28}  # 0.32 s = 27.56 code frames
    one = np.array([e - s == 1 for s, e in spans])
    assert set(np.unique(per[one])) == {3, 4}  # first latent of a window: 1 frame = 3.45 code frames
    assert abs(per[eight].mean() - 0.32 * SR / HOP) < 0.01


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001])
@pytest.mark.parametrize("vfr", [False, True])
@pytest.mark.parametrize("setting", ["DV8x16x16", "CV4x8x8"])
def test_alignment_no_drift_10_minutes(fps: float, vfr: bool, setting: str) -> None:
    n_frames = int(600 * fps)
    times, duration = _timeline(n_frames, fps, vfr, seed=int(fps))
    _check_alignment(VisualSetting.parse(setting), 17, times, duration)


def test_alignment_short_and_edge_cases() -> None:
    # fewer code frames than boundaries suggest (audio shorter than video): clipped, still a cover
    off = latent_code_offsets([(0.0, 0.5), (0.5, 1.0), (1.0, 1.5)], 50)
    assert off.tolist() == [0, 43, 50, 50]
    assert codes_per_latent(off).tolist() == [43, 7, 0]
    with pytest.raises(ValueError):
        latent_code_offsets([], 10)
    with pytest.raises(ValueError):
        latent_code_offsets([(1.0, 2.0), (0.0, 1.0)], 10)
    with pytest.raises(ValueError):
        latent_times_from_frames([(0, 3)], np.array([0.0, 0.04]), 0.08)
    with pytest.raises(ValueError):
        latent_times_from_frames([(0, 1)], np.array([0.0, 0.04]), 0.01)


def test_tokens_and_alignment_fit_together(codec: DacCodec) -> None:
    """Codes of a 3 s clip at 29.97 fps, split per latent, cover the whole code sequence."""
    fps = 30000 / 1001
    n_frames = 90
    times, duration = _timeline(n_frames, fps, vfr=False)
    n = round(duration * SR)
    codes = codec.encode(_noise(n))
    setting = VisualSetting.parse("CV8x8x8")
    lt = latent_times_from_frames(setting.latent_source_spans(n_frames, 17), times, duration)
    off = latent_code_offsets(lt, codes.shape[1])
    parts = [codes[:, off[i] : off[i + 1]] for i in range(len(lt))]
    assert np.array_equal(np.concatenate(parts, axis=1), codes)


def test_torch_package_dac_file_is_named_and_explained(tmp_path: Path, tiny_dac_path: Path) -> None:
    """``dac.DAC.save()`` writes a torch.package by default: refused (never unpickled) with what it is, what is
    expected and the conversion command, in one line."""
    import warnings

    model = load_dac_model(tiny_dac_path)
    pkg = tmp_path / "packaged.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(pkg))  # package=True is DAC's default
    with pytest.raises(CheckpointError) as e:
        load_dac_model(pkg)
    msg = str(e.value)
    assert "\n" not in msg and "PytorchStreamReader" not in msg and "miniz" not in msg
    assert str(pkg) in msg and "torch.package" in msg and "package=False" in msg and "state_dict" in msg
