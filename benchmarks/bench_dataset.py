"""Throughput of `avtok dataset` (Ray Data actor pool) with 1 and 2 workers, and the time Ray adds per video.

    .venv/bin/python benchmarks/bench_dataset.py                         # 8 x 4 s 720p clips, both model kinds
    .venv/bin/python benchmarks/bench_dataset.py --clips 4 --seconds 2   # smoke run
    .venv/bin/python benchmarks/bench_dataset.py --models gpu-speed --encode-ms 10 --workers 1 2 --repeats 2

Model kinds (``--models``):

* ``tiny``: the tiny random-weight Cosmos stand-ins (:mod:`avtok_ui.testing`), real CPU work;
* ``gpu-speed``: :mod:`avtok_ui.testing.gpu_speed` stand-ins (when that module is importable): each model
  call holds for a GPU-like time per 720p frame inside a custom op (the GIL is released), so the figure
  shows how well the job keeps several GPU workers busy. The workers import the module through Ray's
  ``worker_process_setup_hook`` (its ``warm_up``), as the op must be registered before the files load;
* ``real-size``: where CUDA is available and ``--checkpoints`` points at the real Cosmos files.

For each kind the script first tokenizes every clip in this process, one after the other, with the models
loaded once (``pipeline.tokenize(tokens_only=True)``: the work without Ray), then runs the dataset job
(``avtok_ui.dataset.job.run_job``, a fresh local Ray each time, into a fresh OUT) for each worker count,
interleaved over ``--repeats``. Printed per run: wall time (Ray start and stop included), Ray's start, the
time to the first video's result (actors started, models loaded, one video), the steady-state seconds per
video between the first and the last result (``(last - first) / (videos - 1)``), hours of video per hour and
tokens per second at that steady rate, the speed-up over one worker, the time Ray adds per video
(steady seconds per video with 1 worker minus seconds per video without Ray), and the same rate and speed-up
while every worker is busy (``all-busy``: the arrivals from the w-th to the w-th last, so the staggered starts
and the draining tail of w workers are left out; :func:`all_busy_s_per_video`). Speed-ups are against the
fastest 1-worker run so far. ``AVTOK_BENCH_TIMES=1`` also prints every result's arrival time. Audio is off
(``--audio`` to include the tiny DAC, which is CPU work in every kind).

Timings are noisy on a shared machine: the load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import make_synth_video, synth_path  # noqa: E402


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _clips(cache: Path, n: int, seconds: float) -> Path:
    """``n`` copies (hard links) of one synthetic 720p clip in a folder: same work per video."""
    src = synth_path(cache, seconds)
    if not src.exists():
        make_synth_video(src, seconds)
    folder = cache / f"dataset_{n}x{seconds:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        dst = folder / f"clip{i:03d}.mp4"
        if not dst.exists():
            os.link(src, dst)
    return folder


def _checkpoints(kind: str, cache: Path, args: argparse.Namespace) -> Path:
    from avtok_ui.settings import DAC_WEIGHTS_NAME

    root = cache / ("ckpt-tiny" if kind == "tiny" else f"ckpt-gpu-speed-{args.encode_ms:g}-{args.decode_ms:g}")
    if kind == "real-size":
        return Path(args.checkpoints)
    if not (root / "dac" / DAC_WEIGHTS_NAME).exists():
        from avtok_ui.testing.tiny_dac import build_tiny_dac

        if kind == "tiny":
            from avtok_ui.testing.tiny_cosmos import build_all_tiny_cosmos

            build_all_tiny_cosmos(root)
        else:
            from avtok_ui.testing.gpu_speed import build_all_gpu_speed_cosmos

            build_all_gpu_speed_cosmos(root, encode_ms=args.encode_ms, decode_ms=args.decode_ms)
        build_tiny_dac(root / "dac" / DAC_WEIGHTS_NAME)
    return root


def _config(args: argparse.Namespace, ckpt: Path):
    from avtok_ui.pipeline import RunConfig
    from avtok_ui.settings import VisualSetting

    return RunConfig(setting=VisualSetting.parse(args.setting), codebooks=9 if args.audio else 0,
                     checkpoint_dir=str(ckpt), dac_weights=str(ckpt / "dac") if args.audio else None,
                     allow_download=False, metrics=False, lpips="off")


def _without_ray(folder: Path, config, tmp: Path) -> tuple[float, float, int]:
    """Every clip tokenized in this process (tokens only, models loaded once, loading not timed):
    (wall s, video s, tokens)."""
    import torch

    from avtok_ui.pipeline import load_models, tokenize
    from avtok_ui.tokens import load_tokens

    torch.set_num_threads(1)  # as one dataset worker on this machine
    models = load_models(config, need_audio=config.codebooks > 0)
    t0 = time.perf_counter()  # model loading excluded: per-video work only
    video_s = 0.0
    tokens = 0
    for clip in sorted(folder.glob("*.mp4")):
        r = tokenize(clip, tmp, None, clip.stem, config, models=models, tokens_only=True)
        tf = load_tokens(r.tokens, visual=False)
        _, t, h, w = tf.meta.latent_shape[:4]
        tokens += t * h * w + (tf.audio_codes.numel() if tf.audio_codes is not None else 0)
        video_s += float(tf.meta.clip["duration_s"])
    return time.perf_counter() - t0, video_s, tokens


def _job(folder: Path, out: Path, config, workers: int, runtime_env: dict | None) -> dict:
    from avtok_ui.dataset.job import JobOptions, run_job

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = run_job(JobOptions(input=str(folder), out=out, config=config, workers=workers, qa_fraction=0,
                             quiet=True, runtime_env=runtime_env))
    s = res.summary
    assert s["failed"] == 0, s["failed_inputs"]
    s["_wall"] = time.perf_counter() - t0
    s["_times"] = res.result_times_s
    return s


def all_busy_s_per_video(times: list[float], workers: int) -> float:
    """Seconds per video while every worker is busy: the arrivals from the ``workers``-th to the
    ``workers``-th last (0-based ``w-1 .. n-w``). The first ``w`` results end the workers' first videos (their
    starts are staggered) and during the last ``w`` some workers already idle (nothing left to take), so both
    ends are left out; with one worker this is the first-to-last rate."""
    n, w = len(times), max(1, workers)
    if n - 2 * w + 1 < 1:
        return (times[-1] - times[0]) / max(1, n - 1)
    return (times[n - w] - times[w - 1]) / (n - 2 * w + 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=None, choices=["tiny", "gpu-speed", "real-size"],
                   help="model kinds (default: tiny, gpu-speed where importable, real-size where CUDA and "
                        "--checkpoints)")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0, help="length of each 720p clip")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--setting", default="CV8x16x16")
    p.add_argument("--encode-ms", type=float, default=10.0, help="gpu-speed: hold per 720p input frame")
    p.add_argument("--decode-ms", type=float, default=15.0, help="gpu-speed: hold per 720p output frame")
    p.add_argument("--audio", action="store_true", help="also DAC audio tokens (tiny DAC, CPU)")
    p.add_argument("--checkpoints", default=None, help="real Cosmos checkpoints (real-size kind)")
    p.add_argument("--cache", default="/tmp/avtok-bench")
    args = p.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    cache = Path(args.cache)
    kinds = args.models
    if kinds is None:
        import torch

        kinds = ["tiny"]
        if importlib.util.find_spec("avtok_ui.testing.gpu_speed"):
            kinds.append("gpu-speed")
        if torch.cuda.is_available() and args.checkpoints:
            kinds.append("real-size")
    if "gpu-speed" in kinds and not importlib.util.find_spec("avtok_ui.testing.gpu_speed"):
        print("gpu-speed stand-ins are not in this checkout (avtok_ui/testing/gpu_speed.py): skipped")
        kinds.remove("gpu-speed")
    folder = _clips(cache, args.clips, args.seconds)
    print(f"{args.clips} clips x {args.seconds:g} s 1280x720 25 fps, {args.setting}, audio "
          f"{'on' if args.audio else 'off'}, {os.cpu_count()} CPUs; load {_load()}")
    for kind in kinds:
        ckpt = _checkpoints(kind, cache, args)
        config = _config(args, ckpt)
        env = None
        if kind == "gpu-speed":
            import avtok_ui.testing.gpu_speed as gs

            gs.warm_up()
            env = {"worker_process_setup_hook": "avtok_ui.testing.gpu_speed.warm_up"}
        tmp = cache / "tokens-no-ray"
        shutil.rmtree(tmp, ignore_errors=True)
        base_s, video_s, tokens = _without_ray(folder, config, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"\n[{kind}] without Ray (one process, models loaded once): {base_s:.1f} s for {video_s:.0f} s "
              f"of video -> {video_s / base_s:.2f} h of video per hour, {tokens / base_s:,.0f} tokens/s; "
              f"load {_load()}")
        print(f"{'workers':>7} {'wall s':>7} {'ray start':>9} {'1st video':>9} {'steady s/video':>14} "
              f"{'h video/h':>9} {'tokens/s':>9} {'speed-up':>8} {'ray s/video':>11} {'all-busy s/v':>12} "
              f"{'speed-up':>8}  load")
        one: list[float] = []
        one_busy: list[float] = []
        n = args.clips
        for rep in range(args.repeats):
            for w in args.workers:
                s = _job(folder, cache / f"out-{kind}-{w}", config, w, env)
                pl = s["workers"]
                # steady state: videos 2..n arrive in (last - first) seconds (startup excluded)
                per_video = (pl["last_result_s"] - pl["first_result_s"]) / max(1, n - 1)
                # and while every worker is busy (staggered starts and the draining tail excluded too)
                busy = all_busy_s_per_video(s["_times"], w)
                if w == 1:
                    one.append(per_video)
                    one_busy.append(busy)
                speed = (min(one) / per_video) if one else float("nan")
                speed_busy = (min(one_busy) / busy) if one_busy else float("nan")
                added = per_video - base_s / n if w == 1 else float("nan")
                print(f"{w:>7} {s['_wall']:>7.1f} {pl['ray_start_s']:>9.1f} {pl['first_result_s']:>9.1f} "
                      f"{per_video:>14.2f} {video_s / n / per_video * 1:>9.2f} {tokens / n / per_video:>9,.0f} "
                      f"{speed:>7.2f}x {added:>11.2f} {busy:>12.2f} {speed_busy:>7.2f}x  {_load()}"
                      + (f"  (repeat {rep + 1})" if args.repeats > 1 else ""), flush=True)
                if os.environ.get("AVTOK_BENCH_TIMES"):
                    print("        arrivals s: " + " ".join(f"{t:.2f}" for t in s["_times"]))
        with contextlib.suppress(Exception):
            shutil.rmtree(cache / f"out-{kind}-1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
