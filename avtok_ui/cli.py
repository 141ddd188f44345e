"""Command-line faces of the engine: ``avtok`` (subcommands) and the seed-compatible ``tokenize_video``.

Thin over :mod:`avtok_ui.pipeline`. Every user error prints one line ``error: ...`` on stderr and exits
non-zero, with no traceback (set ``AVTOK_DEBUG=1`` to see one) and no partial outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from . import __version__
from .backends.registry import all_setting_names, parse_setting
from .engine.heap import keep_heap
from .errors import AvtokError, Cancelled, one_line
from .settings import DAC_CODEBOOKS, DEFAULT_PRESET, DEFAULT_WINDOW, X264_PRESETS, VisualSetting

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Progress:
    """A tqdm bar per stage on stderr (silent when ``quiet``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._bar: Any = None
        self._stage: str | None = None
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: float, total: float) -> None:
        if self.quiet or stage in ("probe", "done"):
            return
        from tqdm import tqdm

        with self._lock:
            if stage != self._stage:
                self.close()
                self._stage = stage
                unit = "sample" if stage.startswith("audio") else ("window" if stage.startswith("visual") else "step")
                self._bar = tqdm(total=total or None, desc=f"{stage:>13}", unit=unit, unit_scale=unit == "sample",
                                 file=sys.stderr, leave=False, dynamic_ncols=True,
                                 disable=None)  # None: no bars when stderr is not a terminal (logs, CI)
            if total and self._bar.total != total:
                self._bar.total = total
            self._bar.n = done
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _add_run_options(p: argparse.ArgumentParser, *, setting: bool = True) -> None:
    if setting:
        p.add_argument("--setting", "-s", default="DV8x16x16", metavar="NAME",
                       help=f"tokenizer setting (case-insensitive), one of {', '.join(all_setting_names())} "
                            "(default DV8x16x16; see `avtok settings`)")
        p.add_argument("--window", "-w", type=int, default=DEFAULT_WINDOW, metavar="FRAMES",
                       help=f"temporal window in source frames, 1+tf*k (default {DEFAULT_WINDOW}; "
                            "longer = fewer tokens, more memory)")
        p.add_argument("--codebooks", type=int, default=DAC_CODEBOOKS, metavar="N",
                       help="DAC codebooks 1-9 (default 9); 0 = no audio tokens")
        p.add_argument("--no-audio", action="store_true", help="video tokens only (same as --codebooks 0)")
        p.add_argument("--start", type=float, default=0.0, metavar="SEC", help="trim: start time in seconds")
        p.add_argument("--duration", type=float, default=None, metavar="SEC", help="trim: duration in seconds")
        p.add_argument("--max-side", type=int, default=None, metavar="PX",
                       help="resolution cap: scale so the longest side is at most PX")
        p.add_argument("--no-metrics", action="store_true", help="skip PSNR/SSIM/LPIPS and audio metrics")
        p.add_argument("--tokens-only", action="store_true",
                       help="write the token file alone: no decoder, no reconstruction, no metrics (training data)")
        p.add_argument("--lpips", choices=["auto", "vgg", "alex", "off"], default="auto",
                       help="LPIPS backbone (default auto: VGG on GPU as TokenBench, AlexNet on CPU for speed)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32", "fp16"],
                   help="model dtype (default auto = the checkpoint's own; the published files are bf16-only)")
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="Cosmos checkpoint folder (or a parent of Cosmos-0.1-Tokenizer-*/); default $AVTOK_CHECKPOINTS")
    p.add_argument("--dac-weights", default=None, metavar="PATH",
                   help="DAC weights file (default $AVTOK_CHECKPOINTS/dac/weights_44khz_8kbps_0.0.1.pth)")
    p.add_argument("--offline", action="store_true", help="never download weights")
    p.add_argument("--crf", type=int, default=18, help="H.264 CRF of the reconstructions (default 18)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=X264_PRESETS, metavar="NAME",
                   help=f"x264 preset of the reconstructions (default {DEFAULT_PRESET}; "
                        "slower = smaller files, same quality)")
    p.add_argument("--windows-per-call", type=int, default=1, metavar="N",
                   help="temporal windows per model call (default 1: tokens identical to one by one; "
                        "more can be faster on a GPU, bf16 results may differ slightly)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace, setting: VisualSetting | None = None):
    from .pipeline import RunConfig

    codebooks = 0 if getattr(args, "no_audio", False) else args.codebooks
    return RunConfig(
        setting=setting or parse_setting(args.setting),
        window=args.window, codebooks=codebooks, device=args.device, dtype=args.dtype,
        checkpoint_dir=args.checkpoints, dac_weights=args.dac_weights,
        allow_download=not args.offline and os.environ.get("HF_HUB_OFFLINE", "") in ("", "0"),
        start_s=args.start, duration_s=args.duration, max_side=args.max_side,
        metrics=not args.no_metrics, lpips=args.lpips, crf=args.crf, preset=args.preset,
        tokens_only=getattr(args, "tokens_only", False), windows_per_call=args.windows_per_call,
    )


def _print_result(result, *, quiet: bool = False) -> None:
    from .metrics import format_summary
    from .readouts import format_readouts

    r = result.report
    out = sys.stdout
    print(format_readouts(r["readouts"]), file=out)
    if "video_metrics" in r:
        print(format_summary(r["video_metrics"]), file=out)
    if "audio_metrics" in r:
        print(_audio_line(r["audio_metrics"]), file=out)
    t = r.get("timings_s", {})
    if t:
        print(f"time: {t['total']:.1f} s total, {t['model_calls']:.1f} s in model calls", file=out)
    for k, v in result.paths().items():
        print(f"{k:>13}: {v}", file=out)


def _audio_line(a: dict[str, Any]) -> str:
    """``audio: SI-SDR 12.34 dB, mel distance 0.567``; infinity spelled as the PSNR line spells it (∞)."""
    import math

    sdr, mel = a.get("si_sdr_db"), a.get("mel_distance")
    if sdr is None or math.isnan(sdr):
        sdr_text = "n/a"
    elif math.isinf(sdr):
        sdr_text = "∞ (identical)" if sdr > 0 else "-∞ dB"
    else:
        sdr_text = f"{sdr:.2f} dB"
    mel_text = "n/a" if mel is None or math.isnan(mel) else f"{mel:.3f}"
    return f"audio: SI-SDR {sdr_text}, mel distance {mel_text}"


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from .pipeline import tokenize

    src = Path(args.video)
    config = _config(args)
    nick = args.nickname or src.stem
    out = Path(args.out_dir)
    progress = _Progress(args.quiet)
    try:
        result = tokenize(src, Path(args.tokens_dir) if args.tokens_dir else out, out, nick, config,
                          progress=progress,
                          extracted_wav=(src.parent / f"{src.stem}_audio.wav") if args.extract_wav else None)
    finally:
        progress.close()
    _print_result(result)
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from .pipeline import RunConfig, reconstruct
    from .tokens import load_tokens

    tf = load_tokens(args.tokens, visual=False)
    config = RunConfig(setting=tf.setting, window=tf.meta.window,
                       codebooks=int(tf.audio_codes.shape[0]) if tf.audio_codes is not None else 0,
                       device=args.device, dtype=args.dtype, checkpoint_dir=args.checkpoints,
                       dac_weights=args.dac_weights, allow_download=not args.offline, metrics=False, crf=args.crf,
                       preset=args.preset, windows_per_call=args.windows_per_call)
    progress = _Progress(args.quiet)
    try:
        result = reconstruct(args.tokens, args.out_dir, args.nickname, config=config, progress=progress)
    finally:
        progress.close()
    for k, v in result.paths().items():
        print(f"{k:>13}: {v}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.suffix == ".safetensors":
        from .readouts import format_readouts, token_readouts
        from .tokens import load_tokens

        tf = load_tokens(path, visual=False)
        m = tf.meta
        dur = m.clip.get("duration_s") or m.source["duration_s"]
        src_bytes = m.source.get("file_size")
        if src_bytes and m.source.get("duration_s"):
            src_bytes = int(src_bytes * min(1.0, dur / m.source["duration_s"]))  # pro-rated like the run
        r = token_readouts(tf, path.stat().st_size, src_bytes, dur, m.padding["width"], m.padding["height"])
        if args.json:
            print(json.dumps({"valid": True, "meta": m.__dict__, "readouts": r}, indent=1, default=str))
        else:
            print(f"{path.name}: avtok token file, {m.setting} ({m.tokenizer}), window {m.window}, "
                  f"tool {m.tool_version}")
            print("  valid: schema, shapes, windows, offsets and value ranges checked")
            s = m.source
            c = m.clip
            print(f"  source {s['file']}: {s['width']}x{s['height']} @ {s['fps']} fps, {s['n_frames']} frames, "
                  f"{s['duration_s']:.3f} s")
            print(f"  tokenized: {c.get('n_frames', s['n_frames'])} frames, {dur:.3f} s from {c.get('start_s', 0):g} s "
                  f"at {m.padding['width']}x{m.padding['height']}")
            print(f"  visual tensor {m.latent_shape} "
                  f"{'uint16 ids' if tf.setting.discrete else 'bf16 latents (channels last)'}")
            b = m.backend
            if b.get("backend") == "diffusers":
                print(f"  backend: diffusers {b.get('class')} ({b.get('hub_id')}), config sha256 "
                      f"{b.get('config_sha256_16')}, {b.get('normalisation')}")
            if m.audio:
                a = m.audio
                print(f"  audio: DAC {a['codebooks']} codebooks x {a['n_code_frames']} code frames "
                      f"({a['sample_rate']} Hz, hop {a['hop']}); codes per latent: "
                      f"{_codes_per_latent_text(tf)}")
            print(format_readouts(r))
        return 0
    from . import media
    from .backends.registry import ALL_BACKEND_SETTINGS
    from .pipeline import capped_size
    from .readouts import estimate_tokens
    from .settings import SettingError

    info = media.probe(path)
    from .pipeline import clip_span

    clip = clip_span(info, args.start, args.duration, path.name)
    span = clip.duration_s
    n_frames = info.n_frames if span == info.duration_s else clip.frames_estimate
    w, h = capped_size(info.width, info.height, args.max_side) or (info.width, info.height)
    est = {}
    for s in ALL_BACKEND_SETTINGS:
        try:
            est[s.name] = estimate_tokens(s, n_frames, h, w, s.check_window(args.window),
                                          span, 0 if info.audio is None else DAC_CODEBOOKS)
        except SettingError:  # a window valid for tf=4 but not tf=8: that setting is left out
            continue
    if args.json:
        print(json.dumps({"video": info.to_dict(), "estimates": est}, indent=1, default=str))
        return 0
    a = info.audio
    print(f"{path.name}: {info.width}x{info.height} {info.codec} {info.pix_fmt}, {float(info.fps):.3f} fps "
          f"(avg {float(info.avg_fps):.3f}), {info.n_frames} frames{'' if info.frames_declared else ' (estimated)'}, "
          f"{info.duration_s:.3f} s" + (f", rotation {info.rotation}" if info.rotation else ""))
    print(f"  audio: {a.codec} {a.sample_rate} Hz, {a.channels} ch ({a.layout})" if a else "  audio: none")
    clip = "" if (w, h, span) == (info.width, info.height, info.duration_s) else (
        f" for {span:.2f} s at {w}x{h}, ~{n_frames} frames")
    print(f"  token estimates{clip} (window {args.window}, {DAC_CODEBOOKS if a else 0} DAC codebooks):")
    for name, e in est.items():
        g = e["latent_grid"]
        print(f"    {name:>18}: {g['t']} x {g['h']} x {g['w']} = {e['visual_tokens']:>10,} visual + "
              f"{e['audio_tokens']:>8,} audio = {e['total_tokens']:>10,} ({e['tokens_per_second']:,.0f}/s); "
              f"{e['latent_values_per_source_pixel']:.4f} values/px, {e['visual_bits_per_source_pixel']:.3f} bits/px")
    return 0


def _codes_per_latent_text(tf) -> str:
    if tf.audio_latent_offsets is None:
        return "n/a"
    import numpy as np

    from .readouts import codes_per_latent

    vals, counts = np.unique(codes_per_latent(tf.audio_latent_offsets.numpy()), return_counts=True)
    return ", ".join(f"{v} x{c}" for v, c in zip(vals.tolist(), counts.tolist(), strict=True))


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_videos

    progress = _Progress(args.quiet)
    try:
        report = compare_videos(args.original, args.reconstruction, lpips=args.lpips, device=args.device,
                                start_s=args.start, duration_s=args.duration, max_side=args.max_side,
                                progress=progress, allow_download=True)  # unless HF_HUB_OFFLINE is set
    finally:
        progress.close()
    from .metrics import format_summary

    print(format_summary(report["video_metrics"]))
    a = report.get("audio_metrics") or {}
    if a.get("available") is False:
        print(f"audio: not scored ({a.get('reason')})")
    elif a:
        print(_audio_line(a) + (f" ({a['note']})" if a.get("note") else ""))
    if args.json:
        from .metrics import json_safe

        Path(args.json).write_text(json.dumps(json_safe(report), indent=1))
        print(f"report: {args.json}")
    return 0


def _cmd_settings(args: argparse.Namespace) -> int:
    from .backends.registry import ALL_BACKEND_SETTINGS
    from .checkpoints import (
        COSMOS_FILES,
        DIFFUSERS_FILES,
        describe_weight_file,
        resolve_dac,
        resolve_visual,
    )
    from .errors import CheckpointError
    from .settings import DAC_WEIGHTS_NAME

    for s in ALL_BACKEND_SETTINGS:
        try:
            folder = resolve_visual(s, args.checkpoints, allow_download=False)
        except CheckpointError as e:
            print(f"{s.name:>18}  {s.hub_id:<40} missing: {e}")
            folder = None
        else:
            print(f"{s.name:>18}  {s.hub_id:<40} found")
        print(f"{'':>20}{s.family}, {s.latent_channels} values/token, licence: {s.licence} <{s.licence_url}>")
        if folder is not None:
            names = COSMOS_FILES if isinstance(s, VisualSetting) else DIFFUSERS_FILES
            for f in names:
                print(f"{'':>20}{describe_weight_file(folder / f, f'{s.name}/{f}')}")
    try:
        dac_file = resolve_dac(args.dac_weights, allow_download=False)
    except CheckpointError as e:
        print(f"{'DAC':>18}  {DAC_WEIGHTS_NAME:<40} missing: {e}")
    else:
        print(f"{'DAC':>18}  {DAC_WEIGHTS_NAME:<40} found")
        print(f"{'':>20}{describe_weight_file(dac_file, 'dac')}")
    return 0


class _CommandsFormatter(argparse.HelpFormatter):
    """argparse measures subcommand names without their extra indent, so a long one ("reconstruct") had
    its description pushed onto the next line; count that indent."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction) and action.choices:
            longest = max(len(name) for name in action.choices)
            self._action_max_length = max(self._action_max_length, longest + self._current_indent + 4)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avtok",
        description="Audio-visual tokens from .mp4 (NVIDIA Cosmos video tokenizer + Descript Audio Codec), "
                    "their reconstruction, and what they keep.",
        formatter_class=_CommandsFormatter,
    )
    p.add_argument("--version", action="version", version=f"avtok-ui {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("tokenize", help="video -> token file + reconstructions + metrics report")
    t.add_argument("video", help="source video (.mp4, .mov, .mkv, ...)")
    t.add_argument("--nickname", "-n", default=None, help="name stem of all outputs (default: the video's stem)")
    t.add_argument("--out-dir", "-o", default="avtok_out", help="reconstructions folder (default ./avtok_out)")
    t.add_argument("--tokens-dir", default=None, help="token file + metrics folder (default: --out-dir)")
    t.add_argument("--extract-wav", action="store_true",
                   help="also keep the DAC input audio as <stem>_audio.wav beside the video")
    _add_run_options(t)
    t.set_defaults(func=_cmd_tokenize)

    r = sub.add_parser("reconstruct", help="token file -> reconstructed video (+ audio)")
    r.add_argument("tokens", help="a .safetensors token file written by avtok")
    r.add_argument("--out-dir", "-o", default="avtok_out",
                   help="folder for <nick>_reconstructed{,_visual}.mp4 and _audio.wav (default ./avtok_out)")
    r.add_argument("--nickname", "-n", default=None, help="name stem of the outputs (default: the token file's)")
    _add_run_options(r, setting=False)
    r.set_defaults(func=_cmd_reconstruct)

    i = sub.add_parser("info", help="describe a video (with token estimates) or a token file")
    i.add_argument("file", help="a video, or a .safetensors token file")
    i.add_argument("--window", "-w", type=int, default=DEFAULT_WINDOW,
                   help=f"window for the token estimates (default {DEFAULT_WINDOW})")
    i.add_argument("--start", type=float, default=0.0, metavar="SEC", help="estimate for a trim starting here")
    i.add_argument("--duration", type=float, default=None, metavar="SEC", help="estimate for a trim this long")
    i.add_argument("--max-side", type=int, default=None, metavar="PX", help="estimate at this resolution cap")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_cmd_info)

    c = sub.add_parser("compare", help="score any reconstruction against its original (PSNR/SSIM/LPIPS, audio)")
    c.add_argument("original", help="the reference video")
    c.add_argument("reconstruction", help="the video to score (same frame count; same size, or +1 px of even padding)")
    c.add_argument("--start", type=float, default=0.0, metavar="SEC",
                   help="use the original from this time (to match a trimmed run)")
    c.add_argument("--duration", type=float, default=None, metavar="SEC", help="use this much of the original")
    c.add_argument("--max-side", type=int, default=None, metavar="PX",
                   help="scale the original as a run with this resolution cap did")
    c.add_argument("--lpips", choices=["auto", "vgg", "alex", "off"], default="auto",
                   help="LPIPS backbone (default auto: VGG on GPU, AlexNet on CPU)")
    c.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    c.add_argument("--json", default=None, metavar="FILE", help="write the full report (per-frame arrays) here")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    c.set_defaults(func=_cmd_compare)

    s = sub.add_parser("settings", help="list the six settings and the weight files found (path, size, SHA-256)")
    s.add_argument("--checkpoints", default=None, metavar="DIR")
    s.add_argument("--dac-weights", default=None, metavar="PATH")
    s.set_defaults(func=_cmd_settings)

    from .dataset.cli import add_parser as add_dataset_parser

    add_dataset_parser(sub)  # `avtok dataset`: its options and code live in avtok_ui/dataset/
    return p


def _run(func, args: argparse.Namespace) -> int:
    try:
        return func(args)
    except Cancelled:
        print("error: interrupted; no outputs were written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("error: interrupted; no outputs were written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader (e.g. `| head`) stopped early: not an error of ours; silence the final flush
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except AvtokError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as err:  # bad values in an input that slipped past its checks: still the input's fault
        if os.environ.get("AVTOK_DEBUG"):
            raise
        name = _input_name(args)
        print(f"error: {name + ': ' if name else ''}{one_line(str(err))}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:  # noqa: BLE001 - the CLI's last line of defence: one line, no traceback
        if os.environ.get("AVTOK_DEBUG"):
            raise
        print(f"error: internal error ({type(err).__name__}: {one_line(str(err))}); "
              "set AVTOK_DEBUG=1 for the traceback", file=sys.stderr)
        return EXIT_ERROR


def _input_name(args: argparse.Namespace) -> str | None:
    """The input file a command reads (for naming it in an error), if it has one."""
    if getattr(args, "orig_video_file", None):
        return args.orig_video_file
    if getattr(args, "original", None):
        return f"{Path(args.original).name} / {Path(args.reconstruction).name}"
    for key in ("tokens", "video", "file"):
        if getattr(args, key, None):
            return Path(getattr(args, key)).name
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_heap()  # this process runs the engine: reuse window buffers (see engine.heap.keep_heap)
    return _run(args.func, args)


TOKENIZE_VIDEO_USAGE = (
    "tokenize_video <orig_video_dir> <orig_video_file> <video_nickname> <is_discrete> <temporal_factor> "
    "<spatial_factor> <output_tokens_dir> <reconstructed_dir> [options]"
)


def tokenize_video_main(argv: list[str] | None = None) -> int:
    """The seed tool's interface: 8 positional arguments, same meaning, same output names."""
    p = argparse.ArgumentParser(
        prog="tokenize_video", usage=TOKENIZE_VIDEO_USAGE,
        description="Seed-compatible front end: writes <output_tokens_dir>/<nick>.safetensors and "
                    "<reconstructed_dir>/<nick>_reconstructed{,_visual}.mp4 + <nick>_reconstructed_audio.wav; "
                    "the extracted <stem>_audio.wav goes beside the video.",
    )
    p.add_argument("orig_video_dir")
    p.add_argument("orig_video_file")
    p.add_argument("video_nickname")
    p.add_argument("is_discrete", help="true/false (or 1/0)")
    p.add_argument("temporal_factor", help="4 or 8 (4 only with spatial 8)")
    p.add_argument("spatial_factor", help="8 or 16")
    p.add_argument("output_tokens_dir")
    p.add_argument("reconstructed_dir")
    p.add_argument("--window", "-w", type=int, default=DEFAULT_WINDOW, metavar="FRAMES",
                   help=f"temporal window, 1+tf*k frames (default {DEFAULT_WINDOW}; the seed tool used 129)")
    p.add_argument("--codebooks", type=int, default=DAC_CODEBOOKS, metavar="N",
                   help="DAC codebooks 1-9 (default 9); 0 = no audio tokens")
    p.add_argument("--no-metrics", action="store_true", help="skip PSNR/SSIM/LPIPS and audio metrics")
    p.add_argument("--tokens-only", action="store_true",
                   help="write the token file alone: no decoder, no reconstruction, no metrics, no extracted wav")
    p.add_argument("--lpips", choices=["auto", "vgg", "alex", "off"], default="auto",
                   help="LPIPS backbone (default auto: VGG on GPU, AlexNet on CPU)")
    _add_run_options(p, setting=False)
    args = p.parse_args(argv)
    keep_heap()
    args.no_audio = False
    args.start, args.duration, args.max_side = 0.0, None, None

    def run(a: argparse.Namespace) -> int:
        from .pipeline import tokenize

        setting = VisualSetting.from_flags(a.is_discrete, a.temporal_factor, a.spatial_factor)
        if not Path(a.orig_video_dir).is_dir():
            raise AvtokError(f"{a.orig_video_dir}: orig_video_dir is not a folder")
        src = Path(a.orig_video_dir) / a.orig_video_file
        if not src.exists():
            raise AvtokError(f"{src}: file not found")
        config = _config(a, setting)
        progress = _Progress(a.quiet)
        try:
            result = tokenize(src, a.output_tokens_dir, a.reconstructed_dir, a.video_nickname, config,
                              progress=progress,
                              extracted_wav=None if a.tokens_only else src.parent / f"{src.stem}_audio.wav")
        finally:
            progress.close()
        _print_result(result)
        return 0

    return _run(run, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
