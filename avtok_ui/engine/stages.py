"""The stages of one run, each a small unit with one job (see ``avtok_ui/pipeline.py`` for the graph).

* :func:`source_stage` (thread): decodes windows of frames; :func:`prepare_stage` (thread) converts them to
  the model input.
* :class:`VisualCoder` (foreground): the model calls; conversions placed by device.
* :func:`token_stage` (thread): each window's tokens into the token file.
* :func:`uint8_stage` (thread): decoded tensor -> uint8 frames, for :func:`writer_stage` (thread: the
  reconstruction encoder, x264/NVENC) and the metrics stage (:func:`recon_stages` starts both).
* :func:`metrics_stage` (thread): streaming PSNR/SSIM/LPIPS.
* :func:`audio_stage` (thread): DAC encode (and decode + scoring) of the whole track, in chunks.

Stages talk through :class:`~avtok_ui.engine.flow.Channel`\\ s and stop together (see ``flow.py``).
"""

from __future__ import annotations

import contextlib
import threading
import time
import wave
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import media
from ..metrics import AudioMetrics
from ..settings import DAC_SAMPLE_RATE
from .convert import host_frames, to_model_input, to_uint8_frames
from .flow import Channel, Flow
from .heap import trim_after_window, trim_heap

ProgressFn = Callable[[str, float, float], None]


# ----------------------------------------------------------------------------------------------------
# shared small tools
# ----------------------------------------------------------------------------------------------------
class Clock:
    """Busy seconds per stage label, from any thread (labels overlap in time: stages run concurrently)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self.first_model_call: float | None = None

    @contextlib.contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.seconds[label] = self.seconds.get(label, 0.0) + dt

    def model_call_started(self) -> None:
        with self._lock:
            if self.first_model_call is None:
                self.first_model_call = time.perf_counter()


def locked_progress(progress: ProgressFn | None) -> ProgressFn:
    """A progress callback that stages may call from any thread (calls are serialised)."""
    if progress is None:
        return lambda stage, done, total: None
    lock = threading.Lock()

    def call(stage: str, done: float, total: float) -> None:
        with lock:
            progress(stage, done, total)

    return call


# ----------------------------------------------------------------------------------------------------
# source
# ----------------------------------------------------------------------------------------------------
@dataclass
class WindowItem:
    """One window on its way through the stages.

    ``frames``: source ``np.ndarray [n, H, W, 3]`` uint8 (kept for metrics); ``pts``/``times``: per frame;
    ``x``: prepared model input (see :meth:`VisualCoder.prepare`)."""

    index: int
    frames: np.ndarray
    pts: np.ndarray
    times: np.ndarray
    x: torch.Tensor | None = None
    video: torch.Tensor | None = None  # decoded ``[3, n, H, W]`` model dtype, cropped (after decoding)


def source_stage(out: Channel, windows: Iterable[media.FrameWindow], clock: Clock) -> None:
    """Decode windows of frames (PyAV: demux, decode, RGB conversion) ahead of the model.

    Also returns freed window buffers to the OS (:func:`~avtok_ui.engine.heap.trim_after_window`,
    process-wide): here rather than between model calls, where its 1-3 ms kept the model waiting."""
    it = iter(windows)
    while True:
        with clock("read frames"):
            win = next(it, None)
        if win is None:
            break
        out.put(WindowItem(win.index, win.frames, win.pts, win.times))
        trim_after_window(win.index)
    out.close()


def prepare_stage(inp: Channel, out: Channel, prepare: Callable[[np.ndarray], torch.Tensor], clock: Clock) -> None:
    """Convert each decoded window to the model's input (its own thread: decoding and conversion each get a
    core while the model works). One intra-op thread (OpenMP's setting is per thread): a second one only adds
    wake-ups (measured: a third more CPU for the 720p conversion, most of it kernel time)."""
    torch.set_num_threads(1)
    for item in inp:
        with clock("convert in"):
            item.x = prepare(item.frames)
        out.put(item)
    out.close()


# ----------------------------------------------------------------------------------------------------
# the tokenizer's model calls
# ----------------------------------------------------------------------------------------------------
class VisualCoder:
    """Model calls of one visual tokenizer for windows of ``height x width`` frames.

    On a CPU the uint8 -> model conversion runs in :meth:`prepare` (called by the source thread) so it
    overlaps the model; on CUDA :meth:`prepare` only pins the uint8 frames and the conversion is device work
    inside :meth:`encode`. Decoded windows stay in the model dtype on the model device, cropped to the
    source size; the reconstruction stage converts them to uint8.
    """

    def __init__(self, tokenizer: Any, height: int, width: int, clock: Clock) -> None:
        self.tok = tokenizer
        self.setting = tokenizer.setting
        self.device = torch.device(tokenizer.device)
        self.dtype = tokenizer.dtype
        self.height, self.width = height, width
        self.padded_h, self.padded_w = self.setting.padded_size(height, width)
        self.clock = clock

    def _model_input(self, frames: torch.Tensor) -> torch.Tensor:
        return to_model_input(frames, dtype=self.dtype, device=self.device,
                              padded_t=self.setting.padded_window_length(int(frames.shape[0])),
                              padded_h=self.padded_h, padded_w=self.padded_w)

    def prepare(self, frames: np.ndarray) -> torch.Tensor:
        """Source thread: uint8 ``[n, H, W, 3]`` -> CPU: model input ``[1, 3, n', H', W']``; CUDA: pinned uint8."""
        t = host_frames(frames, self.device)
        if self.device.type == "cpu":
            return self._model_input(t)
        return t

    def encode(self, items: list[WindowItem]) -> list[torch.Tensor]:
        """Encode windows of equal length in one model call; returns each window's tokens
        (CV ``[1, 16, t, h, w]`` model dtype, DV ``[1, t, h, w]`` int32)."""
        with torch.inference_mode():
            # CPU: ``prepare`` already made the model input; CUDA: pinned uint8, converted here on the device
            xs = [it.x if it.x.is_floating_point() else self._model_input(it.x) for it in items]
            x = xs[0] if len(xs) == 1 else torch.cat(xs)
            self.clock.model_call_started()
            with self.clock("visual encode"):
                tokens = self.tok.encode(x)
            return list(tokens.split(1)) if len(items) > 1 else [tokens]

    def decode(self, tokens: list[torch.Tensor], n_frames: list[int]) -> list[torch.Tensor]:
        """Decode windows of equal length in one call; returns each ``[3, n, H, W]`` (model dtype, raw)."""
        with torch.inference_mode():
            x = tokens[0] if len(tokens) == 1 else torch.cat(tokens)
            with self.clock("visual decode"):
                video = self.tok.decode_raw(x)
            return [video[i, :, :n, :self.height, :self.width] for i, n in enumerate(n_frames)]


# ----------------------------------------------------------------------------------------------------
# sinks
# ----------------------------------------------------------------------------------------------------
def token_stage(inp: Channel, writer: Any, clock: Clock) -> None:
    """``(tokens, stored, n_frames)`` -> :class:`~avtok_ui.tokens.TokenFileWriter` (spilled to disk). ``tokens``:
    the encoder output (model form, on the model's device); ``stored``: its stored form when the model thread
    already made it (to decode it), else None and it is made here. Its own thread, so the copy to the host and
    the file write do not hold up the next model call."""
    for tokens, stored, n_frames in inp:
        with clock("store tokens"):
            if stored is None:
                writer.add_window(tokens, n_frames)
            else:
                writer.add_stored(stored, n_frames)
        del tokens, stored


def uint8_stage(inp: Channel, outs: list[Channel], clock: Clock) -> None:
    """Decoded windows (``item.video`` ``[3, n, H, W]`` model dtype) -> uint8 frames ``[n, H, W, 3]``, handed as
    ``(item, frames)`` to every channel of ``outs`` (the writer, the metrics). Its own thread, so the
    conversion overlaps the encoder. (The RGB -> YUV conversion stays in the writer's thread: done here, the
    YUV frames were allocated in one thread and freed in another, and the whole run took more CPU.)"""
    for item in inp:
        with clock("convert out"):
            recon = to_uint8_frames(item.video)
        item.video = None
        for ch in outs:
            ch.put((item, recon))
        del item, recon
    for ch in outs:
        ch.close()


def writer_stage(inp: Channel, writer_args: dict[str, Any], clock: Clock, result: dict[str, Any]) -> None:
    """``(item, uint8 frames)`` -> the reconstruction mp4 (x264/NVENC). ``writer_args``: keyword arguments of
    :class:`~avtok_ui.media.VideoWriter`. Records the encoder that ran in ``result["encoder"]``."""
    writer = media.VideoWriter(**writer_args)
    try:
        for item, recon in inp:
            with clock("write video"):
                writer.write(recon, item.pts)
            del item, recon
        with clock("write video"):
            writer.close()
        result["encoder"] = writer.encoder
    except BaseException:
        with contextlib.suppress(Exception):
            writer._abort()  # noqa: SLF001 -- the staging folder is removed anyway
        raise


def recon_stages(flow: Flow, inp: Channel, writer_args: dict[str, Any], metrics_out: Channel | None, clock: Clock,
                 result: dict[str, Any]) -> None:
    """Start the reconstruction sinks: :func:`uint8_stage` feeding :func:`writer_stage` (and ``metrics_out``).
    Queues of one window: the encoder is usually the slowest sink, and a deeper queue only lengthens the drain
    after the last model call (and holds more decoded windows in memory)."""
    to_writer = flow.channel(1, "recon frames")
    flow.start("uint8", uint8_stage, inp, [to_writer] + ([metrics_out] if metrics_out is not None else []), clock)
    flow.start("writer", writer_stage, to_writer, writer_args, clock, result)


def metrics_stage(inp: Channel, vmetrics: Any, clock: Clock) -> None:
    """Score each ``(item, reconstruction)``: ``item.frames`` against the uint8 ``[n, H, W, 3]`` frames.

    On a CPU this thread uses one intra-op thread (OpenMP's setting is per thread): the model and the
    encoder already keep the cores busy, and many small multi-threaded ops stall on an oversubscribed CPU."""
    if str(getattr(vmetrics, "device", "cpu")).startswith("cpu"):
        torch.set_num_threads(1)
    for item, recon in inp:
        with clock("metrics"):
            vmetrics.update(item.frames, recon)


# ----------------------------------------------------------------------------------------------------
# audio
# ----------------------------------------------------------------------------------------------------
@dataclass
class AudioOutcome:
    """What the audio stage produced: codes ``[n_q, n_codes]`` int64, DAC input length, optional scores."""

    codes: np.ndarray | None = None
    n_samples: int = 0
    report: dict[str, Any] | None = None


def wav_chunks(path: Path, chunk: int = DAC_SAMPLE_RATE * 10) -> Iterator[np.ndarray]:
    """Stream a 16-bit PCM WAV as float32 ``[C, n]`` chunks in [-1, 1)."""
    with wave.open(str(path), "rb") as w:
        ch = w.getnchannels()
        while True:
            raw = w.readframes(chunk)
            if not raw:
                break
            a = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
            yield a.reshape(-1, ch).T


def encode_audio(flow: Flow, dac: Any, chunks: Iterable[np.ndarray], n_codebooks: int, wav_in: Path | None,
                 n_total: int, progress: ProgressFn, out: AudioOutcome) -> None:
    """DAC-encode a stream of mono float32 ``[1, n]`` chunks (44.1 kHz); keep the input in ``wav_in``."""
    def feed() -> Iterator[np.ndarray]:
        wav = media.WavWriter(wav_in, DAC_SAMPLE_RATE, 1) if wav_in is not None else None
        try:
            for chunk in chunks:
                flow.raise_if_stopped()
                if wav is not None:
                    wav.write(chunk)
                out.n_samples += chunk.shape[-1]
                progress("audio encode", out.n_samples, n_total)
                yield chunk
        finally:
            if wav is not None:
                wav.close()

    out.codes = dac.encode_stream(feed(), n_codebooks=n_codebooks, chunk_frames=audio_chunk_frames(dac))
    trim_heap()


def audio_chunk_frames(dac: Any) -> int:
    """DAC code frames per chunk: as long as memory allows. On CUDA 2,048 (~24 s: fewer, larger calls);
    on a CPU 256 (~3 s: the full-size model peaks at ~2.3 GB for 8 s in one call). The codes do not depend
    on it (16 frames of context on each side give the whole-track codes exactly)."""
    from ..audio import DEFAULT_CHUNK_FRAMES

    return 2048 if str(getattr(dac, "device", "cpu")).startswith("cuda") else DEFAULT_CHUNK_FRAMES


def decode_audio(flow: Flow, dac: Any, codes: np.ndarray, n_samples: int, out_wav: Path, ref_wav: Path | None,
                 progress: ProgressFn, *, score: bool) -> dict[str, Any] | None:
    """Decode ``codes`` to ``out_wav`` (streaming); if ``score``, compare with ``ref_wav`` chunk by chunk."""
    scorer = AudioMetrics(DAC_SAMPLE_RATE, "DAC input (mono 44.1 kHz) vs DAC output, before AAC") if (
        score and ref_wav is not None) else None
    done = 0
    with media.WavWriter(out_wav, DAC_SAMPLE_RATE, 1) as wav:
        def pieces() -> Iterator[np.ndarray]:
            nonlocal done
            for piece in dac.decode_stream(codes, n_samples, chunk_frames=audio_chunk_frames(dac)):
                flow.raise_if_stopped()
                piece = np.asarray(piece, dtype=np.float32).reshape(-1)
                wav.write(piece[None])
                done += len(piece)
                progress("audio decode", done, n_samples)
                yield piece

        if scorer is None:
            for _ in pieces():
                pass
            return None
        for ref, out in zip_chunks((c[0] for c in wav_chunks(ref_wav)), pieces()):
            scorer.update(ref, out)
    return scorer.summary()


class ZipCounts:
    """How many items (along axis 0) each stream of :func:`zip_chunks` held in all."""

    def __init__(self) -> None:
        self.a = 0
        self.b = 0


def zip_chunks(a: Iterable[np.ndarray], b: Iterable[np.ndarray],
               counts: ZipCounts | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Walk two streams of arrays cut at different places along axis 0 (frames, samples) in step: yields
    pairs of equal length, in order, covering both streams up to the shorter one. Both streams are consumed
    to their ends (so a stream with side effects, e.g. one that writes a file, runs fully); ``counts`` gets
    each stream's total length. The one helper for pairing two chunk streams."""
    counts = counts if counts is not None else ZipCounts()
    its = [iter(a), iter(b)]
    bufs: list[list[np.ndarray]] = [[], []]
    done = [False, False]
    while not all(done):
        for i in (0, 1):
            if done[i]:
                continue
            x = next(its[i], None)
            if x is None:
                done[i] = True
            elif len(x):
                bufs[i].append(x)
                setattr(counts, "ab"[i], getattr(counts, "ab"[i]) + len(x))
        buf_a, buf_b = bufs
        have_a, have_b = sum(map(len, buf_a)), sum(map(len, buf_b))
        k = min(have_a, have_b)
        if k:
            ja = np.concatenate(buf_a) if len(buf_a) > 1 else buf_a[0]
            jb = np.concatenate(buf_b) if len(buf_b) > 1 else buf_b[0]
            yield ja[:k], jb[:k]
            bufs = [[ja[k:]] if len(ja) > k else [], [jb[k:]] if len(jb) > k else []]


def audio_stage(flow: Flow, dac: Any, chunks: Iterable[np.ndarray], n_codebooks: int, n_total: int,
                wav_in: Path | None, wav_out: Path | None, progress: ProgressFn, clock: Clock,
                out: AudioOutcome, *, score: bool) -> None:
    """The whole audio path in one thread: encode (keeping the DAC input in ``wav_in``), then, if
    ``wav_out``, decode and score. Overlaps the visual stages. On a CPU this thread uses one intra-op thread
    (OpenMP's setting is per thread): the visual model keeps the other core busy, and two threads per stage
    on two cores thrash (measured: the tiny DAC's encode took 6x longer beside the visual stages)."""
    if str(getattr(dac, "device", "cpu")).startswith("cpu"):
        torch.set_num_threads(1)
    with clock("audio encode"):
        encode_audio(flow, dac, chunks, n_codebooks, wav_in, n_total, progress, out)
    if wav_out is not None and out.codes is not None:
        with clock("audio decode"):
            out.report = decode_audio(flow, dac, out.codes, out.n_samples, wav_out, wav_in, progress, score=score)
