"""Per-backend encode + decode time of one window, per source frame, for every diffusers VAE setting
(and optionally Cosmos 0.1 tiny stand-ins for scale).

    .venv/bin/python benchmarks/bench_backends.py                       # tiny configs, 320x180, 9 frames
    .venv/bin/python benchmarks/bench_backends.py --size 1280x720 --frames 17
    .venv/bin/python benchmarks/bench_backends.py --full --size 1280x720 --device cuda   # published
                                                                      # architectures, random weights

``--full`` builds each class with its default config (the published architecture; Wan 2.2 with its 2.2
config) and random weights: timings are real, reconstructions are not. Prints one line per backend:
encode s, decode s, ms per source frame (encode+decode), peak memory where measurable, and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avtok_ui.backends import DIFFUSERS_SETTINGS, parse_setting  # noqa: E402
from avtok_ui.backends.diffusers_vae import DiffusersVAETokenizer  # noqa: E402
from avtok_ui.testing.tiny_diffusers import TINY_CONFIGS, make_tiny_vae  # noqa: E402

#: Config overrides that turn a class default into the published Wan 2.2 VAE (the others are the defaults).
FULL_OVERRIDES = {
    "Wan2.2-4x16x16": dict(base_dim=160, decoder_base_dim=256, z_dim=48, is_residual=True, in_channels=12,
                           out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                           latents_mean=[0.0] * 48, latents_std=[1.0] * 48),
}


def build(name: str, full: bool, device: str, dtype: torch.dtype) -> DiffusersVAETokenizer:
    import diffusers

    s = parse_setting(name)
    if full:
        vae = getattr(diffusers, s.diffusers_class)(**FULL_OVERRIDES.get(name, {})).eval()
    else:
        vae = make_tiny_vae(s)
    diffusers.utils.logging.set_verbosity_error()  # "modules that should be kept in float32: []"
    vae.to(device=device, dtype=dtype)
    return DiffusersVAETokenizer(s, vae, device=torch.device(device), dtype=dtype, config=dict(vae.config))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="320x180", help="WxH of the synthetic window (default 320x180)")
    p.add_argument("--frames", type=int, default=9, help="source frames in the window (default 9)")
    p.add_argument("--full", action="store_true", help="published architectures (random weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--settings", default=",".join(s.name for s in DIFFUSERS_SETTINGS))
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    dtype = torch.float32 if a.dtype == "fp32" else torch.bfloat16
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (a.frames, h, w, 3), dtype=np.uint8)
    print(f"# {a.frames} frames {w}x{h}, {'full-size' if a.full else 'tiny'} configs, {a.device} {a.dtype}, "
          f"torch threads {torch.get_num_threads()}, loadavg {os.getloadavg()[0]:.2f}")
    print(f"{'setting':>20} {'params':>10} {'latent':>22} {'enc s':>8} {'dec s':>8} {'ms/frame':>9} {'peak MiB':>9}")
    for name in a.settings.split(","):
        tok = build(name, a.full, a.device, dtype)
        n_par = sum(t.numel() for t in tok.vae.parameters())
        best_e = best_d = float("inf")
        for _ in range(a.repeats):
            if a.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            z = tok.encode_window(frames)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            tok.decode_window(z, a.frames, h, w)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            best_e, best_d = min(best_e, t1 - t0), min(best_d, t2 - t1)
        peak = (torch.cuda.max_memory_allocated() / 2**20 if a.device.startswith("cuda")
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(f"{name:>20} {n_par:>10,} {str(list(z.shape)):>22} {best_e:>8.2f} {best_d:>8.2f} "
              f"{1000 * (best_e + best_d) / a.frames:>9.1f} {peak:>9.0f}")
        del tok, z
    print(f"# loadavg at end {os.getloadavg()[0]:.2f}; tiny configs: {', '.join(TINY_CONFIGS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
