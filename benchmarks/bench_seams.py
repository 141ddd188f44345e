"""Seam cost of temporal windows, per backend: PSNR at window-boundary frames vs elsewhere.

Each window is tokenized independently (causal restart: its first frame gets a latent of its own, its tail is
edge-padded to ``1 + tf*k`` frames). This script decodes a clip in windows of ``--window`` frames and, as the
seam-free reference, in one window covering the whole clip, and prints per backend:

* PSNR (pooled MSE over RGB, per frame, then averaged) at *boundary* frames (the first and last frame of every
  window except the clip's own first and last frame) and at the other (*interior*) frames, windowed;
* the same two groups in the one-window reference, and the seam cost = drop at boundary frames minus the drop
  at interior frames (windowed - reference), in dB. Negative = the windows lose more at their edges.

    .venv/bin/python benchmarks/bench_seams.py                             # tiny random-weight models
    .venv/bin/python benchmarks/bench_seams.py --checkpoints $AVTOK_CHECKPOINTS --size 640x360 --frames 65

Tiny models (the default, built once under ``--cache``) have random weights: their figures only show the script
works; real figures need ``--checkpoints`` with the published weights. Prints the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avtok_ui import media  # noqa: E402
from avtok_ui.backends import ALL_BACKEND_SETTINGS, load_tokenizer, parse_setting  # noqa: E402
from avtok_ui.service import nearest_window  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def tiny_checkpoints(cache: Path) -> Path:
    """Tiny random-weight Cosmos 0.1 stand-ins and diffusers VAEs (built once)."""
    from avtok_ui.testing.tiny_cosmos import build_all_tiny_cosmos
    from avtok_ui.testing.tiny_diffusers import build_all_tiny_diffusers

    root = cache / "tiny-checkpoints"
    stamp = root / ".built"
    if not stamp.exists():
        build_all_tiny_cosmos(root)
        build_all_tiny_diffusers(root)
        stamp.touch()
    return root


def psnr_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[T, H, W, 3]`` uint8 pairs -> ``[T]`` PSNR in dB (MSE pooled over each frame's pixels and channels)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))


def decode_in_windows(tok, path: Path, window: int, n_frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Source and reconstruction ``[n, H, W, 3]`` uint8 of the first ``n_frames`` frames, in windows."""
    src, rec = [], []
    seen = 0
    for win in media.iter_windows(path, window, size=size):
        frames = win.frames[: n_frames - seen]
        if not len(frames):
            break
        with torch.inference_mode():
            tokens = tok.encode_window(frames)
            rec.append(tok.decode_window(tokens, len(frames), frames.shape[1], frames.shape[2]))
        src.append(frames.copy())
        seen += len(frames)
        if seen >= n_frames:
            break
    return np.concatenate(src), np.concatenate(rec)


def boundary_mask(n: int, window: int) -> np.ndarray:
    """Frames next to a seam: the last frame of each window and the first of the next (not the clip's ends)."""
    mask = np.zeros(n, dtype=bool)
    for start in range(window, n, window):
        mask[start - 1] = mask[start] = True
    return mask


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(ROOT / "assets" / "bigbuckbunny.mp4"))
    p.add_argument("--size", default="256x144", help="WxH the frames are scaled to (default 256x144)")
    p.add_argument("--frames", type=int, default=49, help="frames of the clip used (default 49)")
    p.add_argument("--window", type=int, default=17, help="window (adapted per setting to 1 + tf*k; default 17)")
    p.add_argument("--settings", default="CV4x8x8,CV8x8x8,DV8x16x16," + ",".join(
        s.name for s in ALL_BACKEND_SETTINGS if s.backend == "diffusers"))
    p.add_argument("--checkpoints", default=None, help="weights folder (default: tiny random-weight models)")
    p.add_argument("--cache", default="/tmp/avtok-bench-seams")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    w, h = (int(x) for x in args.size.lower().split("x"))
    ckpt = Path(args.checkpoints) if args.checkpoints else tiny_checkpoints(Path(args.cache))
    torch.manual_seed(0)
    print(f"# {Path(args.video).name}, {args.frames} frames at {w}x{h}, weights: "
          f"{'tiny random' if not args.checkpoints else ckpt}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'setting':<20} {'win':>4} {'bound. dB':>9} {'inter. dB':>9} {'ref bound.':>10} {'ref inter.':>10} "
          f"{'seam cost dB':>12} {'s':>6}")
    for name in [x.strip() for x in args.settings.split(",") if x.strip()]:
        s = parse_setting(name)
        window = nearest_window(s, args.window)
        whole = nearest_window(s, args.frames)
        whole = whole if whole >= args.frames else whole + s.temporal
        t0 = time.perf_counter()
        tok = load_tokenizer(s, ckpt, device=args.device, allow_download=False)
        src, rec = decode_in_windows(tok, Path(args.video), window, args.frames, (w, h))
        _, ref = decode_in_windows(tok, Path(args.video), whole, args.frames, (w, h))
        n = len(src)
        mask = boundary_mask(n, window)
        win_psnr, ref_psnr = psnr_per_frame(src, rec), psnr_per_frame(src, ref)
        b, i = win_psnr[mask].mean(), win_psnr[~mask].mean()
        rb, ri = ref_psnr[mask].mean(), ref_psnr[~mask].mean()
        cost = (b - rb) - (i - ri)
        print(f"{s.name:<20} {window:>4} {b:>9.2f} {i:>9.2f} {rb:>10.2f} {ri:>10.2f} {cost:>12.2f} "
              f"{time.perf_counter() - t0:>6.1f}")
    print(f"# load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
