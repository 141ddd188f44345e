"""Tests for avtok_ui.media on small synthetic videos (tests/_synth.py) and the bundled real clip."""

from __future__ import annotations

import json
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from _synth import GAP_S, LATE_AUDIO_S, make_video, synth_frame, vfr_pts

from avtok_ui import media
from avtok_ui.errors import MediaError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BBB = ASSETS / "bigbuckbunny.mp4"
SR = 44100
AAC_FRAME = 1024


# ----------------------------------------------------------------------------------------------------
# helpers / fixtures
# ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic videos shared by the tests of this module (made once, ~1 s in all)."""
    d = tmp_path_factory.mktemp("media")
    specs = {
        "base": {},
        "ntsc": {"fps": Fraction(30000, 1001)},
        "odd444": {"width": 201, "height": 117, "pix_fmt": "yuv444p"},
        "ten_bit": {"pix_fmt": "yuv420p10le"},
        "vfr": {"vfr": True},
        "rot0": {"audio": False},
        "rot90": {"audio": False, "rotation": 90},
        "rot270": {"audio": False, "rotation": 270},
        "late": {"audio": "late"},
        "short": {"audio": "short"},
        "long": {"audio": "long"},
        "gap": {"audio": "gap", "n_frames": 50},
        "mono22k": {"audio_rate": 22050, "audio_channels": 1},
        "six": {"audio_channels": 6},
        "silent": {"audio": False},
    }
    return {name: make_video(d / f"{name}.mp4", **kw) for name, kw in specs.items()}


def _all_audio(path: Path, **kw) -> np.ndarray:
    chunks = list(media.read_audio(path, **kw))
    assert chunks, "no audio chunks"
    for c in chunks:
        assert c.dtype == np.float32 and c.ndim == 2
    return np.concatenate(chunks, axis=1)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return float(np.argmax(spec) * sr / (8 * len(x)))


def _frames(path: Path, **kw) -> np.ndarray:
    return np.concatenate([w.frames for w in media.iter_windows(path, 64, **kw)])


def _one_line_error(exc: pytest.ExceptionInfo[MediaError], name: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{name}: "), msg
    return msg


# ----------------------------------------------------------------------------------------------------
# probe
# ----------------------------------------------------------------------------------------------------
def test_probe_synthetic(vids: dict[str, Path]) -> None:
    info = media.probe(vids["base"])
    assert (info.codec, info.pix_fmt, info.width, info.height, info.rotation) == ("h264", "yuv420p", 64, 48, 0)
    assert info.fps == 25 and info.avg_fps == 25
    assert info.n_frames == 30 and info.frames_declared
    assert info.duration_s == pytest.approx(1.2) and info.start_s == 0.0
    assert "mp4" in info.container and info.file_size == vids["base"].stat().st_size
    assert info.audio is not None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels, info.audio.layout) == (
        "aac", 48000, 2, "stereo")
    d = json.loads(json.dumps(info.to_dict()))
    assert d["fps"] == "25/1" and d["fps_float"] == 25.0 and d["audio"]["sample_rate"] == 48000
    assert d["time_base"] == f"{info.time_base.numerator}/{info.time_base.denominator}"


def test_probe_ntsc_rate_and_formats(vids: dict[str, Path]) -> None:
    info = media.probe(vids["ntsc"])
    assert info.fps == Fraction(30000, 1001) and info.avg_fps == Fraction(30000, 1001)
    assert info.n_frames == 30 and info.duration_s == pytest.approx(30 * 1001 / 30000)
    odd = media.probe(vids["odd444"])
    assert (odd.width, odd.height, odd.pix_fmt) == (201, 117, "yuv444p")
    assert media.probe(vids["ten_bit"]).pix_fmt == "yuv420p10le"
    assert media.probe(vids["silent"]).audio is None


def test_probe_mkv_uses_stream_duration_tag(tmp_path: Path) -> None:
    # Matroska has no per-stream frame count; the container duration is the (longer) audio's.
    path = make_video(tmp_path / "clip.mkv", audio="long")
    info = media.probe(path)
    assert not info.frames_declared and info.n_frames == 30 and info.duration_s == pytest.approx(1.2)
    assert sum(len(w) for w in media.iter_windows(path, 8, info=info)) == 30  # no false "truncated"


def test_probe_edit_list_hiding_frames(tmp_path: Path, vids: dict[str, Path]) -> None:
    """A stream-copied cut keeps all samples but an edit list hides the first ones: count what plays."""
    src_path, cut = vids["silent"], tmp_path / "cut.mp4"
    with av.open(str(src_path)) as src, av.open(str(cut), "w") as out:
        vin = src.streams.video[0]
        vout = out.add_stream_from_template(vin)
        shift = 5 * round(1 / (25 * vin.time_base))
        for pkt in src.demux(vin):
            if pkt.dts is None:
                continue
            pkt.pts -= shift
            pkt.dts -= shift
            pkt.stream = vout
            out.mux(pkt)
    with av.open(str(cut)) as c:
        assert c.streams.video[0].frames == 30  # declared: all samples
    info = media.probe(cut)
    assert info.n_frames == 25 and info.frames_declared
    assert media.frame_count(cut) == 25
    assert sum(len(w) for w in media.iter_windows(cut, 17, info=info)) == 25


# ----------------------------------------------------------------------------------------------------
# video reading
# ----------------------------------------------------------------------------------------------------
def test_windows_cover_every_frame(vids: dict[str, Path]) -> None:
    info = media.probe(vids["base"])
    wins = list(media.iter_windows(vids["base"], 7, info=info))
    assert [len(w) for w in wins] == [7, 7, 7, 7, 2]
    assert [w.index for w in wins] == [0, 1, 2, 3, 4]
    assert [w.start for w in wins] == [0, 7, 14, 21, 28]
    for w in wins:
        assert w.frames.dtype == np.uint8 and w.frames.shape[1:] == (48, 64, 3)
        assert w.frames.flags.c_contiguous
        assert w.pts.dtype == np.int64 and w.times.dtype == np.float64
        np.testing.assert_allclose(w.times, w.pts * float(info.time_base) - info.start_s)
    pts = np.concatenate([w.pts for w in wins])
    assert np.all(np.diff(pts) > 0)
    np.testing.assert_allclose(np.concatenate([w.times for w in wins]), np.arange(30) / 25, atol=1e-9)
    frames = np.concatenate([w.frames for w in wins])
    expected = np.stack([synth_frame(i, 64, 48) for i in range(30)])
    assert np.abs(frames.astype(int) - expected).mean() < 6  # lossy codec, same picture
    assert np.abs(np.diff(frames.astype(int), axis=0)).mean(axis=(1, 2, 3)).min() > 1  # frames move
    assert media.frame_count(vids["base"]) == 30
    assert len(list(media.read_video_frames(vids["base"]))) == 30


@pytest.mark.parametrize("name,shape", [("odd444", (117, 201, 3)), ("ten_bit", (48, 64, 3))])
def test_windows_odd_size_and_10bit(vids: dict[str, Path], name: str, shape: tuple[int, ...]) -> None:
    wins = list(media.iter_windows(vids[name], 17))
    assert [len(w) for w in wins] == [17, 13]
    assert wins[0].frames.shape[1:] == shape
    h, w, _ = shape
    expected = synth_frame(0, w, h)
    assert np.abs(wins[0].frames[0].astype(int) - expected).mean() < 6


def test_windows_vfr_keep_source_timestamps(vids: dict[str, Path]) -> None:
    info = media.probe(vids["vfr"])
    assert info.avg_fps == 25 and info.time_base == Fraction(1, 90000)
    wins = list(media.iter_windows(vids["vfr"], 16, info=info))
    pts = np.concatenate([w.pts for w in wins])
    assert pts.tolist() == vfr_pts(30, Fraction(25), Fraction(1, 90000))
    steps = np.diff(np.concatenate([w.times for w in wins]))
    assert steps.min() == pytest.approx(0.02) and steps.max() == pytest.approx(0.06)


def test_windows_trim_and_resize(vids: dict[str, Path]) -> None:
    wins = list(media.iter_windows(vids["base"], 4, start_s=0.4, duration_s=0.4, size=(32, 24)))
    assert [w.start for w in wins] == [10, 14, 18]
    assert [len(w) for w in wins] == [4, 4, 2]
    times = np.concatenate([w.times for w in wins])
    np.testing.assert_allclose(times, np.arange(10, 20) / 25)
    assert wins[0].frames.shape == (4, 24, 32, 3)
    with pytest.raises(MediaError, match="no video frames between"):
        list(media.iter_windows(vids["base"], 4, start_s=5.0))


def test_rotation_applied_to_pixels(vids: dict[str, Path]) -> None:
    upright0 = _frames(vids["rot0"])
    for name, k in (("rot90", 1), ("rot270", 3)):
        info = media.probe(vids[name])
        assert info.rotation == k * 90 and (info.width, info.height) == (48, 64)
        got = _frames(vids[name], info=info)
        assert got.shape == (30, 64, 48, 3)
        # Same bitstream, only the display matrix differs: exactly the quarter-turned pixels.
        np.testing.assert_array_equal(got, np.rot90(upright0, k=k, axes=(1, 2)))
    # Counter-clockwise: the marker square (top-left when stored) ends bottom-left after 90 degrees.
    f = _frames(vids["rot90"])[0].astype(int)
    assert f[-4:, :4].mean() > 230 and f[:4, :4].mean() < 200
    sized = next(media.iter_windows(vids["rot90"], 3, size=(30, 40)))
    assert sized.frames.shape == (3, 40, 30, 3)


def test_rotate_upright_helper() -> None:
    img = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)  # [[0 1 2], [3 4 5]]
    assert media.rotate_upright(img, 90)[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert media.rotate_upright(img, -90)[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert media.rotate_upright(img, 180)[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert media.rotate_upright(img, 0) is img
    assert media.rotate_upright(np.stack([img, img]), 270).shape == (2, 3, 2, 1)


# ----------------------------------------------------------------------------------------------------
# audio reading
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["base", "mono22k", "six", "long", "ntsc", "vfr"])
def test_audio_exact_length_and_chunks(vids: dict[str, Path], name: str) -> None:
    info = media.probe(vids[name])
    chunks = list(media.read_audio(vids[name], info=info, chunk_samples=10_000))
    total = round(info.duration_s * SR)
    assert sum(c.shape[1] for c in chunks) == total
    assert all(c.shape == (1, 10_000) for c in chunks[:-1]) and 0 < chunks[-1].shape[1] <= 10_000
    audio = np.concatenate(chunks, axis=1)
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    # the tone plays up to the end of the video (audio never ends early here)
    assert np.abs(audio[0, -2000:]).max() > 0.1


def test_audio_channels_kept_when_not_mono(vids: dict[str, Path]) -> None:
    six = _all_audio(vids["six"], mono=False)
    assert six.shape == (6, round(1.2 * SR))
    mono = _all_audio(vids["six"])
    np.testing.assert_allclose(mono[0], six.mean(axis=0), atol=1e-6)
    assert _all_audio(vids["base"], mono=False).shape[0] == 2


@pytest.mark.parametrize("name,sr", [("base", 44100), ("base", 16000), ("mono22k", 44100), ("six", 24000)])
def test_resampling_keeps_440hz(vids: dict[str, Path], name: str, sr: int) -> None:
    audio = _all_audio(vids[name], sample_rate=sr)[0]
    assert audio.shape[0] == round(1.2 * sr)
    seg = audio[sr // 10: -sr // 10]
    assert _peak_hz(seg, sr) == pytest.approx(440.0, abs=1.0)
    assert 0.25 < np.abs(seg).max() < 0.55


def test_audio_late_start_is_padded(vids: dict[str, Path]) -> None:
    info = media.probe(vids["late"])
    assert info.audio is not None and info.audio.start_s > 0.4
    audio = _all_audio(vids["late"], info=info)[0]
    assert audio.shape[0] == round(1.2 * SR)
    lead = round((LATE_AUDIO_S - 0.03) * SR)
    assert np.abs(audio[:lead]).max() < 1e-3
    assert np.abs(audio[round((LATE_AUDIO_S + 0.01) * SR):]).min() < 0.05  # a tone, not a DC level
    assert np.abs(audio[round((LATE_AUDIO_S + 0.01) * SR):]).max() > 0.3


def test_audio_short_is_zero_padded_long_is_cut(vids: dict[str, Path]) -> None:
    short = _all_audio(vids["short"])[0]
    assert short.shape[0] == round(1.2 * SR)
    assert np.abs(short[: round(0.55 * SR)]).max() > 0.3
    assert np.abs(short[round(0.7 * SR):]).max() < 1e-3  # AAC tail decays within ~20 ms
    long = _all_audio(vids["long"])[0]
    assert long.shape[0] == round(1.2 * SR)


def test_audio_gap_keeps_timeline(vids: dict[str, Path]) -> None:
    info = media.probe(vids["gap"])  # 2.0 s video, audio hole of GAP_S after 1/3
    audio = _all_audio(vids["gap"], info=info)[0]
    assert audio.shape[0] == round(2.0 * SR)
    hole_start = 2.0 / 3
    assert np.abs(audio[round((hole_start + 0.03) * SR): round((hole_start + GAP_S - 0.05) * SR)]).max() < 1e-3
    after = audio[round((hole_start + GAP_S + 0.05) * SR):]
    assert np.abs(after).max() > 0.3 and _peak_hz(after, SR) == pytest.approx(440.0, abs=1.0)
    # The tone restarts where the timestamps say (not right after the previous packet).
    first_loud = np.flatnonzero(np.abs(audio[round((hole_start + 0.05) * SR):]) > 0.1)[0]
    assert first_loud / SR + hole_start + 0.05 == pytest.approx(hole_start + GAP_S, abs=0.03)


def test_audio_trim_matches_full_read(vids: dict[str, Path]) -> None:
    full = _all_audio(vids["base"])
    part = _all_audio(vids["base"], start_s=0.5, duration_s=0.3, chunk_samples=4096)
    assert part.shape == (1, round(0.3 * SR))
    s = round(0.5 * SR)
    np.testing.assert_array_equal(part, full[:, s: s + part.shape[1]])
    tail = _all_audio(vids["base"], start_s=1.0)
    assert tail.shape == (1, round(0.2 * SR))


def test_no_audio_stream_yields_nothing(vids: dict[str, Path]) -> None:
    assert list(media.read_audio(vids["silent"])) == []


# ----------------------------------------------------------------------------------------------------
# writers and mux
# ----------------------------------------------------------------------------------------------------
def _write_copy(src: Path, dst: Path, **kw) -> tuple[media.VideoInfo, media.VideoWriter, np.ndarray]:
    info = media.probe(src)
    frames = []
    with media.VideoWriter(dst, info.width, info.height, info.fps, time_base=info.time_base,
                           preset="veryfast", **kw) as writer:
        for win in media.iter_windows(src, 7, info=info):
            writer.write(win.frames, win.pts)
            frames.append(win.frames)
    return info, writer, np.concatenate(frames)


def test_video_writer_odd_size_is_padded_and_playable(vids: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    _, writer, src = _write_copy(vids["odd444"], out)
    assert writer.padded_size == (202, 118) and writer.frames_written == 30
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt, v.width, v.height) == ("h264", "yuv420p", 202, 118)
    info = media.probe(out)
    assert info.fps == 25 and info.n_frames == 30 and info.duration_s == pytest.approx(1.2)
    assert media.frame_count(out) == 30
    back = _frames(out, info=info).astype(int)
    assert np.abs(back[:, :117, :201] - src).mean() < 4
    # padding replicates the last column/row
    assert np.abs(back[:, :117, 201] - back[:, :117, 200]).mean() < 4
    assert np.abs(back[:, 117, :201] - back[:, 116, :201]).mean() < 4


@pytest.mark.parametrize("size", [(202, 118), (201, 117)])
def test_video_writer_conversion_equals_a_fresh_frame_per_call(tmp_path: Path, size: tuple[int, int]) -> None:
    """The writer reuses one RGB frame and one scaler; every frame must convert exactly as a fresh
    ``from_ndarray(edge-padded) -> reformat`` does (odd sizes: last row/column replicated)."""
    w, h = size
    writer = media.VideoWriter(tmp_path / "x.mp4", w, h, Fraction(25))
    try:
        pw, ph = writer.padded_size
        for i in (0, 7, 3):  # out of order: nothing of an earlier frame may leak into a later one
            img = synth_frame(i, w, h)
            got = writer._to_yuv(img)  # noqa: SLF001
            ref = av.VideoFrame.from_ndarray(np.pad(img, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge"),
                                             format="rgb24").reformat(
                format="yuv420p", dst_colorspace=av.video.reformatter.Colorspace.ITU709,
                dst_color_range=av.video.reformatter.ColorRange.MPEG)
            assert (got.width, got.height) == (pw, ph)
            assert np.array_equal(got.to_ndarray(), ref.to_ndarray())  # the Y, U, V planes without row padding
    finally:
        writer._abort()  # noqa: SLF001


def test_video_writer_keeps_vfr_and_ntsc_timing(vids: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "vfr.mp4"
    _write_copy(vids["vfr"], out)
    got = np.concatenate([w.pts for w in media.iter_windows(out, 30)])
    assert got.tolist() == vfr_pts(30, Fraction(25), Fraction(1, 90000))

    out = tmp_path / "ntsc.mp4"
    _write_copy(vids["ntsc"], out)
    info = media.probe(out)
    assert info.fps == Fraction(30000, 1001) and info.n_frames == 30
    assert info.duration_s == pytest.approx(30 * 1001 / 30000, abs=1e-6)  # last frame lasts 1/fps


def test_video_writer_pts_origin(tmp_path: Path) -> None:
    frames = np.stack([synth_frame(i, 32, 16) for i in range(5)])
    shifted, default = tmp_path / "shifted.mp4", tmp_path / "default.mp4"
    pts = np.arange(100, 105) * 512  # source timestamps in 1/12800 at 25 fps, not starting at 0
    for path, origin in ((shifted, 100 * 512 - 256), (default, None)):
        with media.VideoWriter(path, 32, 16, Fraction(25), Fraction(1, 12800), pts_origin=origin) as w:
            w.write(frames, pts)
    assert next(media.iter_windows(default, 5)).pts.tolist() == [0, 512, 1024, 1536, 2048]
    assert media.probe(shifted).start_s == pytest.approx(0.02)  # half a frame after the origin


def test_video_writer_index_timestamps_and_validation(tmp_path: Path) -> None:
    frames = np.stack([synth_frame(i, 32, 16) for i in range(10)])
    out = tmp_path / "idx.mp4"
    with media.VideoWriter(out, 32, 16, Fraction(10), crf=30, preset="ultrafast") as w:
        w.write(frames[:6])
        w.write(frames[6:])
        with pytest.raises(ValueError):
            w.write(frames[:, :8])
    info = media.probe(out)
    assert info.n_frames == 10 and info.fps == 10 and info.duration_s == pytest.approx(1.0)


def _assert_playable_copy(path: Path, frames: np.ndarray) -> None:
    info = media.probe(path)
    assert info.codec == "h264" and media.frame_count(path) == len(frames)
    back = np.stack(list(media.read_video_frames(path))).astype(int)
    assert np.abs(back - frames).mean() < 4


class _FailingStream:
    """Stands in for an NVENC stream that opened but fails on the first frame."""

    def encode(self, frame: object) -> list:
        raise av.error.ExternalError(-542398533, "nvenc: no capable devices found")


def test_video_writer_nvenc_falls_back_to_libx264(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = np.stack([synth_frame(i, 64, 48) for i in range(8)])
    # 1. NVENC requested where it cannot open (no NVIDIA driver here): libx264, a playable file
    out = tmp_path / "nvenc.mp4"
    with media.VideoWriter(out, 64, 48, Fraction(25), encoder="h264_nvenc") as w:
        w.write(frames)
    if not Path("/dev/nvidiactl").exists():
        assert w.encoder == "libx264"
    _assert_playable_copy(out, frames)

    # 2. "auto" tries NVENC only when a CUDA device is present; a failed open falls back
    monkeypatch.setattr(media, "_cuda_present", lambda: False)
    with media.VideoWriter(tmp_path / "a.mp4", 64, 48, 25, encoder="auto") as w:
        assert w.encoder == "libx264"

    # 3. NVENC opened but fails on the first frame: start over with libx264, nothing lost
    opened: list[str] = []
    real_open = media.VideoWriter._open

    def fake_open(self: media.VideoWriter, codec: str) -> None:
        opened.append(codec)
        real_open(self, "libx264")
        if codec == "h264_nvenc":
            self._stream, self.encoder = _FailingStream(), "h264_nvenc"

    monkeypatch.setattr(media, "_cuda_present", lambda: True)
    monkeypatch.setattr(media.VideoWriter, "_open", fake_open)
    out = tmp_path / "first_frame.mp4"
    with media.VideoWriter(out, 64, 48, Fraction(25), encoder="auto") as w:
        assert w.encoder == "h264_nvenc"
        w.write(frames[:3])
        w.write(frames[3:])
    assert opened == ["h264_nvenc", "libx264"] and w.encoder == "libx264"
    _assert_playable_copy(out, frames)


def test_video_writer_rejects_unknown_preset_and_encoder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="preset"):
        media.VideoWriter(tmp_path / "x.mp4", 32, 16, 25, preset="fastest")
    with pytest.raises(ValueError, match="encoder"):
        media.VideoWriter(tmp_path / "x.mp4", 32, 16, 25, encoder="hevc_nvenc")
    assert not (tmp_path / "x.mp4").exists()

    frames = np.stack([synth_frame(i, 64, 48) for i in range(3)])
    out = tmp_path / "nv.mp4"
    with media.VideoWriter(out, 64, 48, 25, encoder="h264_nvenc" if not Path("/dev/nvidiactl").exists() else "auto") as w:
        w.write(frames)  # NVENC asked for where there is none -> libx264
    assert w.encoder == "libx264" or Path("/dev/nvidiactl").exists()
    _assert_playable_copy(out, frames)


def test_wav_writer_roundtrip(tmp_path: Path) -> None:
    t = np.arange(4410) / SR
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), np.full_like(t, 2.0)]).astype(np.float32)
    path = tmp_path / "a.wav"
    with media.WavWriter(path, SR, channels=2) as w:
        w.write(x[:, :1000])
        w.write(x[:, 1000:])
    with wave.open(str(path)) as r:
        assert (r.getnchannels(), r.getsampwidth(), r.getframerate(), r.getnframes()) == (2, 2, SR, 4410)
        pcm = np.frombuffer(r.readframes(4410), dtype="<i2").reshape(-1, 2).T
    np.testing.assert_allclose(pcm[0] / 32767, x[0], atol=1 / 32767)
    assert np.all(pcm[1] == 32767)  # clipped


def _video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


@pytest.mark.parametrize("channels", [1, 2])
def test_mux_h264_aac_faststart(vids: dict[str, Path], tmp_path: Path, channels: int) -> None:
    video = tmp_path / "v.mp4"
    info, _, _ = _write_copy(vids["ntsc"], video)
    wav = tmp_path / "a.wav"
    with media.WavWriter(wav, SR, channels) as w:
        for chunk in media.read_audio(vids["ntsc"], info=info, mono=channels == 1, chunk_samples=8192):
            w.write(chunk)
    out = tmp_path / "final.mp4"
    media.mux(video, wav, out)
    head = out.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")  # faststart
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (a.codec_context.name, a.sample_rate, a.channels) == ("aac", SR, channels)
        v_dur = float(v.duration * v.time_base)
        a_dur = float(a.duration * a.time_base)
    assert v_dur == pytest.approx(info.duration_s, abs=1e-6)
    assert abs(a_dur - v_dur) <= AAC_FRAME / SR
    assert _video_packets(out) == _video_packets(video)  # stream copy, no re-encode
    assert media.frame_count(out) == 30
    tone = _all_audio(out)[0]
    assert _peak_hz(tone[2000:-2000], SR) == pytest.approx(440.0, abs=1.0)


def test_mux_video_only_and_errors(vids: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "only.mp4"
    media.mux(vids["silent"], None, out)
    head = out.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]
    with pytest.raises(MediaError) as exc:
        media.mux(vids["silent"], tmp_path / "missing.wav", tmp_path / "x.mp4")
    _one_line_error(exc, "missing.wav")
    assert not (tmp_path / "x.mp4").exists()


# ----------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------
def test_missing_text_empty_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    for fn in (media.probe, media.frame_count, lambda p: list(media.iter_windows(p, 5)),
               lambda p: list(media.read_audio(p))):
        with pytest.raises(MediaError) as exc:
            fn(missing)
        assert _one_line_error(exc, "nope.mp4") == "nope.mp4: file not found"

    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError) as exc:
        media.probe(text)
    assert "not a readable video file" in _one_line_error(exc, "notes.mp4")

    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(MediaError, match=r"^empty\.mp4: file is empty$"):
        media.probe(empty)
    with pytest.raises(MediaError, match="is a directory"):
        media.probe(tmp_path)


def test_audio_only_file_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    with pytest.raises(MediaError) as exc:
        media.probe(path)
    assert _one_line_error(exc, "song.mp4") == "song.mp4: not a video file (no video stream)"


def test_truncated_files(tmp_path: Path) -> None:
    full = make_video(tmp_path / "full.mp4", width=128, height=96, n_frames=45, faststart=True)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    info = media.probe(cut)  # the index is intact (faststart), the data is not
    assert info.n_frames == 45
    with pytest.raises(MediaError) as exc:
        for _ in media.iter_windows(cut, 17, info=info):
            pass
    msg = _one_line_error(exc, "cut.mp4")
    assert "truncated or corrupt: decoded" in msg and "of 45 frames" in msg
    assert media.frame_count(cut) < 45
    assert sum(c.shape[1] for c in media.read_audio(cut, info=info)) == round(info.duration_s * SR)

    # index at the end (no faststart): the file cannot even be opened
    plain = make_video(tmp_path / "plain.mp4", n_frames=45)
    head = tmp_path / "head.mp4"
    head.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    with pytest.raises(MediaError) as exc:
        media.probe(head)
    _one_line_error(exc, "head.mp4")


def test_corrupt_data_mid_stream(tmp_path: Path) -> None:
    full = make_video(tmp_path / "full.mp4", width=128, height=96, n_frames=45, faststart=True)
    data = bytearray(full.read_bytes())
    mid = len(data) // 2
    data[mid: mid + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(MediaError) as exc:
        for _ in media.iter_windows(bad, 8):
            pass
    _one_line_error(exc, "bad.mp4")


# ----------------------------------------------------------------------------------------------------
# the real clip
# ----------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not BBB.exists(), reason="assets/bigbuckbunny.mp4 missing")
def test_real_clip() -> None:
    info = media.probe(BBB)
    assert (info.codec, info.width, info.height, info.rotation) == ("h264", 1280, 720, 0)
    assert info.fps == 25 and info.n_frames == 132 and info.duration_s == pytest.approx(5.28)
    assert info.audio is not None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 48000, 6)
    first = next(media.iter_windows(BBB, 17, info=info))
    assert first.frames.shape == (17, 720, 1280, 3) and first.start == 0
    assert first.pts.tolist() == [i * 512 for i in range(17)]
    assert first.frames.std() > 10
    n = sum(c.shape[1] for c in media.read_audio(BBB, info=info))
    assert n == round(5.28 * SR) == 232848
