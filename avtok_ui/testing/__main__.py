"""Build tiny random-weight stand-ins laid out like real checkpoints (for demos without weights).

    python -m avtok_ui.testing --out /tmp/tiny-ckpt
    AVTOK_CHECKPOINTS=/tmp/tiny-ckpt avtok tokenize assets/bigbuckbunny.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..settings import DAC_WEIGHTS_NAME
from .tiny_cosmos import build_all_tiny_cosmos
from .tiny_dac import build_tiny_dac
from .tiny_diffusers import build_all_tiny_diffusers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m avtok_ui.testing", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder to use as AVTOK_CHECKPOINTS")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    build_all_tiny_cosmos(args.out)
    build_tiny_dac(args.out / "dac" / DAC_WEIGHTS_NAME, seed=args.seed)
    build_all_tiny_diffusers(args.out, seed=args.seed)  # <repo name>/vae/ for the six diffusers VAEs
    print(f"tiny random-weight checkpoints written to {args.out} (NOT real models: plumbing only)")
    print(f"use: export AVTOK_CHECKPOINTS={args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
