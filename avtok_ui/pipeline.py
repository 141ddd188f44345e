"""One run of the engine: video -> tokens -> reconstruction (+ metrics), streaming and atomic.

Flow (each window of source frames flows once, left to right)::

    media.read_audio ─► DacCodec.encode_stream ─► codes ──────────────────────────────┐
    media.iter_windows ─► CosmosTokenizer.encode ─► TokenFileWriter (spill) ──────────►├─► token file
                                   └─► decode ─► VideoMetrics.update ─► VideoWriter      │
    codes ─► DacCodec.decode_stream ─► WavWriter ─► audio metrics                        │
    media.mux(video, wav) ─► <nick>_reconstructed.mp4                                    ┘

Every output is first written inside a hidden staging folder next to its destination and renamed into
place only when the whole run succeeded; any error, Ctrl-C or cancel removes the staging folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, media
from .errors import AvtokError, Cancelled
from .metrics import AudioMetrics, json_safe
from .settings import (
    DAC_CODEBOOKS,
    DAC_HOP,
    DAC_SAMPLE_RATE,
    DEFAULT_WINDOW,
    VisualSetting,
)
from .tokens import TokenFile, TokenFileWriter, TokenMeta, iter_visual_windows, load_tokens, stored_to_model

ProgressFn = Callable[[str, float, float], None]
"""``progress(stage, done, total)``: stage is a short label such as ``"visual"``; ``total`` may be 0."""


@dataclass
class RunConfig:
    """The user's choices for one run (everything the CLI flags and the app controls set)."""

    setting: VisualSetting
    window: int = DEFAULT_WINDOW
    codebooks: int = DAC_CODEBOOKS  # 0 = no audio tokens
    device: str | None = None  # None: cuda if available else cpu
    dtype: str = "auto"  # auto = the checkpoint's own dtype (bf16 for the published files)
    checkpoint_dir: str | None = None  # Cosmos checkpoints (folder or parent of <repo name>/)
    dac_weights: str | None = None  # DAC weights file or folder
    allow_download: bool = True
    start_s: float = 0.0  # trim: start (seconds from the first frame)
    duration_s: float | None = None  # trim: duration
    max_side: int | None = None  # resolution cap: longest side in pixels (aspect kept, even sizes)
    metrics: bool = True
    lpips: str = "auto"  # auto (VGG on GPU, AlexNet on CPU: VGG costs ~30 s per 720p frame there) | vgg | alex | off
    crf: int = 18  # H.264 quality of the reconstructions (lower = closer to the decoder's output)

    def __post_init__(self) -> None:
        self.setting.check_window(self.window)
        if not 0 <= self.codebooks <= DAC_CODEBOOKS:
            raise AvtokError(f"codebooks must be between 0 (audio off) and {DAC_CODEBOOKS}, got {self.codebooks}")
        if self.lpips not in ("auto", "vgg", "alex", "off"):
            raise AvtokError(f"lpips must be auto, vgg, alex or off, got {self.lpips!r}")
        if self.start_s < 0 or (self.duration_s is not None and self.duration_s <= 0):
            raise AvtokError("trim start must be >= 0 and duration > 0")
        if self.max_side is not None and self.max_side < 16:
            raise AvtokError(f"max_side must be at least 16 pixels, got {self.max_side}")


@dataclass
class RunResult:
    """Paths of what a run wrote, plus its report (also saved as ``<nick>_metrics.json``)."""

    tokens: Path
    video: Path
    visual_video: Path
    audio_wav: Path | None
    metrics_json: Path | None
    extracted_wav: Path | None
    report: dict[str, Any] = field(default_factory=dict)

    def paths(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items() if k != "report" and v is not None}


# ----------------------------------------------------------------------------------------------------
# model loading (the app's service caches these; the CLI loads once per run)
# ----------------------------------------------------------------------------------------------------
@dataclass
class Models:
    """Loaded tokenizers for one run: Cosmos (required) and DAC (None when audio is off)."""

    cosmos: Any
    dac: Any | None = None


def load_models(config: RunConfig, *, need_audio: bool = True) -> Models:
    """Load the visual tokenizer for ``config.setting`` (Cosmos 0.1 or a diffusers VAE:
    :func:`avtok_ui.backends.load_tokenizer`) and, if ``need_audio``, the DAC codec."""
    from .backends import load_tokenizer

    cosmos = load_tokenizer(
        config.setting, config.checkpoint_dir, device=config.device, dtype=config.dtype,
        allow_download=config.allow_download,
    )
    codec = None
    if need_audio and config.codebooks > 0:
        from .audio import DacCodec

        codec = DacCodec.from_pretrained(config.dac_weights, device=cosmos.device,
                                         allow_download=config.allow_download)
    return Models(cosmos=cosmos, dac=codec)


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------
def _trim_heap() -> None:
    """Return freed window buffers to the OS (glibc keeps them otherwise; see TRAPS.md "Memory")."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def lpips_net(choice: str, device: Any) -> str:
    """Resolve ``auto``: the TokenBench VGG on a GPU, AlexNet on a CPU (VGG LPIPS measured ~36 s per
    720p frame on this project's 2-core CPU box, AlexNet ~1.3 s). The report always names the net."""
    if choice in ("vgg", "alex"):
        return choice
    return "vgg" if str(device).startswith("cuda") else "alex"


def capped_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """Size ``(W, H)`` with the longest side at most ``max_side`` (aspect kept, even), or None if no cap."""
    if max_side is None or max(width, height) <= max_side:
        return None
    scale = max_side / max(width, height)
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


class _Staging:
    """Hidden folders next to each destination; ``commit`` renames files into place, ``abort`` removes all."""

    def __init__(self) -> None:
        self._dirs: dict[Path, Path] = {}
        self._planned: list[tuple[Path, Path]] = []
        self._stale: list[Path] = []
        self._created: list[Path] = []

    def path_for(self, final: Path) -> Path:
        final = Path(final)
        parent = final.parent.resolve()
        if parent not in self._dirs:
            missing = [p for p in (parent, *parent.parents) if not p.exists()]
            try:
                parent.mkdir(parents=True, exist_ok=True)
                self._created.extend(missing)  # deepest first: removed on abort if still empty
                self._dirs[parent] = Path(tempfile.mkdtemp(prefix=".avtok-staging-", dir=parent))
            except OSError as err:
                raise AvtokError(f"{parent}: output folder is not writable ({err.strerror or err})") from None
        tmp = self._dirs[parent] / final.name
        self._planned.append((tmp, parent / final.name))
        return tmp

    def scratch(self, folder: Path, name: str) -> Path:
        """A temporary file in ``folder``'s staging area that is deleted, never committed."""
        self.path_for(Path(folder) / name)
        self._planned.pop()
        return self._dirs[Path(folder).resolve()] / name

    def replaces(self, final: Path) -> None:
        """``final`` is an output of a previous run under the same name that this run does not produce:
        it is deleted at commit, so a re-run never mixes old and new files."""
        self._stale.append(Path(final))

    def commit(self) -> None:
        for tmp, final in self._planned:
            if tmp.exists():
                os.chmod(tmp, 0o644)
                os.replace(tmp, final)
        for old in self._stale:
            old.unlink(missing_ok=True)
        self._created.clear()
        self.abort()

    def abort(self) -> None:
        for d in self._dirs.values():
            shutil.rmtree(d, ignore_errors=True)
        self._dirs.clear()
        for d in self._created:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty
        self._created.clear()


class _Clock:
    """Accumulates seconds per label (model calls vs everything else)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled by the user")


def _wav_chunks(path: Path, chunk: int = DAC_SAMPLE_RATE * 10) -> Iterator[np.ndarray]:
    """Stream a 16-bit PCM WAV as float32 ``[C, n]`` chunks."""
    with wave.open(str(path), "rb") as w:
        ch = w.getnchannels()
        while True:
            raw = w.readframes(chunk)
            if not raw:
                break
            a = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
            yield a.reshape(-1, ch).T


# ----------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------
def output_names(nickname: str) -> dict[str, str]:
    """File names the seed tool used (plus ours), all derived from the nickname."""
    return {
        "tokens": f"{nickname}.safetensors",
        "metrics": f"{nickname}_metrics.json",
        "video": f"{nickname}_reconstructed.mp4",
        "visual_video": f"{nickname}_reconstructed_visual.mp4",
        "audio_wav": f"{nickname}_reconstructed_audio.wav",
    }


def _check_nickname(nickname: str) -> str:
    if not nickname or any(c in nickname for c in "/\\\0") or nickname in (".", ".."):
        raise AvtokError(f"invalid video nickname {nickname!r}: use a plain file-name stem")
    return nickname


def tokenize(
    source: str | Path,
    tokens_dir: str | Path,
    recon_dir: str | Path,
    nickname: str,
    config: RunConfig,
    *,
    models: Models | None = None,
    extracted_wav: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Tokenize ``source`` and write tokens, reconstructions and a metrics report.

    Writes ``<tokens_dir>/<nick>.safetensors`` and ``<nick>_metrics.json``, and into ``recon_dir``
    ``<nick>_reconstructed.mp4`` (H.264 + AAC), ``<nick>_reconstructed_visual.mp4`` and
    ``<nick>_reconstructed_audio.wav``. ``extracted_wav``: also keep the DAC input audio there (the seed
    tool wrote ``<stem>_audio.wav`` beside the source). All-or-nothing.
    """
    _check_nickname(nickname)
    progress = progress or (lambda stage, done, total: None)
    t_start = time.perf_counter()
    clock = _Clock()
    source = Path(source)
    progress("probe", 0, 1)
    info = media.probe(source)
    size = capped_size(info.width, info.height, config.max_side)
    width, height = size or (info.width, info.height)
    avail = max(0.0, info.duration_s - config.start_s)
    if config.start_s > 0 and avail <= 0:
        raise AvtokError(f"{source.name}: trim start {config.start_s:.2f}s is past the end ({info.duration_s:.2f}s)")
    clip_duration = min(avail, config.duration_s) if config.duration_s else avail
    do_audio = info.audio is not None and config.codebooks > 0
    if models is None:
        with clock("load models"):
            models = load_models(config, need_audio=do_audio)
    cosmos = models.cosmos
    if do_audio and models.dac is None:
        raise AvtokError("audio tokens requested but no DAC model was loaded")

    names = output_names(nickname)
    tokens_dir, recon_dir = Path(tokens_dir), Path(recon_dir)
    stage = _Staging()
    try:
        tokens_path = stage.path_for(tokens_dir / names["tokens"])
        metrics_path = stage.path_for(tokens_dir / names["metrics"]) if config.metrics else None
        visual_path = stage.path_for(recon_dir / names["visual_video"])
        video_path = stage.path_for(recon_dir / names["video"])
        audio_out = stage.path_for(recon_dir / names["audio_wav"]) if do_audio else None
        if metrics_path is None:
            stage.replaces(tokens_dir / names["metrics"])
        if audio_out is None:
            stage.replaces(recon_dir / names["audio_wav"])
        extract_final = Path(extracted_wav) if (extracted_wav and do_audio) else None
        # the DAC input is kept (staged) for audio metrics even when the user did not ask for it
        if extract_final is not None:
            audio_in = stage.path_for(extract_final)
        else:
            audio_in = stage.scratch(tokens_dir, "dac_input.wav") if do_audio else None

        # ---------------- audio: extract + encode (streaming) ----------------
        codes = None
        n_samples = 0
        if do_audio:
            n_total = int(round(clip_duration * DAC_SAMPLE_RATE))

            def audio_chunks() -> Iterator[np.ndarray]:
                nonlocal n_samples
                with media.WavWriter(audio_in, DAC_SAMPLE_RATE, 1) as wav:
                    for chunk in media.read_audio(source, info=info, sample_rate=DAC_SAMPLE_RATE, mono=True,
                                                  start_s=config.start_s, duration_s=clip_duration):
                        _check_cancel(cancel)
                        wav.write(chunk)
                        n_samples += chunk.shape[-1]
                        progress("audio encode", n_samples, n_total)
                        yield chunk

            with clock("audio encode"):
                codes = models.dac.encode_stream(audio_chunks(), n_codebooks=config.codebooks)
            _trim_heap()

        # ---------------- visual: encode -> store -> decode -> score -> write, per window -----------
        n_est = max(1, int(round(clip_duration * float(info.avg_fps or info.fps)))) if clip_duration else info.n_frames
        n_windows_est = max(1, math.ceil(n_est / config.window))
        vmetrics = None
        if config.metrics:
            from .metrics import VideoMetrics

            vmetrics = VideoMetrics(lpips=None if config.lpips == "off" else "auto",
                                    lpips_net=lpips_net(config.lpips, cosmos.device), device=cosmos.device)
            if size is not None:
                vmetrics.resolution_note = (f"source {info.width}x{info.height} resized to {width}x{height} "
                                            "before tokenizing (resolution cap); scored at that size")
        pts_all: list[np.ndarray] = []
        times_all: list[np.ndarray] = []
        # pts origin = the audio's sample 0 (start of the clip), so a trim keeps its sub-frame A/V offset
        pts_origin = int(round((info.start_s + config.start_s) / info.time_base))
        with TokenFileWriter(tokens_path, config.setting) as tw, \
                media.VideoWriter(visual_path, width, height, info.fps, info.time_base, crf=config.crf,
                                  pts_origin=pts_origin) as vw:
            for win in media.iter_windows(source, config.window, info=info, start_s=config.start_s,
                                          duration_s=config.duration_s, size=size):
                _check_cancel(cancel)
                progress("visual", win.index, max(n_windows_est, win.index + 1))
                n = win.frames.shape[0]
                with clock("visual encode"):
                    tokens = cosmos.encode_window(win.frames)
                stored = tw.add_window(tokens, n)
                del tokens
                with clock("visual decode"):
                    recon = cosmos.decode_window(stored_to_model(stored, config.setting), n, height, width)
                if vmetrics is not None:
                    with clock("metrics"):
                        vmetrics.update(win.frames, recon)
                with clock("write video"):
                    vw.write(recon, win.pts)
                pts_all.append(win.pts)
                times_all.append(win.times - config.start_s)  # clip time: 0 = audio sample 0
                del recon, stored, win
                _trim_heap()
            progress("visual", 1, 1)
            frame_pts = np.concatenate(pts_all)
            frame_times = np.concatenate(times_all)
            n_frames = len(frame_pts)
            duration = _video_duration(frame_times, info, clip_duration)

            offsets = None
            if codes is not None:
                from .audio import latent_code_offsets, latent_times_from_frames

                times = latent_times_from_frames(tw.latent_spans, frame_times, duration)
                offsets = latent_code_offsets(times, codes.shape[1])

            meta = _make_meta(config, info, source, width, height, n_frames, duration, codes, n_samples)
            meta.clip["pts_origin"] = pts_origin
            meta.weights = _weights_used(models)
            _check_cancel(cancel)
            progress("write tokens", 0, 1)
            tw.finish(meta, frame_pts, codes, offsets)

        # ---------------- audio decode + score ----------------
        audio_report = None
        if codes is not None:
            with clock("audio decode"):
                audio_report = _decode_audio(models.dac, codes, n_samples, audio_out, audio_in, progress,
                                             cancel, score=config.metrics)
        # ---------------- mux ----------------
        progress("mux", 0, 1)
        _check_cancel(cancel)
        with clock("mux"):
            media.mux(visual_path, audio_out, video_path)
        progress("mux", 1, 1)

        # ---------------- report ----------------
        tf = load_tokens(tokens_path, visual=False)
        from .readouts import token_readouts

        report: dict[str, Any] = {
            "tool": f"avtok-ui {__version__}",
            "created": meta.created,
            "source": info.to_dict() | {"path": str(source)},
            "evaluated": {"width": width, "height": height, "n_frames": n_frames, "duration_s": duration,
                          "start_s": config.start_s, "resized": size is not None},
            "setting": config.setting.name,
            "config": _config_dict(config),
            "device": str(cosmos.device),
            "dtype": str(cosmos.dtype).replace("torch.", ""),
            # a trimmed run is compared with the source bytes pro-rated to the evaluated span
            "readouts": token_readouts(tf, tokens_path.stat().st_size,
                                       int(info.file_size * min(1.0, duration / info.duration_s))
                                       if info.duration_s else info.file_size, duration, width, height),
        }
        if vmetrics is not None:
            with clock("metrics"):
                report["video_metrics"] = vmetrics.summary()
                report["per_frame"] = vmetrics.per_frame()
        if audio_report is not None:
            report["audio_metrics"] = audio_report
        timings = dict(clock.seconds)
        timings["model_calls"] = sum(timings.get(k, 0.0) for k in
                                     ("visual encode", "visual decode", "audio encode", "audio decode"))
        timings["total"] = time.perf_counter() - t_start
        report["timings_s"] = timings
        result = RunResult(
            tokens=tokens_dir / names["tokens"],
            video=recon_dir / names["video"],
            visual_video=recon_dir / names["visual_video"],
            audio_wav=recon_dir / names["audio_wav"] if do_audio else None,
            metrics_json=tokens_dir / names["metrics"] if config.metrics else None,
            extracted_wav=extract_final,
            report=report,
        )
        report["outputs"] = result.paths()
        if metrics_path is not None:
            metrics_path.write_text(json.dumps(json_safe(report), indent=1))
        stage.commit()
        progress("done", 1, 1)
        return result
    except BaseException:
        stage.abort()
        raise


def _video_duration(frame_times: np.ndarray, info: media.VideoInfo, clip_duration: float) -> float:
    """Duration of the decoded frames: last timestamp + one frame at the base rate (bounded by the clip)."""
    if len(frame_times) == 0:
        return 0.0
    frame = 1.0 / float(info.fps) if info.fps else 0.0
    end = float(frame_times[-1]) + frame
    if clip_duration and abs(end - clip_duration) < frame:
        return clip_duration
    return end


def _make_meta(config: RunConfig, info: media.VideoInfo, source: Path, width: int, height: int, n_frames: int,
               duration: float, codes: np.ndarray | None, n_samples: int) -> TokenMeta:
    s = config.setting
    ph, pw = s.padded_size(height, width)
    audio = None
    if codes is not None:
        audio = {
            "codec": "descript-audio-codec 44khz 8kbps 0.0.1",
            "sample_rate": DAC_SAMPLE_RATE, "hop": DAC_HOP, "codebooks": int(codes.shape[0]),
            "codebook_size": 1024, "n_code_frames": int(codes.shape[1]), "n_samples": int(n_samples),
            "channels": 1, "downmix": "mean of the source channels (DAC 44 kHz is a mono codec)",
            "source_sample_rate": info.audio.sample_rate if info.audio else None,
            "source_channels": info.audio.channels if info.audio else None,
        }
    return TokenMeta(
        setting=s.name,
        tokenizer=s.hub_id,
        source={
            "file": source.name, "width": info.width, "height": info.height, "fps": _frac(info.fps),
            "avg_fps": _frac(info.avg_fps), "time_base": _frac(info.time_base), "n_frames": info.n_frames,
            "duration_s": info.duration_s, "rotation": info.rotation, "start_s": info.start_s,
            "pix_fmt": info.pix_fmt, "codec": info.codec, "file_size": info.file_size,
        },
        window=config.window,
        latent_shape=[],
        padding={
            "height": height, "width": width, "padded_height": ph, "padded_width": pw,
            "spatial": "replicate bottom/right to a multiple of the spatial factor, cropped after decoding",
            "temporal": "each window edge-padded (last frame repeated) to 1+tf*k frames, cropped after decoding",
        },
        clip={"start_s": config.start_s, "requested_duration_s": config.duration_s, "duration_s": duration,
              "n_frames": n_frames, "width": width, "height": height,
              "resized": (width, height) != (info.width, info.height)},
        audio=audio,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _file_id(path: Any) -> dict[str, Any] | None:
    """Which weight file was used: path, size and the first 16 hex digits of its SHA-256."""
    if path is None or not Path(path).is_file():
        return None
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"path": str(path), "bytes": Path(path).stat().st_size, "sha256_16": h.hexdigest()[:16]}


def _weights_used(models: Models) -> dict[str, Any]:
    c = models.cosmos
    out = {"encoder": _file_id(getattr(c, "encoder_path", None)),
           "decoder": _file_id(getattr(c, "decoder_path", None))}
    if hasattr(c, "describe"):  # a diffusers VAE: backend, class, config hash + its two files
        out = {"backend": c.describe(), **{k: _file_id(v) for k, v in c.weight_paths().items()}}
    if models.dac is not None:
        out["dac"] = _file_id(getattr(models.dac, "weights_path", None))
    return out


def _frac(x: Fraction | float | None) -> str | None:
    if x is None:
        return None
    x = Fraction(x).limit_denominator(1_000_000)
    return f"{x.numerator}/{x.denominator}"


def _config_dict(config: RunConfig) -> dict[str, Any]:
    d = asdict(config)
    d["setting"] = config.setting.name
    return d


def _decode_audio(dac: Any, codes: np.ndarray, n_samples: int, out_wav: Path, ref_wav: Path | None,
                  progress: ProgressFn, cancel: threading.Event | None, *, score: bool) -> dict[str, Any] | None:
    """Decode codes to ``out_wav`` (streaming) and, if ``score``, compare with ``ref_wav`` chunk by chunk."""
    scorer = AudioMetrics(DAC_SAMPLE_RATE, "DAC input (mono 44.1 kHz) vs DAC output, before AAC") if (
        score and ref_wav is not None) else None
    ref_iter = _wav_chunks(ref_wav) if scorer else None
    ref_buf = np.zeros(0, dtype=np.float32)
    done = 0
    with media.WavWriter(out_wav, DAC_SAMPLE_RATE, 1) as wav:
        for piece in dac.decode_stream(codes, n_samples):
            _check_cancel(cancel)
            piece = np.asarray(piece, dtype=np.float32).reshape(-1)
            wav.write(piece[None])
            done += len(piece)
            progress("audio decode", done, n_samples)
            if scorer is not None:
                while len(ref_buf) < len(piece):
                    nxt = next(ref_iter, None)
                    if nxt is None:
                        break
                    ref_buf = np.concatenate([ref_buf, nxt[0]])
                k = min(len(piece), len(ref_buf))
                scorer.update(ref_buf[:k], piece[:k])
                ref_buf = ref_buf[k:]
    return scorer.summary() if scorer else None


# ----------------------------------------------------------------------------------------------------
# reconstruct from a token file alone
# ----------------------------------------------------------------------------------------------------
def reconstruct(
    tokens_path: str | Path,
    out_dir: str | Path,
    nickname: str | None = None,
    *,
    models: Models | None = None,
    config: RunConfig | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Rebuild the video (and audio) from a token file alone; writes the three reconstruction files."""
    progress = progress or (lambda stage, done, total: None)
    tf: TokenFile = load_tokens(tokens_path, visual=False)
    setting = tf.setting
    nickname = _check_nickname(nickname or Path(tokens_path).name.removesuffix(".safetensors"))
    has_audio = tf.audio_codes is not None and tf.meta.audio is not None
    if config is None:
        config = RunConfig(setting=setting, window=tf.meta.window,
                           codebooks=int(tf.audio_codes.shape[0]) if has_audio else 0, metrics=False)
    if models is None:
        models = load_models(config, need_audio=has_audio)
    src = tf.meta.source
    width, height = int(tf.meta.padding["width"]), int(tf.meta.padding["height"])
    fps = Fraction(src["fps"])
    time_base = Fraction(src["time_base"])
    names = output_names(nickname)
    out_dir = Path(out_dir)
    stage = _Staging()
    try:
        visual_path = stage.path_for(out_dir / names["visual_video"])
        video_path = stage.path_for(out_dir / names["video"])
        audio_out = stage.path_for(out_dir / names["audio_wav"]) if has_audio else None
        if audio_out is None:
            stage.replaces(out_dir / names["audio_wav"])
        pts = tf.frame_pts.numpy()
        n_windows = len(tf.window_frames)
        pos = 0
        with media.VideoWriter(visual_path, width, height, fps, time_base, crf=config.crf,
                               pts_origin=tf.meta.clip.get("pts_origin")) as vw:
            for i, (n, tokens) in enumerate(iter_visual_windows(tf)):
                _check_cancel(cancel)
                progress("visual decode", i, n_windows)
                recon = models.cosmos.decode_window(tokens, n, height, width)
                vw.write(recon, pts[pos:pos + n])
                pos += n
                del recon
                _trim_heap()
        if has_audio:
            codes = tf.audio_codes.to(torch.int64).numpy()
            _decode_audio(models.dac, codes, int(tf.meta.audio["n_samples"]), audio_out, None, progress, cancel,
                          score=False)
        progress("mux", 0, 1)
        media.mux(visual_path, audio_out, video_path)
        stage.commit()
        progress("done", 1, 1)
    except BaseException:
        stage.abort()
        raise
    return RunResult(tokens=Path(tokens_path), video=out_dir / names["video"],
                     visual_video=out_dir / names["visual_video"],
                     audio_wav=out_dir / names["audio_wav"] if has_audio else None,
                     metrics_json=None, extracted_wav=None, report={})
