"""Per-frame cost of the video metrics at 720p (PSNR, SSIM, LPIPS) on CPU and, if present, CUDA.

LPIPS runs with a seeded random-init trunk (the real ImageNet trunk weights are not downloadable here);
the cost is the same as with real weights. Also checks SSIM against scikit-image on the same frames, and
prints the tokenizer's own cost per frame beside the metrics' (encode + decode of one 17-frame window):
with ``--checkpoints DIR`` the real Cosmos files of ``--setting``, otherwise the tiny stand-ins (whose cost
is NOT Cosmos's; the real files' CPU cost measured on this kind of machine is quoted for scale).

    .venv/bin/python benchmarks/bench_metrics.py [--frames 4] [--height 720] [--width 1280] [--no-lpips]
                                                 [--checkpoints DIR --setting DV8x16x16]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from avtok_ui.metrics import LPIPS, VideoMetrics, psnr_frames, ssim_frames


def _time(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    fn()  # warm-up (allocations, cuDNN selection)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4, help="frames per call (CPU); CUDA uses 4x this")
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--nets", default="vgg,alex", help="LPIPS trunks to time")
    ap.add_argument("--setting", default="DV8x16x16", help="Cosmos setting for the tokenizer's cost")
    ap.add_argument("--checkpoints", default=None, help="real Cosmos checkpoints (default: tiny stand-ins)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, frames {args.width}x{args.height}"
    )
    for dev in devices:
        t = args.frames * (4 if dev.type == "cuda" else 1)
        a_np = rng.integers(0, 256, (t, args.height, args.width, 3), dtype=np.uint8)
        b_np = np.clip(a_np.astype(np.int16) + rng.integers(-12, 13, a_np.shape), 0, 255).astype(np.uint8)
        a, b = torch.from_numpy(a_np).to(dev), torch.from_numpy(b_np).to(dev)
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
        print(f"\n[{name}] {t} frames per call")
        rows = [
            ("PSNR (exact int SSE)", lambda a=a, b=b: psnr_frames(a, b)),
            ("SSIM (skimage-equal)", lambda a=a, b=b: ssim_frames(a, b)),
        ]
        if not args.no_lpips:
            for net in args.nets.split(","):
                lp = LPIPS.with_random_trunk(net, device=dev)
                rows.append((f"LPIPS {net} (random trunk)", lambda a=a, b=b, lp=lp: lp(a, b)))
            vm_lp = LPIPS.with_random_trunk(args.nets.split(",")[0], device=dev)

            def whole(a=a, b=b, lp=vm_lp, dev=dev) -> None:
                vm = VideoMetrics(lpips=lp, device=dev)
                vm.update(a, b)
                vm.summary()

            rows.append((f"VideoMetrics ({args.nets.split(',')[0]})", whole))
        for label, fn in rows:
            per = _time(fn, dev, args.repeat) / t
            print(f"  {label:30s} {per * 1e3:9.2f} ms/frame")
        tok_label, tok_per = _tokenizer_cost(args, dev, a_np[:1])
        print(f"  {tok_label:30s} {tok_per * 1e3:9.2f} ms/frame   (encode + decode, 17-frame window)")
        if args.checkpoints is None and dev.type == "cpu":
            print("  (real-size models on a 2-core CPU, measured: CV8x16x16 ~2,400 ms/frame, DV4x8x8 ~10,000 ms/frame "
                  "at 720p)")
        if dev.type == "cpu":
            try:
                from skimage.metrics import structural_similarity
            except ImportError:
                continue
            n = min(t, 2)
            t0 = time.perf_counter()
            ref = [
                structural_similarity(
                    a_np[i].astype(np.float32), b_np[i].astype(np.float32), data_range=255, channel_axis=-1
                )
                for i in range(n)
            ]
            sk = (time.perf_counter() - t0) / n
            d = np.max(np.abs(ssim_frames(a_np[:n], b_np[:n]).numpy() - np.array(ref, dtype=np.float64)))
            print(
                f"  {'skimage SSIM (reference)':30s} {sk * 1e3:9.2f} ms/frame   max |ours - skimage| = {d:.2e}"
            )


def _tokenizer_cost(args: argparse.Namespace, dev: torch.device, frame: np.ndarray) -> tuple[str, float]:
    """Seconds per frame of Cosmos encode + decode of one 17-frame window on ``dev``."""
    import tempfile
    from pathlib import Path

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

    return label, _time(run, dev, 1) / 17


if __name__ == "__main__":
    main()
