"""One run of the engine: video -> tokens -> reconstruction (+ metrics), as overlapped stages.

The graph (each box is a small unit in ``avtok_ui/engine/``; each arrow a bounded queue, so memory stays flat)::

    source + prepare threads      foreground (model)                 sink threads
    media.iter_windows ──windows──► VisualCoder.encode ──tokens──► token_stage: TokenFileWriter ──► <nick>.safetensors
      + VisualCoder.prepare          └► VisualCoder.decode ──decoded──► uint8_stage ──► writer_stage (x264/NVENC)
        (uint8 -> model input)                                           └──pairs──► metrics_stage (PSNR/SSIM/LPIPS)
    audio thread: media.read_audio ─► DAC encode (chunks) ─► codes ─► DAC decode ─► WAV + audio scores
    after all stages: alignment (latents <-> code frames), token file, mux(video, wav) ─► <nick>_reconstructed.mp4

* ``stages.source_stage`` decodes frames (PyAV) and ``stages.prepare_stage`` converts them to the model's
  input, each in its own thread, ahead of the model (on CUDA it only pins them; the conversion is device work).
* ``stages.VisualCoder`` makes the model calls: encode, and (unless tokens-only) decode the *stored* tokens,
  so the reconstruction shows exactly what the token file keeps. Several windows per call with
  ``RunConfig.windows_per_call``. ``stages.token_stage`` appends each window's tokens to the token file in
  its own thread (the host copy and the write never hold up the next model call).
* ``stages.uint8_stage`` converts decoded windows to uint8 frames; ``stages.writer_stage`` encodes the
  reconstruction mp4 (each its own thread, so the conversion overlaps x264); ``stages.metrics_stage`` scores
  them; ``stages.audio_stage`` runs DAC in its own thread. Stage threads carry OS names (``avtok-<stage>``,
  seen in ``top -H``).
* ``flow.Flow`` joins them: the first error, Ctrl-C or the app's Cancel stops every stage promptly.
* ``outputs.Staging``: every output is written in a hidden staging folder next to its destination and renamed
  into place only when the whole run succeeded; any failure removes it (outputs are atomic).

The tokens-only path (:func:`tokenize` with ``tokens_only=True``) is the same graph without the decoder call,
the reconstruction encoder, metrics and audio decoding.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, media
from .engine.flow import Flow, check_cancel
from .engine.heap import trim_after_window
from .engine.outputs import Staging
from .engine.report import AudioScores, Readouts, RunReport, Timings, VideoScores
from .engine.stages import (
    AudioOutcome,
    Clock,
    VisualCoder,
    WindowItem,
    audio_stage,
    decode_audio,
    locked_progress,
    metrics_stage,
    prepare_stage,
    recon_stages,
    source_stage,
    token_stage,
)
from .errors import AvtokError
from .metrics import json_safe
from .settings import (
    DAC_CODEBOOKS,
    DAC_HOP,
    DAC_SAMPLE_RATE,
    DEFAULT_PRESET,
    DEFAULT_WINDOW,
    X264_PRESETS,
    VisualSetting,
)
from .tokens import (
    TokenFile,
    TokenFileWriter,
    TokenMeta,
    iter_visual_windows,
    load_tokens,
    model_to_stored,
    stored_to_model,
)

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
    preset: str = DEFAULT_PRESET  # x264 preset of the reconstructions (speed vs size; see benchmarks/README.md)
    tokens_only: bool = False  # write the token file alone: no decoder call, no reconstruction, no metrics
    windows_per_call: int = 1  # temporal windows batched into one model call (1 = bit-identical to one by one)

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
        if self.preset not in X264_PRESETS:
            raise AvtokError(f"preset must be one of {', '.join(X264_PRESETS)}, got {self.preset!r}")
        if not 1 <= self.windows_per_call <= 64:
            raise AvtokError(f"windows per call must be between 1 and 64, got {self.windows_per_call}")


    @classmethod
    def from_values(cls, setting: Any, **values: Any) -> RunConfig:
        """The one validated configuration from loosely typed user values (the app's controls and API
        parameters arrive as strings or floats): ``setting`` is any setting name (case-insensitive) or object;
        ``window``/``codebooks``/``max_side`` whole numbers (``max_side`` None/""/0 = native);
        ``duration_s`` None/""/0 = to the end; ``lpips`` any case. Every other field as in the dataclass.
        One-line :class:`AvtokError` for a bad value, exactly as the CLI reports it."""
        from .backends.registry import parse_setting

        v = dict(values)
        for name, what in (("window", "window"), ("codebooks", "codebooks"), ("windows_per_call", "windows per call")):
            if name in v:
                v[name] = as_whole(v[name], what)
        if "max_side" in v:
            v["max_side"] = as_whole(v["max_side"], "max side") if _positive(v["max_side"]) else None
        if "duration_s" in v:
            v["duration_s"] = float(v["duration_s"]) if _positive(v["duration_s"]) else None
        if "start_s" in v:
            v["start_s"] = _number(v["start_s"] or 0.0, "trim start")
        if "lpips" in v:
            v["lpips"] = str(v["lpips"] or "auto").strip().lower()
        if v.get("device") is not None:
            v["device"] = str(v["device"]).strip().lower() or None
        return cls(setting=parse_setting(setting), **v)


def _number(value: Any, what: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise AvtokError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise AvtokError(f"{what} must be a finite number, got {value!r}")
    return f


def as_whole(value: Any, what: str) -> int:
    """``value`` (int, float or text) as an int, or a one-line error naming ``what``."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise AvtokError(f"{what} must be a whole number, got {value!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise AvtokError(f"{what} must be a whole number, got {value!r}")
    return int(f)


def _positive(value: Any) -> bool:
    """True for a value that means "set" (not None, "", 0 or negative)."""
    if value in (None, ""):
        return False
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return True  # let the converter report it


@dataclass
class RunResult:
    """Paths of what a run wrote, plus its report (also saved as ``<nick>_metrics.json``)."""

    tokens: Path
    video: Path | None  # None on the tokens-only path
    visual_video: Path | None
    audio_wav: Path | None
    metrics_json: Path | None
    extracted_wav: Path | None
    report: dict[str, Any] = field(default_factory=dict)  # the JSON form of ``run_report``
    run_report: RunReport | None = None  # typed (None for ``reconstruct``)

    def paths(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)
                if f.name not in ("report", "run_report") and getattr(self, f.name) is not None}


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
    from .checkpoints import require_weights

    require_weights(config.setting, config.checkpoint_dir, config.dac_weights,  # all missing pieces at once
                    need_dac=need_audio and config.codebooks > 0, allow_download=config.allow_download)

    cosmos = load_tokenizer(
        config.setting, config.checkpoint_dir, device=config.device, dtype=config.dtype,
        allow_download=config.allow_download,
    )
    codec = None
    if need_audio and config.codebooks > 0:
        from .audio import DacCodec

        codec = DacCodec.from_pretrained(config.dac_weights, device=cosmos.device,
                                         allow_download=config.allow_download)
    if config.metrics and config.lpips != "off":  # the LPIPS trunk: fetched when downloads are allowed
        from .lpips_net import fetch_backbone

        fetch_backbone(lpips_net(config.lpips, cosmos.device), allow_download=config.allow_download)
    return Models(cosmos=cosmos, dac=codec)


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------
def lpips_net(choice: str, device: Any) -> str:
    """Resolve ``auto``: the TokenBench VGG on a GPU, AlexNet on a CPU (VGG LPIPS measured ~36 s per
    720p frame on this project's 2-core CPU box, AlexNet ~1.3 s). The report always names the net."""
    if choice not in ("auto", "vgg", "alex", "off"):
        raise AvtokError(f"lpips must be auto, vgg, alex or off, got {choice!r}")
    if choice in ("vgg", "alex"):
        return choice
    return "vgg" if str(device).startswith("cuda") else "alex"


@dataclass(frozen=True)
class ClipSpan:
    """The part of a source a run covers: its duration (s) and an estimate of its frame count."""

    duration_s: float
    frames_estimate: int


def clip_span(info: media.VideoInfo, start_s: float, duration_s: float | None, name: str) -> ClipSpan:
    """Duration and estimated frame count of the trim ``[start_s, start_s + duration_s)`` of a source
    (``duration_s`` None or 0: to the end). A start past the end is a one-line error naming ``name``."""
    avail = max(0.0, info.duration_s - start_s)
    if start_s > 0 and avail <= 0:
        raise AvtokError(f"{name}: trim start {start_s:.2f}s is past the end ({info.duration_s:.2f}s)")
    clip = min(avail, duration_s) if duration_s else avail
    frames = max(1, round(clip * float(info.avg_fps or info.fps))) if clip else max(1, info.n_frames)
    return ClipSpan(clip, frames)


def capped_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """Size ``(W, H)`` with the longest side at most ``max_side`` (aspect kept, even), or None if no cap."""
    if max_side is None or max(width, height) <= max_side:
        return None
    scale = max_side / max(width, height)
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


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
    recon_dir: str | Path | None,
    nickname: str,
    config: RunConfig,
    *,
    models: Models | None = None,
    extracted_wav: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    tokens_only: bool | None = None,
) -> RunResult:
    """Tokenize ``source`` and write tokens, reconstructions and a metrics report.

    Writes ``<tokens_dir>/<nick>.safetensors`` and ``<nick>_metrics.json``, and into ``recon_dir``
    ``<nick>_reconstructed.mp4`` (H.264 + AAC), ``<nick>_reconstructed_visual.mp4`` and
    ``<nick>_reconstructed_audio.wav``. ``extracted_wav``: also keep the DAC input audio there (the seed
    tool wrote ``<stem>_audio.wav`` beside the source). All-or-nothing.

    ``tokens_only`` (default ``config.tokens_only``): write the token file alone -- no decoder call, no
    reconstruction, no metrics, no extracted WAV (``recon_dir`` may be None). For preparing training data.
    """
    _check_nickname(nickname)
    if tokens_only is None:
        tokens_only = config.tokens_only
    progress = locked_progress(progress)
    t_start = time.perf_counter()
    clock = Clock()
    source = Path(source)
    progress("probe", 0, 1)
    info = media.probe(source)
    span = clip_span(info, config.start_s, config.duration_s, source.name)
    size = capped_size(info.width, info.height, config.max_side)
    width, height = size or (info.width, info.height)
    do_audio = info.audio is not None and config.codebooks > 0
    if models is None:
        with clock("load models"):
            models = load_models(config, need_audio=do_audio)
    cosmos = models.cosmos
    if do_audio and models.dac is None:
        raise AvtokError("audio tokens requested but no DAC model was loaded")
    if not tokens_only and recon_dir is None:
        raise AvtokError("a reconstruction folder is needed (or use tokens_only)")

    names = output_names(nickname)
    tokens_dir = Path(tokens_dir)
    recon_dir = Path(recon_dir) if recon_dir is not None else None
    do_metrics = config.metrics and not tokens_only
    stage = Staging()
    try:
        tokens_path = stage.path_for(tokens_dir / names["tokens"])
        metrics_path = stage.path_for(tokens_dir / names["metrics"]) if do_metrics else None
        if metrics_path is None:
            stage.replaces(tokens_dir / names["metrics"])
        visual_path = video_path = audio_out = audio_in = extract_final = None
        if not tokens_only:
            visual_path = stage.path_for(recon_dir / names["visual_video"])
            video_path = stage.path_for(recon_dir / names["video"])
            audio_out = stage.path_for(recon_dir / names["audio_wav"]) if do_audio else None
            if audio_out is None:
                stage.replaces(recon_dir / names["audio_wav"])
            extract_final = Path(extracted_wav) if (extracted_wav and do_audio) else None
            # the DAC input is kept (staged) for audio metrics even when the user did not ask for it
            if extract_final is not None:
                audio_in = stage.path_for(extract_final)
            elif do_audio and do_metrics:
                audio_in = stage.scratch(tokens_dir, "dac_input.wav")

        coder = VisualCoder(cosmos, height, width, clock)
        vmetrics = None
        if do_metrics:
            from .metrics import VideoMetrics

            vmetrics = VideoMetrics(lpips=None if config.lpips == "off" else "auto",
                                    lpips_net=lpips_net(config.lpips, cosmos.device), device=cosmos.device)
            if size is not None:
                vmetrics.resolution_note = (f"source {info.width}x{info.height} resized to {width}x{height} "
                                            "before tokenizing (resolution cap); scored at that size")
        # pts origin = the audio's sample 0 (start of the clip), so a trim keeps its sub-frame A/V offset
        pts_origin = int(round((info.start_s + config.start_s) / info.time_base))
        audio = AudioOutcome()
        sink: dict[str, Any] = {}
        pts_all: list[np.ndarray] = []
        times_all: list[np.ndarray] = []
        n_windows_est = max(1, math.ceil(span.frames_estimate / config.window))
        with TokenFileWriter(tokens_path, config.setting) as tw:
            with Flow(cancel) as flow:
                # ---- audio: its own thread, overlapping everything visual ----
                if do_audio:
                    chunks = media.read_audio(source, info=info, sample_rate=DAC_SAMPLE_RATE, mono=True,
                                              start_s=config.start_s, duration_s=span.duration_s)
                    flow.start("audio", audio_stage, flow, models.dac, chunks, config.codebooks,
                               int(round(span.duration_s * DAC_SAMPLE_RATE)), audio_in, audio_out, progress,
                               clock, audio, score=do_metrics)
                # ---- source: decode + prepare windows ahead of the model ----
                decoded_ch = flow.channel(2, "frames")
                windows_ch = flow.channel(2, "windows")
                windows = media.iter_windows(source, config.window, info=info, start_s=config.start_s,
                                             duration_s=config.duration_s, size=size)
                flow.start("source", source_stage, decoded_ch, windows, clock)
                flow.start("prepare", prepare_stage, decoded_ch, windows_ch, coder.prepare, clock)
                # ---- sinks: reconstruction encoder, metrics ----
                recon_ch = None
                if not tokens_only:
                    recon_ch = flow.channel(1, "decoded")
                    metrics_ch = flow.channel(2, "pairs") if vmetrics is not None else None
                    writer_args = dict(path=visual_path, width=width, height=height, fps=info.fps,
                                       time_base=info.time_base, crf=config.crf, pts_origin=pts_origin,
                                       **_writer_options(config, cosmos.device))
                    recon_stages(flow, recon_ch, writer_args, metrics_ch, clock, sink)
                    if metrics_ch is not None:
                        flow.start("metrics", metrics_stage, metrics_ch, vmetrics, clock)
                tokens_ch = flow.channel(4, "tokens")
                flow.start("tokens", token_stage, tokens_ch, tw, clock)
                # ---- the tokenizer (this thread): model calls only ----
                for batch in _batches(windows_ch, config.windows_per_call):
                    check_cancel(cancel)
                    progress("visual", batch[0].index, max(n_windows_est, batch[-1].index + 1))
                    tokens = coder.encode(batch)
                    # the reconstruction decodes what the token file keeps (the stored form), made once here
                    stored = [model_to_stored(t, config.setting) if recon_ch is not None else None for t in tokens]
                    for t, st, it in zip(tokens, stored, batch, strict=True):
                        tokens_ch.put((t, st, len(it.frames)))
                        it.x = None
                        pts_all.append(it.pts)
                        times_all.append(it.times - config.start_s)  # clip time: 0 = audio sample 0
                    if recon_ch is not None:
                        model_tokens = [stored_to_model(st, config.setting) for st in stored]
                        videos = coder.decode(model_tokens, [len(it.frames) for it in batch])
                        for it, v in zip(batch, videos, strict=True):
                            it.video = v
                            recon_ch.put(it)
                        del videos, model_tokens
                    del tokens, stored, batch
                tokens_ch.close()
                if recon_ch is not None:
                    recon_ch.close()
                progress("visual", 1, 1)
                flow.join()
            if not pts_all:
                raise AvtokError(f"{source.name}: no video frames in the requested span")
            frame_pts = np.concatenate(pts_all)
            frame_times = np.concatenate(times_all)
            n_frames = len(frame_pts)
            duration = _video_duration(frame_times, info, span.duration_s)
            codes = audio.codes
            offsets = None
            if codes is not None:
                from .audio import latent_code_offsets, latent_times_from_frames

                times = latent_times_from_frames(tw.latent_spans, frame_times, duration)
                offsets = latent_code_offsets(times, codes.shape[1])
            meta = _make_meta(config, info, source, width, height, n_frames, duration, codes, audio.n_samples)
            meta.clip["pts_origin"] = pts_origin
            meta.weights = _weights_used(models)
            check_cancel(cancel)
            progress("write tokens", 0, 1)
            with clock("write tokens"):
                tw.finish(meta, frame_pts, codes, offsets)

        # ---------------- mux ----------------
        if not tokens_only:
            progress("mux", 0, 1)
            check_cancel(cancel)
            with clock("mux"):
                media.mux(visual_path, audio_out, video_path)
            progress("mux", 1, 1)

        # ---------------- report ----------------
        tf = load_tokens(tokens_path, visual=False)
        from .readouts import token_readouts

        rr = RunReport(
            tool=f"avtok-ui {__version__}",
            created=meta.created,
            source=info.to_dict() | {"path": str(source)},
            evaluated={"width": width, "height": height, "n_frames": n_frames, "duration_s": duration,
                       "start_s": config.start_s, "resized": size is not None},
            setting=config.setting.name,
            config=_config_dict(config) | {"tokens_only": tokens_only},
            device=str(cosmos.device),
            dtype=str(cosmos.dtype).replace("torch.", ""),
            # a trimmed run is compared with the source bytes pro-rated to the evaluated span
            readouts=Readouts.from_dict(token_readouts(
                tf, tokens_path.stat().st_size,
                int(info.file_size * min(1.0, duration / info.duration_s)) if info.duration_s else info.file_size,
                duration, width, height)),
            video_encoder=sink.get("encoder"),
            windowing=(f"independent temporal windows of {config.window} source frames, causality restarting in "
                       "each (a window's first latent covers its first frame alone); no cache is carried across "
                       f"windows; {config.windows_per_call} window(s) per model call"),
            audio_metrics=AudioScores.from_dict(audio.report),
        )
        if vmetrics is not None:
            with clock("metrics"):
                rr.video_metrics = VideoScores.from_dict(vmetrics.summary())
                rr.per_frame = vmetrics.per_frame()
        rr.timings = _timings(clock, t_start)
        result = RunResult(
            tokens=tokens_dir / names["tokens"],
            video=None if tokens_only else recon_dir / names["video"],
            visual_video=None if tokens_only else recon_dir / names["visual_video"],
            audio_wav=recon_dir / names["audio_wav"] if (do_audio and not tokens_only) else None,
            metrics_json=tokens_dir / names["metrics"] if do_metrics else None,
            extracted_wav=extract_final,
            run_report=rr,
        )
        rr.outputs = result.paths()
        result.report = report = rr.to_dict()
        if metrics_path is not None:
            metrics_path.write_text(json.dumps(json_safe(report), indent=1))
        stage.commit()
        progress("done", 1, 1)
        return result
    except BaseException:
        stage.abort()
        raise


def _batches(windows: Iterable[WindowItem], per_call: int) -> Iterator[list[WindowItem]]:
    """Group consecutive windows of equal length, at most ``per_call`` per model call."""
    batch: list[WindowItem] = []
    for it in windows:
        if batch and (len(batch) >= per_call or len(it.frames) != len(batch[0].frames)):
            yield batch
            batch = []
        batch.append(it)
    if batch:
        yield batch


def _writer_options(config: RunConfig, device: Any) -> dict[str, Any]:
    """Reconstruction encoder options: the x264 preset, and NVENC on CUDA (the writer falls back to libx264
    when NVENC cannot open or encode; the report records which ran)."""
    return {"preset": config.preset, "encoder": "auto" if str(device).startswith("cuda") else "libx264"}


def _timings(clock: Clock, t_start: float) -> Timings:
    """Busy seconds per stage, seconds in model calls, total, and the wall time after the first model call."""
    stages = dict(clock.seconds)
    end = time.perf_counter()
    return Timings(
        stages=stages,
        model_calls=sum(stages.get(k, 0.0) for k in ("visual encode", "visual decode", "audio encode",
                                                      "audio decode")),
        total=end - t_start,
        after_first_model_call=None if clock.first_model_call is None else end - clock.first_model_call,
    )


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
    """``"num/den"`` of a rate or time base (denominator at most 10^6), None kept."""
    if x is None:
        return None
    x = Fraction(x).limit_denominator(1_000_000)
    return f"{x.numerator}/{x.denominator}"


def _config_dict(config: RunConfig) -> dict[str, Any]:
    d = asdict(config)
    d["setting"] = config.setting.name
    return d


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
    """Rebuild the video (and audio) from a token file alone; writes the three reconstruction files.

    Stages: token windows -> decoder (this thread) -> uint8 + encoder (thread); DAC decode (thread)."""
    progress = locked_progress(progress)
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
    names = output_names(nickname)
    out_dir = Path(out_dir)
    clock = Clock()
    coder = VisualCoder(models.cosmos, height, width, clock)
    stage = Staging()
    try:
        visual_path = stage.path_for(out_dir / names["visual_video"])
        video_path = stage.path_for(out_dir / names["video"])
        audio_out = stage.path_for(out_dir / names["audio_wav"]) if has_audio else None
        if audio_out is None:
            stage.replaces(out_dir / names["audio_wav"])
        pts = tf.frame_pts.numpy()
        n_windows = len(tf.window_frames)
        sink: dict[str, Any] = {}
        with Flow(cancel) as flow:
            if has_audio:
                codes = tf.audio_codes.to(torch.int64).numpy()
                flow.start("audio", _decode_only, flow, models.dac, codes, int(tf.meta.audio["n_samples"]),
                           audio_out, progress, clock)
            recon_ch = flow.channel(1, "decoded")
            writer_args = dict(path=visual_path, width=width, height=height, fps=Fraction(src["fps"]),
                               time_base=Fraction(src["time_base"]), crf=config.crf,
                               pts_origin=tf.meta.clip.get("pts_origin"),
                               **_writer_options(config, models.cosmos.device))
            recon_stages(flow, recon_ch, writer_args, None, clock, sink)
            pos = 0
            for i, (n, tokens) in enumerate(iter_visual_windows(tf)):
                check_cancel(cancel)
                progress("visual decode", i, n_windows)
                item = WindowItem(i, np.empty((n, 0, 0, 3), np.uint8), pts[pos:pos + n], np.zeros(0))
                item.video = coder.decode([tokens], [n])[0]
                recon_ch.put(item)
                pos += n
                del item, tokens
                trim_after_window(i)
            recon_ch.close()
            flow.join()
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
                     metrics_json=None, extracted_wav=None, report={"video_encoder": sink.get("encoder")})


def _decode_only(flow: Flow, dac: Any, codes: np.ndarray, n_samples: int, out_wav: Path, progress: ProgressFn,
                 clock: Clock) -> None:
    with clock("audio decode"):
        decode_audio(flow, dac, codes, n_samples, out_wav, None, progress, score=False)
