"""Per-frame cost of the video metrics at 720p (PSNR, SSIM, LPIPS), before and after, on CPU and CUDA.

*before* is the PSNR/SSIM implementation this branch replaced (``benchmarks/_metrics_before.py``, a copy
kept for this script only) and LPIPS called as ``VideoMetrics`` called it (``batch=8``); *after* is
``avtok_ui.metrics`` as it is. Both run in this one process on the same frames, interleaved (repeat r:
before, then after) so that a shared machine's load hits both alike; the median over repeats is printed as
wall time and as process CPU time per frame. Quote the load average printed at the start and the end.

LPIPS runs with a seeded random-init trunk (the ImageNet trunk weights are not downloadable here); its
cost is the same as with real weights. The script also checks SSIM against scikit-image on the same frames
and prints the tokenizer's own cost per frame beside the metrics' (encode + decode of one 17-frame window):
with ``--checkpoints DIR`` the real Cosmos files of ``--setting``, otherwise the tiny stand-ins (whose cost
is NOT Cosmos's).

    .venv/bin/python benchmarks/bench_metrics.py [--frames 17] [--lpips-frames 2] [--nets alex]
        [--repeat 3] [--threads N] [--no-lpips] [--no-tokenizer] [--checkpoints DIR --setting DV8x16x16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _metrics_before as before  # noqa: E402

from avtok_ui import metrics as after  # noqa: E402
from avtok_ui.metrics import LPIPS  # noqa: E402


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _once(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    w, c = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - w, time.process_time() - c


def _side_by_side(
    old: Callable[[], object], new: Callable[[], object], device: torch.device, repeat: int, frames: int
) -> list[float]:
    """Median ms/frame: [old wall, old cpu, new wall, new cpu]; old and new interleaved."""
    old(), new()  # warm-up (allocations, cuDNN selection)
    runs: list[list[float]] = [[], [], [], []]
    for _ in range(repeat):
        for k, fn in ((0, old), (2, new)):
            w, c = _once(fn, device)
            runs[k].append(w)
            runs[k + 1].append(c)
    return [statistics.median(r) / frames * 1e3 for r in runs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=17, help="frames per call for PSNR/SSIM (one window)")
    ap.add_argument("--lpips-frames", type=int, default=2, help="frames per call for LPIPS on CPU (CUDA: 17)")
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--no-tokenizer", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--nets", default="alex", help="LPIPS trunks to time (vgg is ~20x alex on CPU)")
    ap.add_argument("--setting", default="DV8x16x16", help="Cosmos setting for the tokenizer's cost")
    ap.add_argument("--checkpoints", default=None, help="real Cosmos checkpoints (default: tiny stand-ins)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, frames {args.width}x{args.height}")
    print(f"load average at start: {_load()}")
    for dev in devices:
        _bench_device(args, dev, rng)
    print(f"\nload average at end: {_load()}")


def _bench_device(args: argparse.Namespace, dev: torch.device, rng: np.random.Generator) -> None:
    t = args.frames
    a_np = rng.integers(0, 256, (t, args.height, args.width, 3), dtype=np.uint8)
    b_np = np.clip(a_np.astype(np.int16) + rng.integers(-12, 13, a_np.shape), 0, 255).astype(np.uint8)
    a, b = torch.from_numpy(a_np).to(dev), torch.from_numpy(b_np).to(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"\n[{name}] ms per frame, median of {args.repeat} (wall | process CPU), {t} frames per call")
    print(f"  {'metric':30s} {'before wall':>11s} {'before cpu':>10s} {'after wall':>10s} {'after cpu':>9s}"
          f" {'speed-up':>8s}")
    rows: list[tuple[str, Callable[[], object], Callable[[], object], int]] = [
        ("PSNR (exact SSE)", lambda: before.sse_frames(a, b), lambda: after.sse_frames(a, b), t),
        ("SSIM (skimage-equal)", lambda: before.ssim_frames(a, b), lambda: after.ssim_frames(a, b), t),
        (
            "PSNR+SSIM (VideoMetrics pass)",
            lambda: before._frame_stats(a, b, True),
            lambda: after._frame_stats(a, b, True),
            t,
        ),
    ]
    if not args.no_lpips:
        tl = t if dev.type == "cuda" else min(t, args.lpips_frames)
        for net in args.nets.split(","):
            lp = LPIPS.with_random_trunk(net, device=dev)
            rows.append(
                (
                    f"LPIPS {net} (random trunk)",
                    lambda lp=lp, tl=tl: lp(a[:tl], b[:tl], batch=8),
                    lambda lp=lp, tl=tl: lp(a[:tl], b[:tl]),
                    tl,
                )
            )
    for label, old, new, n in rows:
        ow, oc, nw, nc = _side_by_side(old, new, dev, args.repeat, n)
        print(f"  {label:30s} {ow:11.1f} {oc:10.1f} {nw:10.1f} {nc:9.1f} {ow / nw:7.2f}x")
    if not args.no_tokenizer:
        tok_label, tok_per = _tokenizer_cost(args, dev, a_np[:1])
        print(f"  {tok_label:30s} {tok_per * 1e3:9.1f} ms/frame wall (encode + decode, 17-frame window)")
    if dev.type == "cpu":
        _check_skimage(a_np, b_np)


def _check_skimage(a_np: np.ndarray, b_np: np.ndarray) -> None:
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        print("  (scikit-image not installed: no reference check)")
        return
    n = min(len(a_np), 2)
    t0 = time.perf_counter()
    ref = np.array(
        [
            structural_similarity(
                a_np[i].astype(np.float32), b_np[i].astype(np.float32), data_range=255, channel_axis=-1
            )
            for i in range(n)
        ]
    )
    sk = (time.perf_counter() - t0) / n
    d_new = np.max(np.abs(after.ssim_frames(a_np[:n], b_np[:n]).numpy() - ref))
    d_old = np.max(np.abs(before.ssim_frames(a_np[:n], b_np[:n]).numpy() - ref))
    d = a_np[:n].astype(np.float64) - b_np[:n].astype(np.float64)
    sse_ok = after.sse_frames(a_np[:n], b_np[:n]).tolist() == [int(v) for v in (d * d).reshape(n, -1).sum(1)]
    print(
        f"  {'skimage SSIM (float32 frames)':30s} {sk * 1e3:11.1f} ms/frame wall;  max |SSIM - skimage|: "
        f"before {d_old:.1e}, after {d_new:.1e};  SSE exact: {sse_ok}"
    )


def _tokenizer_cost(args: argparse.Namespace, dev: torch.device, frame: np.ndarray) -> tuple[str, float]:
    """Seconds per frame of Cosmos encode + decode of one 17-frame window on ``dev``."""
    import tempfile

    from avtok_ui.settings import VisualSetting
    from avtok_ui.visual import CosmosTokenizer

    setting = VisualSetting.parse(args.setting)
    ckpt = args.checkpoints
    label = f"Cosmos {setting.name}"
    if ckpt is None:
        from avtok_ui.testing.tiny_cosmos import build_tiny_cosmos

        ckpt = tempfile.mkdtemp(prefix="avtok-bench-ckpt-")
        build_tiny_cosmos(setting, Path(ckpt))
        label += " (tiny stand-in)"
    tok = CosmosTokenizer.from_pretrained(setting, ckpt, device=str(dev), allow_download=False)
    window = np.repeat(frame, 17, axis=0)

    def run() -> None:
        tokens = tok.encode_window(window)
        tok.decode_window(tokens, 17, window.shape[1], window.shape[2])

    run()
    return label, _once(run, dev)[0] / 17


if __name__ == "__main__":
    main()
