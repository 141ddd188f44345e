"""The job's inputs: a folder, a glob or a manifest -> a sorted list of :class:`InputItem` with stable keys.

* folder: every file with a video extension below it (recursive, hidden files and folders skipped);
* glob: ``videos/**/*.mp4`` (``**`` recursive); keys come from the path below the glob's fixed prefix;
* manifest: ``.csv``, ``.jsonl`` or ``.parquet`` with a ``path`` column and optional ``start_s``,
  ``duration_s`` and ``key``. Relative paths resolve against the manifest's folder.

A key is ``<slug>-<hash8>``: the slug is the path relative to INPUT without its extension, with every
character outside ``[A-Za-z0-9_-]`` replaced by ``_`` and folders joined by ``__`` (readable, no dots or
slashes, so WebDataset splits ``<key>.<ext>`` right); the hash is the first 8 hex digits of SHA-1 over the
relative path and the trim, so two inputs never share a key and re-runs (and other tools) derive the same one.
Pure Python: no Ray, no torch, no media decoding.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import AvtokError

#: File extensions treated as videos when INPUT is a folder.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv",
     ".wmv", ".3gp", ".ogv"})
MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".parquet")
_KEY_OK = re.compile(r"^[A-Za-z0-9_-]+$")
_SLUG_MAX = 80


@dataclass(frozen=True)
class InputItem:
    """One video to tokenize. ``path`` is absolute; ``rel`` is what the key derives from."""

    key: str
    path: str
    rel: str
    start_s: float = 0.0
    duration_s: float | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def make_key(rel: str, start_s: float = 0.0, duration_s: float | None = None) -> str:
    """Stable key of an input: readable slug of ``rel`` (extension dropped) + 8 hex digits of a hash of
    ``rel`` and the trim. Same inputs -> same key, on any machine (``rel`` uses ``/``)."""
    rel = rel.replace(os.sep, "/").lstrip("/")
    stem = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
    slug = "__".join(re.sub(r"[^A-Za-z0-9_-]+", "_", part).strip("_") or "_" for part in stem.split("/"))
    trim = f"{float(start_s):g}:{'' if duration_s is None else f'{float(duration_s):g}'}"
    digest = hashlib.sha1(f"{rel}|{trim}".encode()).hexdigest()[:8]
    return f"{slug[:_SLUG_MAX]}-{digest}"


def collect_inputs(spec: str | Path, *, start_s: float = 0.0, duration_s: float | None = None) -> list[InputItem]:
    """Resolve INPUT to its videos (sorted by key). ``start_s``/``duration_s``: the trim of inputs that do
    not give their own (manifest columns win). Raises :class:`AvtokError` (one line) for a bad INPUT."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        items = _from_folder(path, start_s, duration_s)
        what = f"{text}: no video files in this folder (looked for {', '.join(sorted(VIDEO_EXTENSIONS)[:6])}, ...)"
    elif path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
        items = _from_manifest(path, start_s, duration_s)
        what = f"{text}: the manifest lists no videos"
    elif path.is_file():
        items = [_item(path.resolve(), path.name, start_s, duration_s)]
        what = ""
    elif glob.has_magic(text):
        items = _from_glob(text, start_s, duration_s)
        what = f"{text}: the pattern matches no files"
    else:
        raise AvtokError(f"{text}: no such folder, manifest or file")
    if not items:
        raise AvtokError(what)
    seen: dict[str, InputItem] = {}
    for it in items:
        if it.key in seen:
            raise AvtokError(f"{text}: {it.rel} is listed twice with the same trim (key {it.key})")
        seen[it.key] = it
    return sorted(items, key=lambda it: it.key)


def _item(path: Path, rel: str, start_s: float, duration_s: float | None, key: str | None = None) -> InputItem:
    return InputItem(key=key or make_key(rel, start_s, duration_s), path=str(path), rel=rel.replace(os.sep, "/"),
                     start_s=float(start_s), duration_s=None if duration_s is None else float(duration_s))


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _from_folder(root: Path, start_s: float, duration_s: float | None) -> list[InputItem]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.suffix.lower() in VIDEO_EXTENSIONS and not _hidden(rel) and p.is_file():
            out.append(_item(p.resolve(), rel.as_posix(), start_s, duration_s))
    return out


def _from_glob(pattern: str, start_s: float, duration_s: float | None) -> list[InputItem]:
    parts = Path(pattern).parts
    fixed = [p for p in parts[:next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
    base = Path(*fixed) if fixed else Path(".")
    out = []
    for hit in glob.glob(pattern, recursive=True):
        p = Path(hit)
        if p.is_file():
            out.append(_item(p.resolve(), p.relative_to(base).as_posix(), start_s, duration_s))
    return out


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="") as f:
                return list(csv.DictReader(f))
        if suffix == ".jsonl":
            rows = []
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as err:
                            raise AvtokError(f"{path}: line {n} is not JSON ({err.msg})") from None
                        if not isinstance(row, dict):
                            raise AvtokError(f"{path}: line {n} is not a JSON object")
                        rows.append(row)
            return rows
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    except AvtokError:
        raise
    except Exception as err:  # noqa: BLE001 -- unreadable manifest: one line
        raise AvtokError(f"{path}: not a readable {suffix[1:]} manifest ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]})") from None


def _number(row: dict[str, Any], name: str, path: Path, n: int) -> float | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise AvtokError(f"{path}: row {n}: {name} must be a number of seconds, got {value!r}") from None
    if math.isnan(x):
        return None
    return x


def _from_manifest(path: Path, start_s: float, duration_s: float | None) -> list[InputItem]:
    rows = _read_manifest(path)
    if rows and "path" not in rows[0]:
        raise AvtokError(f"{path}: the manifest has no 'path' column (columns: {', '.join(map(str, rows[0]))})")
    base = path.resolve().parent
    out = []
    for n, row in enumerate(rows, 1):
        raw = row.get("path")
        if raw is None or not str(raw).strip():
            raise AvtokError(f"{path}: row {n} has an empty path")
        rel = str(raw).strip()
        src = Path(rel).expanduser()
        src = src if src.is_absolute() else base / src
        s = _number(row, "start_s", path, n)
        d = _number(row, "duration_s", path, n)
        s = start_s if s is None else s
        d = duration_s if d is None else d
        if s < 0 or (d is not None and d <= 0):
            raise AvtokError(f"{path}: row {n}: start_s must be >= 0 and duration_s > 0")
        key = row.get("key")
        key = None if key is None or not str(key).strip() else str(key).strip()
        if key is not None and not _KEY_OK.match(key):
            raise AvtokError(f"{path}: row {n}: key {key!r} may only hold letters, digits, '_' and '-'")
        out.append(_item(src.resolve(), rel, s, d, key))
    return out
