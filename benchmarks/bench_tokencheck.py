"""Cost of validating a token file (issue 11): schema checks + the streamed value scan, and its peak memory.

Writes synthetic token files (random DV ids / CV latents, 720p grid, 17-frame windows) of about ``--mb`` MB
of visual tokens, then, each in a fresh process, times ``validate`` (first scan, then the cached re-check)
and reports the process's peak RSS beside the file size. Prints a table; checks nothing.

    .venv/bin/python benchmarks/bench_tokencheck.py --mb 64 512
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import avtok_ui.tokens  # torch: imported before timing (every reader has it loaded)
from avtok_ui.tokencheck import validate
t0 = time.perf_counter(); validate(sys.argv[1]); t1 = time.perf_counter(); validate(sys.argv[1]); t2 = time.perf_counter()
print(json.dumps({"first_s": t1 - t0, "cached_s": t2 - t1,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_file(path: Path, setting_name: str, mb: float) -> None:
    import numpy as np
    import torch

    from avtok_ui.settings import VisualSetting
    from avtok_ui.tokens import TokenFileWriter, TokenMeta

    s = VisualSetting.parse(setting_name)
    height, width, window = 720, 1280, 17
    h, w = s.latent_grid(height, width)
    per_window = s.latents_for_window(window) * h * w * s.bytes_per_token
    n_windows = max(1, math.ceil(mb * 1e6 / per_window))
    g = torch.Generator().manual_seed(0)
    meta = TokenMeta(setting=s.name, tokenizer=s.hub_id, window=window, latent_shape=[],
                     source={"file": "synthetic.mp4", "width": width, "height": height, "fps": "25/1",
                             "time_base": "1/25", "n_frames": n_windows * window, "duration_s": n_windows * window / 25},
                     padding={"width": width, "height": height})
    with TokenFileWriter(path, s) as tw:
        for _ in range(n_windows):
            t = s.latents_for_window(window)
            tok = (torch.randint(0, 64000, (1, t, h, w), generator=g, dtype=torch.int32) if s.discrete
                   else torch.randn(1, 16, t, h, w, generator=g))
            tw.add_window(tok, window)
        tw.finish(meta, np.arange(n_windows * window, dtype=np.int64))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[64, 512], help="visual tokens per file, MB")
    ap.add_argument("--settings", nargs="+", default=["DV8x16x16", "CV4x8x8"])
    args = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[:3]}")
    print(f"{'setting':>10} {'file MB':>8} {'validate s':>10} {'GB/s':>6} {'cached s':>9} {'peak RSS MB':>11}")
    with tempfile.TemporaryDirectory(prefix="avtok-bench-check-") as d:
        for name in args.settings:
            for mb in args.mb:
                path = Path(d) / f"{name}-{mb:g}.safetensors"
                write_file(path, name, mb)
                size = path.stat().st_size
                env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(Path(__file__).parents[1])))
                out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                                     env=env, check=True)
                r = json.loads(out.stdout)
                print(f"{name:>10} {size / 1e6:>8.0f} {r['first_s']:>10.3f} {size / 1e9 / r['first_s']:>6.2f} "
                      f"{r['cached_s']:>9.4f} {r['peak_rss_mb']:>11.0f}")
                path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
