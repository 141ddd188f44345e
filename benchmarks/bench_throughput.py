"""Throughput of the whole CLI: how busy it keeps a GPU-speed model, and before/after on CPU tiny models.

    .venv/bin/python benchmarks/bench_throughput.py                    # both parts, full size
    .venv/bin/python benchmarks/bench_throughput.py --only gpu         # GPU-speed ratio only
    .venv/bin/python benchmarks/bench_throughput.py --only cpu --repeat 2 --before db9b335
    .venv/bin/python benchmarks/bench_throughput.py --quick            # smoke run: 10 s clips, one repeat

**1. GPU-speed ratio** (``--only gpu``). The Cosmos files are replaced by the stand-ins of
``avtok_ui.testing.gpu_speed``: each call holds (sleeps, GIL released) ``--encode-ms`` per 720p input frame /
``--decode-ms`` per output frame inside a custom op and books that time as model time. A 60 s 1280x720 25 fps
clip (synthesised once with PyAV, cached in ``--cache``) is tokenized with CV8x16x16, no audio, no metrics,
by ``avtok tokenize`` run in a wrapper process that registers the op (``python -m avtok_ui.testing.gpu_speed
run``). Ratio = wall time from the start of the first model call to the CLI's return / model time; 1.0 means
the model never waited. Paths: reconstruction (default) and tokens-only (``--tokens-only``; skipped with a
message while the CLI has no such flag). On a CUDA machine the CLI's default device is used (``--device``
overrides); the hold is a host-side sleep either way.

**2. CPU tiny models** (``--only cpu``). A 1-minute 320x240 25 fps clip with stereo audio (``tests/_synth``
content, cached), CV8x16x16, tiny random-weight checkpoints (``python -m avtok_ui.testing``, built once in
the cache and used by both trees), the whole CLI process timed from outside, metrics on and off, "before"
(``--before REV``, extracted with ``git archive`` into the cache, run with ``PYTHONPATH`` pointing at it) and
"after" (this tree) interleaved in one run; the token files of before and after are compared tensor by
tensor.

Every figure is wall-clock on a possibly shared machine: the load average is printed with each table.
Nothing here is a test; it never fails on a slow figure (exit 1 only if a run fails or tokens differ).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

GPU_SETTING = "CV8x16x16"
CPU_SETTING = "CV8x16x16"
TARGETS = {"reconstruction": 1.15, "tokens-only": 1.05}
# run the CLI of the tree given as argv[1] (checked: a stray avtok_ui on sys.path would void the comparison)
_CLI = ("import sys; tree = sys.argv.pop(1); import avtok_ui.cli as c; "
        "assert c.__file__.startswith(tree), f'{c.__file__} is not under {tree}'; sys.exit(c.main(sys.argv[1:]))")


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) if i else c.ljust(w)  # noqa: E731
                                          for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"
    sep = "|" + "|".join(("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def _run(cmd: list[str], env: dict[str, str], cwd: Path, label: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise RuntimeError(f"{label}: exit {proc.returncode}\n{tail}")
    return wall


def _cli_has_flag(tree: Path, flag: str) -> bool:
    proc = subprocess.run([sys.executable, "-c", _CLI, str(tree), "tokenize", "--help"], env=_env(tree),
                          cwd=tempfile.gettempdir(), capture_output=True, text=True)
    return flag in proc.stdout


# ----------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------
def clip_720p(cache: Path, seconds: float) -> Path:
    from bench_pipeline import ensure_video  # the 720p synthetic clip writer (one copy)

    return ensure_video(cache, seconds)


def clip_320x240(cache: Path, seconds: float) -> Path:
    from _synth import make_video

    path = cache / f"synth_320x240_25fps_{seconds:g}s_audio.mp4"
    if not path.exists():
        print(f"writing {path} ...", flush=True)
        tmp = path.with_name(f".{path.stem}.partial{os.getpid()}.mp4")
        make_video(tmp, width=320, height=240, n_frames=round(seconds * 25), audio=True)
        os.replace(tmp, path)
    return path


def gpu_checkpoints(cache: Path, encode_ms: float, decode_ms: float) -> Path:
    root = cache / f"gpu-speed-ckpt-e{encode_ms:g}-d{decode_ms:g}"
    if not (root / "gpu_speed.json").exists():
        subprocess.run([sys.executable, "-m", "avtok_ui.testing.gpu_speed", "build", "--out", str(root),
                        "--encode-ms", str(encode_ms), "--decode-ms", str(decode_ms)],
                       env=_env(ROOT), check=True, stdout=subprocess.DEVNULL)
    return root


def tiny_checkpoints(cache: Path) -> Path:
    root = cache / "tiny-ckpt"
    if not (root / ".complete").exists():
        subprocess.run([sys.executable, "-m", "avtok_ui.testing", "--out", str(root)], env=_env(ROOT),
                       check=True, stdout=subprocess.DEVNULL)
        (root / ".complete").touch()
    return root


def before_tree(cache: Path, rev: str) -> Path:
    """The revision's files (``git archive``: no worktree or ref is created), cached by commit hash."""
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = cache / f"tree-{sha[:12]}"
    if not (tree / ".complete").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        (tree / ".complete").touch()
    return tree


# ----------------------------------------------------------------------------------------------------
# 1. GPU-speed ratio
# ----------------------------------------------------------------------------------------------------
def bench_gpu(args: argparse.Namespace, cache: Path) -> None:
    seconds = args.gpu_seconds or (10.0 if args.quick else 60.0)
    clip = clip_720p(cache, seconds)
    ckpt = gpu_checkpoints(cache, args.encode_ms, args.decode_ms)
    paths = ["reconstruction", "tokens-only"]
    if not _cli_has_flag(ROOT, "--tokens-only"):
        print("tokens-only path: SKIPPED (this tree's `avtok tokenize` has no --tokens-only flag yet)")
        paths = paths[:1]
    print(f"\nGPU-speed ratio: {seconds:g} s 1280x720 25 fps clip, {GPU_SETTING}, no audio, no metrics; holds "
          f"{args.encode_ms:g} ms encode + {args.decode_ms:g} ms decode per 720p frame", flush=True)
    rows = []
    for r in range(args.repeat):
        for path in paths:
            with tempfile.TemporaryDirectory(prefix="avtok-bench-gpu-", dir=args.workdir) as tmp:
                stats = Path(tmp) / "stats.json"
                cmd = [sys.executable, "-m", "avtok_ui.testing.gpu_speed", "run", "--stats", str(stats), "--",
                       "tokenize", str(clip), "-s", GPU_SETTING, "--checkpoints", str(ckpt), "--no-audio",
                       "--no-metrics", "--offline", "-q", "-o", str(Path(tmp) / "out")]
                if path == "tokens-only":
                    cmd.append("--tokens-only")
                if args.device:
                    cmd += ["--device", args.device]
                load0 = _load()
                process_s = _run(cmd, _env(ROOT), Path(tmp), f"gpu-speed {path}")
                s = json.loads(stats.read_text())
            ratio = s["wall_from_first_call_s"] / s["model_s"]
            rows.append([path, str(r + 1), f"{s['calls']}", f"{s['model_s']:.1f}", f"{s['wall_from_first_call_s']:.1f}",
                         f"{ratio:.2f}", f"<= {TARGETS[path]:.2f}", f"{process_s:.1f}", f"{load0} -> {_load()}"])
            print(f"  {path} #{r + 1}: ratio {ratio:.2f}", flush=True)
    print(_table(["path", "rep", "calls", "model s", "wall from 1st call s", "ratio", "target", "process s",
                  "load avg (start -> end)"], rows))


# ----------------------------------------------------------------------------------------------------
# 2. CPU tiny models, before vs after
# ----------------------------------------------------------------------------------------------------
def _tokens_equal(a: Path, b: Path) -> str:
    import torch
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    if ta.keys() != tb.keys():
        return f"no: tensors {sorted(ta)} vs {sorted(tb)}"
    bad = [k for k in ta if ta[k].dtype != tb[k].dtype or not torch.equal(ta[k], tb[k])]
    return "yes" if not bad else f"no: {', '.join(sorted(bad))}"


def bench_cpu(args: argparse.Namespace, cache: Path) -> None:
    seconds = args.cpu_seconds or (10.0 if args.quick else 60.0)
    clip = clip_320x240(cache, seconds)
    ckpt = tiny_checkpoints(cache)
    trees = {"before": before_tree(cache, args.before), "after": ROOT}
    print(f"\nCPU tiny models: {seconds:g} s 320x240 25 fps clip with audio, {CPU_SETTING}, whole CLI process; "
          f"before = {args.before}, after = this tree", flush=True)
    times: dict[tuple[str, str], list[float]] = {}
    equal: dict[str, str] = {}
    loads: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="avtok-bench-cpu-", dir=args.workdir) as tmp:
        for r in range(args.repeat):
            for metrics in ("on", "off"):
                for which, tree in trees.items():
                    out = Path(tmp) / f"{which}-{metrics}"
                    cmd = [sys.executable, "-c", _CLI, str(tree), "tokenize", str(clip), "-s", CPU_SETTING,
                           "--checkpoints", str(ckpt), "--dac-weights", str(ckpt / "dac"), "--offline", "-q",
                           "-o", str(out)]
                    if metrics == "off":
                        cmd.append("--no-metrics")
                    loads.setdefault(metrics, []).append(_load())
                    wall = _run(cmd, _env(tree), Path(tmp), f"{which} metrics {metrics}")
                    times.setdefault((metrics, which), []).append(wall)
                    print(f"  #{r + 1} metrics {metrics} {which}: {wall:.1f} s", flush=True)
                name = clip.stem + ".safetensors"
                equal[metrics] = _tokens_equal(Path(tmp) / f"before-{metrics}" / name,
                                               Path(tmp) / f"after-{metrics}" / name)
    rows = []
    for metrics in ("on", "off"):
        b, a = times[(metrics, "before")], times[(metrics, "after")]
        mb, ma = statistics.median(b), statistics.median(a)
        rows.append([f"metrics {metrics}", f"{mb:.1f}", f"{ma:.1f}", f"{mb / ma:.2f}x",
                     " ".join(f"{x:.1f}" for x in b), " ".join(f"{x:.1f}" for x in a), equal[metrics],
                     f"{loads[metrics][0]} .. {_load()}"])
    print(_table(["run", "before s", "after s", "speed-up", "before runs", "after runs", "same tokens",
                  "load avg"], rows))
    if any(v != "yes" for v in equal.values()):
        raise RuntimeError("tokens differ between before and after")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["gpu", "cpu"], nargs="+", default=["gpu", "cpu"], help="parts to run")
    p.add_argument("--quick", action="store_true", help="smoke run: 10 s clips (unless given), one repeat")
    p.add_argument("--repeat", type=int, default=None, help="runs per case (default 1)")
    p.add_argument("--before", default="db9b335", help="git revision for 'before' (default db9b335)")
    p.add_argument("--encode-ms", type=float, default=10.0, help="GPU-speed hold per 720p input frame")
    p.add_argument("--decode-ms", type=float, default=15.0, help="GPU-speed hold per 720p output frame")
    p.add_argument("--gpu-seconds", type=float, default=None, help="720p clip length (default 60)")
    p.add_argument("--cpu-seconds", type=float, default=None, help="320x240 clip length (default 60)")
    p.add_argument("--device", default=None, help="--device for the GPU-speed runs (default: the CLI's)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avtok-bench",
                   help="clips, checkpoints and the 'before' tree are kept here")
    p.add_argument("--workdir", default=None, help="where the runs write their outputs (default: temp)")
    args = p.parse_args(argv)
    args.repeat = args.repeat or 1
    args.cache.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {_load()}; cpus {os.cpu_count()}; python {sys.version.split()[0]}", flush=True)
    try:
        if "gpu" in args.only:
            bench_gpu(args, args.cache)
        if "cpu" in args.only:
            bench_cpu(args, args.cache)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"\nload average at end: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
