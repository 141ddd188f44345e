#!/usr/bin/env python3
"""Regenerate requirements.txt (what a Hugging Face Space installs) from pyproject.toml's dependencies
plus the optional extras a Space needs (EXTRAS: ``lpips``).

    python scripts/gen_requirements.py           # write requirements.txt
    python scripts/gen_requirements.py --check   # exit 1 if requirements.txt is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: optional-dependency groups a Space installs too (local bootstraps install them --no-deps themselves)
EXTRAS = ("lpips",)
HEADER = (
    "# Generated from pyproject.toml [project] dependencies + extras "
    + ", ".join(EXTRAS) + " by scripts/gen_requirements.py -- do not edit by hand.\n"
    "# Hugging Face Spaces install this file (app_file: app.py). Regenerate: python scripts/gen_requirements.py\n"
)


def _array(text: str, section: str, key: str) -> list[str]:
    """Python 3.10 (no tomllib): the strings of ``key = [...]`` in ``[section]``, read with a regex
    (comments dropped)."""
    m = re.search(rf"^\[{re.escape(section)}\][^\[]*?^{re.escape(key)}\s*=\s*\[(.*?)\]", text, re.S | re.M)
    if not m:
        raise SystemExit(f"no {key} in [{section}]")
    body = "\n".join(ln.split("#", 1)[0] for ln in m.group(1).splitlines())
    return re.findall(r"[\"']([^\"']+)[\"']", body)


def dependencies(pyproject: Path, extras: tuple[str, ...] = EXTRAS) -> list[str]:
    """``[project] dependencies`` followed by the ``extras`` groups of ``[project.optional-dependencies]``."""
    text = pyproject.read_text()
    try:
        import tomllib  # Python >= 3.11
    except ImportError:
        deps = _array(text, "project", "dependencies")
        for extra in extras:
            deps += _array(text, "project.optional-dependencies", extra)
        return deps
    project = tomllib.loads(text)["project"]
    deps = list(project["dependencies"])
    for extra in extras:
        deps += project.get("optional-dependencies", {}).get(extra, [])
    return deps


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
