"""Speed vs size of the reconstruction encoder (media.VideoWriter) per x264 preset at one CRF.

    .venv/bin/python benchmarks/bench_x264.py                      # 720p and 320x240, CRF 18, 2 repeats
    .venv/bin/python benchmarks/bench_x264.py --presets veryfast medium --repeat 3

Content: the frames of ``assets/bigbuckbunny.mp4`` (1280x720, 132 frames) decoded once into memory, and the
same frames resized to 320x240 (PyAV, bilinear), each also "smoothed" (downscaled 4x and back up: closer to a
tokenizer's reconstruction, which is blurrier than the source). Each measurement writes all frames through
``VideoWriter`` (RGB -> yuv420p BT.709 conversion included, as in the pipeline; x264 threads: its default)
into a temporary file; the fastest of ``--repeat`` runs is kept (runs interleaved by preset). Also printed:
file size relative to ``medium`` and PSNR (dB) of the decoded file against the frames given to the writer.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from avtok_ui.media import VideoWriter, read_video_frames

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


def _resize(frames: np.ndarray, w: int, h: int) -> np.ndarray:
    out = np.empty((len(frames), h, w, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        out[i] = av.VideoFrame.from_ndarray(f, format="rgb24").to_ndarray(format="rgb24", width=w, height=h)
    return out


def _smooth(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    return _resize(_resize(frames, w // 4, h // 4), w, h)


def _psnr(path: Path, ref: np.ndarray) -> float:
    got = np.stack(list(read_video_frames(path)))[: len(ref)].astype(np.float64)
    mse = float(np.mean((got - ref.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _encode(frames: np.ndarray, preset: str, crf: int, path: Path) -> float:
    t0 = time.perf_counter()
    with VideoWriter(path, frames.shape[2], frames.shape[1], 25, crf=crf, preset=preset) as vw:
        vw.write(frames)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--frames", type=int, default=132, help="frames of the clip to use (max 132)")
    args = p.parse_args()

    src = np.stack(list(read_video_frames(ROOT / "assets" / "bigbuckbunny.mp4")))[: args.frames]
    small = _resize(src, 320, 240)
    contents = {"720p source": src, "720p smoothed": _smooth(src),
                "320x240 source": small, "320x240 smoothed": _smooth(small)}
    print(f"load average at start: {open('/proc/loadavg').read().split()[:3]}; {len(src)} frames; "
          f"crf {args.crf}; cpus {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="avtok-x264-") as tmp:
        for name, frames in contents.items():
            best: dict[str, float] = {}
            size: dict[str, int] = {}
            quality: dict[str, float] = {}
            for _ in range(args.repeat):
                for preset in args.presets:
                    path = Path(tmp) / f"{preset}.mp4"
                    best[preset] = min(best.get(preset, 1e9), _encode(frames, preset, args.crf, path))
                    size[preset] = path.stat().st_size
                    quality[preset] = _psnr(path, frames)
            ref = size.get("medium", max(size.values()))
            print(f"\n{name} ({frames.shape[2]}x{frames.shape[1]}, {len(frames)} frames)")
            print("| preset | ms/frame | fps | size KiB | size vs medium | PSNR dB |")
            print("|---|---|---|---|---|---|")
            for preset in args.presets:
                ms = 1000 * best[preset] / len(frames)
                print(f"| {preset} | {ms:.1f} | {1000 / ms:.0f} | {size[preset] / 1024:.0f} | "
                      f"{size[preset] / ref:.2f} | {quality[preset]:.2f} |", flush=True)
    print(f"\nload average at end: {open('/proc/loadavg').read().split()[:3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
