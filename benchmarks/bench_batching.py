"""Several temporal windows per model call (``--windows-per-call``): how much do the tokens change, and
how much faster is it?

bf16 convolutions may pick other kernels (and so round differently) for a batch of windows than for one
window, so batching is off by default (tokens identical to one window per call). This prints, per
setting, the share of DV ids that differ and the largest CV latent difference against one window per call,
plus the wall time of both. Uses the tiny random-weight stand-ins unless ``--checkpoints DIR`` points at
real Cosmos folders.

    .venv/bin/python benchmarks/bench_batching.py [--seconds 4] [--size 256] [--per-call 4]
                                                  [--settings CV8x16x16 DV8x16x16] [--checkpoints DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from avtok_ui.pipeline import RunConfig, load_models, tokenize
from avtok_ui.settings import VisualSetting
from avtok_ui.tokens import load_tokens


def _clip(path: Path, seconds: float, size: int) -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _synth import make_video

    return make_video(path, width=size, height=size, n_frames=int(seconds * 25), fps=25, audio=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--per-call", type=int, default=4)
    ap.add_argument("--settings", nargs="+", default=["CV8x16x16", "DV8x16x16", "DV4x8x8"])
    ap.add_argument("--checkpoints", default=None)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.checkpoints is None:
            from avtok_ui.testing.tiny_cosmos import build_all_tiny_cosmos

            build_all_tiny_cosmos(tmp / "ckpt")
            os.environ["AVTOK_CHECKPOINTS"] = str(tmp / "ckpt")
            kind = "tiny random-weight stand-ins"
        else:
            os.environ["AVTOK_CHECKPOINTS"] = args.checkpoints
            kind = f"checkpoints in {args.checkpoints}"
        src = _clip(tmp / "clip.mp4", args.seconds, args.size)
        print(f"# {args.seconds:g} s {args.size}x{args.size} 25 fps, window 17, {kind}; "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"{'setting':<11} {'per call':>8} {'wall s':>7} {'DV ids differ':>14} {'max |CV diff|':>14}")
        for name in args.settings:
            setting = VisualSetting.parse(name)
            base = None
            for k in (1, args.per_call):
                cfg = RunConfig(setting=setting, codebooks=0, device=args.device, tokens_only=True,
                                windows_per_call=k)
                models = load_models(cfg, need_audio=False)
                t0 = time.perf_counter()
                res = tokenize(src, tmp / f"{name}-{k}", None, "x", cfg, models=models)
                wall = time.perf_counter() - t0
                vis = load_tokens(res.tokens).visual
                if base is None:
                    base = vis
                    print(f"{name:<11} {k:>8} {wall:>7.2f} {'-':>14} {'-':>14}")
                    continue
                if setting.discrete:
                    diff = f"{(vis != base).float().mean().item():.4%}"
                    cv = "-"
                else:
                    diff = "-"
                    cv = f"{(vis.float() - base.float()).abs().max().item():.3g}"
                print(f"{name:<11} {k:>8} {wall:>7.2f} {diff:>14} {cv:>14}")
                torch.cuda.empty_cache() if torch.cuda.is_available() else None


if __name__ == "__main__":
    main()
