#!/usr/bin/env python3
"""Regenerate requirements.txt (what a Hugging Face Space installs) from pyproject.toml's dependencies.

    python scripts/gen_requirements.py           # write requirements.txt
    python scripts/gen_requirements.py --check   # exit 1 if requirements.txt is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "# Generated from pyproject.toml [project] dependencies by scripts/gen_requirements.py -- do not edit by hand.\n"
    "# Hugging Face Spaces install this file (app_file: app.py). Regenerate: python scripts/gen_requirements.py\n"
)


def dependencies(pyproject: Path) -> list[str]:
    text = pyproject.read_text()
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # Python 3.10: the [project] dependencies array, read with a regex
        m = re.search(r"^\[project\].*?^dependencies\s*=\s*\[(.*?)\]", text, re.S | re.M)
        if not m:
            raise SystemExit(f"{pyproject}: no [project] dependencies found") from None
        return re.findall(r"[\"']([^\"']+)[\"']", m.group(1))
    return list(tomllib.loads(text)["project"]["dependencies"])


def render(deps: list[str]) -> str:
    return HEADER + "".join(f"{d}\n" for d in deps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check that requirements.txt is up to date")
    p.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    p.add_argument("--out", type=Path, default=ROOT / "requirements.txt")
    args = p.parse_args(argv)
    want = render(dependencies(args.pyproject))
    have = args.out.read_text() if args.out.exists() else None
    if args.check:
        if have != want:
            print(f"{args.out.name} is out of date: run python scripts/gen_requirements.py", file=sys.stderr)
            return 1
        return 0
    if have != want:
        args.out.write_text(want)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
