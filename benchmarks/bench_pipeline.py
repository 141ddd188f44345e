"""Peak memory and overhead of the whole pipeline on long synthetic 720p videos (tiny random-weight models).

Issue 2: peak RSS of a 10-minute video must stay within 1.2x of a 1-minute one (same setting, tiny model),
and the wall time of the whole run is printed beside the time spent in model calls, so overhead is visible.

    .venv/bin/python benchmarks/bench_pipeline.py                       # 1 and 10 minutes, DV8x16x16
    .venv/bin/python benchmarks/bench_pipeline.py --minutes 0.2 1      # quick smoke run
    .venv/bin/python benchmarks/bench_pipeline.py --repeats 3 --no-metrics --preset ultrafast

* Synthetic videos (1280x720, 25 fps, H.264 ultrafast + stereo 48 kHz AAC; a moving gradient and square,
  a two-tone audio signal) are written streaming, one frame at a time, and cached in ``--cache``
  (default /tmp/avtok-bench); tiny random-weight checkpoints are built there too (``python -m
  avtok_ui.testing``) unless ``--checkpoints`` is given.
* Every pipeline run is a FRESH Python process (``pipeline.tokenize``, default settings except the flags
  below). Its peak RSS is the child's own ``VmHWM`` (read from /proc/self/status at the end); the
  ``ru_maxrss`` of that child alone (``os.wait4``) is printed as a cross-check. The child also samples VmRSS
  every 0.2 s and attributes it to the pipeline stage running (from the progress callback), which shows
  *where* the peak happens.
* Times come from the run's own report (``timings_s``): ``total`` = wall time of ``tokenize()`` (model
  loading included), ``model_calls`` = Cosmos encode + decode + DAC encode + decode; overhead = the rest
  (decoding the source, metrics, H.264 encoding of the reconstruction, token file, mux, ...).

Timings are noisy on a shared machine; peak RSS is much less so, but still report the ratio over repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

RATIO_LIMIT = 1.2
WIDTH, HEIGHT, FPS = 1280, 720, 25
AUDIO_RATE = 48000
VIDEO_VERSION = "v1"  # bump when the synthetic content changes (invalidates the cache)
RESULT_TAG = "BENCH_RESULT "


# ----------------------------------------------------------------------------------------------------
# synthetic input
# ----------------------------------------------------------------------------------------------------
def synth_path(cache: Path, seconds: float) -> Path:
    return cache / f"synth_{WIDTH}x{HEIGHT}_{FPS}fps_{seconds:g}s_{VIDEO_VERSION}.mp4"


def make_synth_video(path: Path, seconds: float) -> Path:
    """Write a ``seconds``-long 720p/25 fps H.264 + AAC mp4, streaming (one frame buffer, O(1) memory).

    Cheap content: a horizontally scrolling luma gradient, a moving bright square, slowly drifting chroma;
    audio is a 440 Hz + slowly gliding second tone, stereo 48 kHz. Written to a temporary name, then renamed.
    """
    import av
    import numpy as np

    n_frames = max(1, round(seconds * FPS))
    period = 256  # the luma pattern repeats every `period` pixels, so scrolling is a slice of one buffer
    x = np.arange(WIDTH + period, dtype=np.float32)[None, :]
    y = np.arange(HEIGHT, dtype=np.float32)[:, None]
    base = (128 + 70 * np.sin(2 * np.pi * x / period) + 40 * np.sin(2 * np.pi * y / 180)).astype(np.uint8)
    buf = np.empty((HEIGHT * 3 // 2, WIDTH), dtype=np.uint8)  # yuv420p: Y rows, then U and V (packed)
    sq = 96

    tmp = path.with_name(f".{path.stem}.partial{os.getpid()}.mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(tmp), "w", format="mp4") as out:
            vs = out.add_stream("libx264", rate=FPS)
            vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            vs.time_base = Fraction(1, FPS)
            vs.codec_context.time_base = Fraction(1, FPS)
            vs.options = {"preset": "ultrafast", "crf": "23"}
            aus = out.add_stream("aac", rate=AUDIO_RATE)
            aus.layout = "stereo"
            aus.time_base = Fraction(1, AUDIO_RATE)
            a_frame = aus.codec_context.frame_size or 1024
            a_total = round(n_frames * AUDIO_RATE / FPS)
            a_done = 0
            gains = np.array([[1.0], [0.8]], dtype=np.float32)
            for i in range(n_frames):
                o = (4 * i) % period
                buf[:HEIGHT] = base[:, o:o + WIDTH]
                sx = (7 * i) % (WIDTH - sq)
                sy = (3 * i) % (HEIGHT - sq)
                buf[sy:sy + sq, sx:sx + sq] = 235
                buf[HEIGHT:HEIGHT + HEIGHT // 4] = 128 + int(50 * math.sin(i / 40))  # U
                buf[HEIGHT + HEIGHT // 4:] = 128 + int(50 * math.cos(i / 55))  # V
                frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
                frame.pts = i
                frame.time_base = Fraction(1, FPS)
                out.mux(vs.encode(frame))
                a_target = min(a_total, round((i + 1) * AUDIO_RATE / FPS))
                while a_done + a_frame <= a_target or (i == n_frames - 1 and a_done < a_total):
                    k = min(a_frame, a_total - a_done)
                    t = np.arange(a_done, a_done + k, dtype=np.float64) / AUDIO_RATE
                    glide = 300 + 100 * np.sin(2 * np.pi * t / 7.0)
                    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * glide * t)
                    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone.astype(np.float32)[None] * gains),
                                                    format="fltp", layout="stereo")
                    af.sample_rate = AUDIO_RATE
                    af.pts = a_done
                    af.time_base = Fraction(1, AUDIO_RATE)
                    out.mux(aus.encode(af))
                    a_done += k
            out.mux(vs.encode(None))
            out.mux(aus.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def ensure_video(cache: Path, seconds: float) -> Path:
    path = synth_path(cache, seconds)
    if not path.exists():
        t0 = time.perf_counter()
        print(f"writing {path} ({seconds:g} s, {round(seconds * FPS)} frames) ...", flush=True)
        make_synth_video(path, seconds)
        print(f"  done in {time.perf_counter() - t0:.1f} s, {path.stat().st_size / 2**20:.1f} MiB", flush=True)
    return path


def ensure_checkpoints(cache: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    ckpt = cache / "tiny-ckpt"
    marker = ckpt / ".complete"
    if not marker.exists():
        print(f"building tiny random-weight checkpoints in {ckpt} ...", flush=True)
        subprocess.run([sys.executable, "-m", "avtok_ui.testing", "--out", str(ckpt)], check=True,
                       stdout=subprocess.DEVNULL)
        marker.touch()
    return ckpt


# ----------------------------------------------------------------------------------------------------
# child: one pipeline run
# ----------------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(args: argparse.Namespace) -> int:
    t_proc = time.perf_counter()
    from avtok_ui import pipeline
    from avtok_ui.settings import DAC_WEIGHTS_NAME, VisualSetting

    ckpt = Path(args.checkpoints)
    kwargs = dict(setting=VisualSetting.parse(args.setting), checkpoint_dir=str(ckpt),
                  dac_weights=str(ckpt / "dac" / DAC_WEIGHTS_NAME), allow_download=False,
                  metrics=args.metrics)
    if args.crf is not None:
        kwargs["crf"] = args.crf
    if args.preset is not None:
        kwargs["preset"] = args.preset
    config = pipeline.RunConfig(**kwargs)

    # RSS sampler: peak VmRSS per pipeline stage (attribution only; VmHWM is the exact peak)
    stage = ["start"]
    by_stage: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            rss = _status_kib("VmRSS")
            by_stage[stage[0]] = max(by_stage.get(stage[0], 0), rss)

    def progress(name: str, done: float, total: float) -> None:
        stage[0] = name

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="avtok-bench-run-", dir=args.workdir) as tmp:
        result = pipeline.tokenize(args.video, tmp, tmp, "bench", config, progress=progress)
        stop.set()
        sampler.join()
        report = result.report
        out = {
            "timings": report["timings_s"],
            "n_frames": report["evaluated"]["n_frames"],
            "duration_s": report["evaluated"]["duration_s"],
            "size": [report["evaluated"]["width"], report["evaluated"]["height"]],
            "setting": report["setting"],
            "config": report["config"],
            "vmhwm_kib": _status_kib("VmHWM"),
            "vmrss_end_kib": _status_kib("VmRSS"),
            "rss_by_stage_kib": by_stage,
            "token_bytes": Path(result.tokens).stat().st_size,
            "process_s": time.perf_counter() - t_proc,
        }
    print(RESULT_TAG + json.dumps(out), flush=True)
    return 0


def run_child(args: argparse.Namespace, video: Path, ckpt: Path) -> dict:
    """Run one pipeline in a fresh interpreter; return its result plus its own ru_maxrss (os.wait4)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--video", str(video), "--checkpoints", str(ckpt),
           "--setting", args.setting, "--workdir", str(args.workdir)]
    cmd.append("--metrics" if args.metrics else "--no-metrics")
    if args.crf is not None:
        cmd += ["--crf", str(args.crf)]
    if args.preset is not None:
        cmd += ["--preset", args.preset]
    t0 = time.perf_counter()
    # output goes to temporary files (no pipe to drain), so os.wait4 can reap the child and give its rusage
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        proc = subprocess.Popen(cmd, stdout=fout, stderr=ferr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    if proc.returncode != 0:
        sys.stderr.write(err[-4000:])
        raise SystemExit(f"child run failed (exit {proc.returncode}) on {video.name}")
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_TAG)]
    if not lines:
        sys.stderr.write(out[-2000:] + err[-2000:])
        raise SystemExit(f"child printed no result for {video.name}")
    res = json.loads(lines[-1][len(RESULT_TAG):])
    res["ru_maxrss_kib"] = usage.ru_maxrss  # Linux: KiB, this child only
    res["child_wall_s"] = wall
    return res


# ----------------------------------------------------------------------------------------------------
# parent
# ----------------------------------------------------------------------------------------------------
def _mib(kib: float) -> float:
    return kib / 1024.0


def print_row(minutes: float, rep: int, r: dict) -> None:
    t = r["timings"]
    total, model = t["total"], t["model_calls"]
    print(f"{minutes:>6g} {rep:>3d} {r['duration_s']:>8.1f} {r['n_frames']:>7d} {_mib(r['vmhwm_kib']):>9.1f} "
          f"{_mib(r['ru_maxrss_kib']):>9.1f} {total:>9.1f} {model:>8.1f} {total - model:>9.1f} "
          f"{r['n_frames'] / total:>7.1f}", flush=True)


def print_details(minutes: float, rep: int, r: dict) -> None:
    t = r["timings"]
    parts = ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k not in ("total", "model_calls"))
    stages = ", ".join(f"{k} {_mib(v):.0f}" for k, v in r["rss_by_stage_kib"].items())
    print(f"    [{minutes:g} min #{rep}] timings s: {parts}", flush=True)
    print(f"    [{minutes:g} min #{rep}] peak VmRSS MiB by stage (0.2 s samples): {stages}; "
          f"end VmRSS {_mib(r['vmrss_end_kib']):.0f}; process {r['process_s']:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", default="DV8x16x16")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0],
                    help="video lengths; the ratio is longest/shortest (default 1 10)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per length, interleaved (default 1)")
    ap.add_argument("--metrics", dest="metrics", action="store_true", default=True,
                    help="compute PSNR/SSIM (+LPIPS if its weights are present) as the app does (default)")
    ap.add_argument("--no-metrics", dest="metrics", action="store_false")
    ap.add_argument("--crf", type=int, default=None, help="H.264 quality of the reconstructions (default: RunConfig's)")
    ap.add_argument("--preset", default=None,
                    help="x264 preset of the reconstructions (needs RunConfig.preset; default: RunConfig's)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/avtok-bench"),
                    help="where synthetic videos and tiny checkpoints are cached (default /tmp/avtok-bench)")
    ap.add_argument("--checkpoints", default=None, help="checkpoint folder (default: tiny ones built in --cache)")
    ap.add_argument("--workdir", type=Path, default=None, help="where run outputs go (deleted; default --cache)")
    ap.add_argument("--details", action="store_true", help="per-run stage timings and RSS by stage")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--video", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.workdir is None:
        args.workdir = args.cache
    if args.child:
        return child(args)

    if args.preset is not None:
        from avtok_ui.pipeline import RunConfig

        if "preset" not in {f.name for f in dataclasses.fields(RunConfig)}:
            ap.error("this pipeline's RunConfig has no 'preset' field")

    args.cache.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoints(args.cache, args.checkpoints)
    minutes = sorted(set(args.minutes))
    videos = {m: ensure_video(args.cache, m * 60) for m in minutes}

    print(f"\nsetting {args.setting}, {WIDTH}x{HEIGHT} {FPS} fps, tiny random-weight models ({ckpt}), "
          f"metrics {'on' if args.metrics else 'off'}, crf {args.crf or 'default'}, "
          f"preset {args.preset or 'default'}, repeats {args.repeats}, CPUs {os.cpu_count()}, "
          f"load avg {os.getloadavg()[0]:.1f}")
    print("(timings are wall-clock on a possibly shared machine: noisy; peak RSS = child's VmHWM)\n")
    print(f"{'min':>6} {'rep':>3} {'dur s':>8} {'frames':>7} {'peak MiB':>9} {'maxrss':>9} {'total s':>9} "
          f"{'model s':>8} {'overhead':>9} {'fps':>7}")
    results: dict[float, list[dict]] = {m: [] for m in minutes}
    for rep in range(1, args.repeats + 1):
        for m in minutes:
            r = run_child(args, videos[m], ckpt)
            results[m].append(r)
            print_row(m, rep, r)
            if args.details:
                print_details(m, rep, r)

    if len(minutes) >= 2:
        lo, hi = minutes[0], minutes[-1]
        ratios = [b["vmhwm_kib"] / a["vmhwm_kib"] for a, b in zip(results[lo], results[hi], strict=False)]
        med = statistics.median(ratios)
        worst = max(ratios)
        verdict = "PASS" if worst <= RATIO_LIMIT else "FAIL"
        print(f"\npeak RSS ratio {hi:g} min / {lo:g} min: " + ", ".join(f"{x:.3f}" for x in ratios)
              + (f" (median {med:.3f}, worst {worst:.3f})" if len(ratios) > 1 else "")
              + f"  -> {verdict} (limit {RATIO_LIMIT}, judged on the worst repeat)")
        for m in minutes:
            rs = results[m]
            tot = statistics.median(r["timings"]["total"] for r in rs)
            mod = statistics.median(r["timings"]["model_calls"] for r in rs)
            print(f"  {m:g} min: median peak {_mib(statistics.median(r['vmhwm_kib'] for r in rs)):.1f} MiB, "
                  f"median total {tot:.1f} s vs model calls {mod:.1f} s (overhead {tot - mod:.1f} s, "
                  f"{100 * (tot - mod) / tot:.0f}% of the run)")
        return 0 if verdict == "PASS" else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
