"""The dataset folder on disk: WebDataset shards written atomically, the index, the summary, resume.

Layout of ``OUT``::

    shards/shard-000000.tar   per video: <key>.safetensors (an avtok token file) + <key>.json (its row)
    index.parquet             one row per input (ok rows point at their shard; failed rows carry the reason)
    summary.json              counts, hours of video, tokens, throughput; the failed inputs
    qa/                       <key>_reconstructed.mp4 + <key>_metrics.json for the QA sample, summary.json

A shard is written as ``shards/.shard-NNNNNN.tar.partial`` and renamed when it is complete, so a
``shard-*.tar`` is never partial. The shards are the ground truth: on start the job rebuilds the set of
finished keys from the ``.json`` members of the complete shards (``index.parquet`` may be one shard behind
after a SIGKILL) and removes leftover ``.partial`` files. Pure Python + pyarrow: no Ray, no torch.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SHARD_DIR = "shards"
SHARD_RE = re.compile(r"^shard-(\d{6})\.tar$")
INDEX_NAME = "index.parquet"
SUMMARY_NAME = "summary.json"
QA_DIR = "qa"

#: Columns of ``index.parquet`` (pyarrow types by name), in order.
INDEX_COLUMNS: dict[str, str] = {
    "key": "string", "source": "string", "rel": "string", "start_s": "float64", "trim_duration_s": "float64",
    "status": "string", "error": "string", "shard": "string", "frames": "int64", "duration_s": "float64",
    "width": "int64", "height": "int64", "visual_tokens": "int64", "audio_tokens": "int64", "bytes": "int64",
    "seconds": "float64", "worker": "string", "attempts": "int64", "qa": "bool_", "qa_psnr": "float64",
    "qa_ssim": "float64", "qa_lpips": "float64", "qa_audio_si_sdr_db": "float64",
}


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def parse_size(text: str | int) -> int:
    """``"1GB"``, ``"512MB"``, ``"64k"``, ``"1000"`` -> bytes (decimal units; ``GiB``/``MiB`` binary)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 1GB, 500MB)")
    base = 1024 if m.group(3) else 1000
    power = " KMGT".index(m.group(2).upper() or " ")
    return max(1, int(float(m.group(1)) * base ** power))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    _write_atomic(Path(path), (json.dumps(obj, indent=1, default=str) + "\n").encode())


class ShardWriter:
    """Appends samples to the open shard; :meth:`close` renames it to its final name.

    ``add`` returns the finished shard's name when the shard reached ``shard_size`` bytes, else None.
    """

    def __init__(self, out: Path, shard_size: int, first_index: int = 0) -> None:
        self.dir = Path(out) / SHARD_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.next_index = first_index
        self._tar: tarfile.TarFile | None = None
        self._file: Any = None
        self._partial: Path | None = None
        self.keys: list[str] = []  # keys in the open shard

    @property
    def open_name(self) -> str | None:
        return shard_name(self.next_index) if self._tar is not None else None

    def add(self, key: str, members: dict[str, bytes]) -> str | None:
        """Append ``<key>.<ext>`` for each ``ext -> bytes`` (in order)."""
        if self._tar is None:
            self._partial = self.dir / f".{shard_name(self.next_index)}.partial"
            self._file = open(self._partial, "wb")
            self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)
        now = time.time()
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), now, 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self.keys.append(key)
        if self._file.tell() >= self.shard_size:
            return self.close()
        return None

    def close(self) -> str | None:
        """Finish the open shard (if any): flush, fsync, rename. Returns its name."""
        if self._tar is None:
            return None
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        name = shard_name(self.next_index)
        os.chmod(self._partial, 0o644)
        os.replace(self._partial, self.dir / name)
        self._tar = self._file = self._partial = None
        self.next_index += 1
        self.keys = []
        return name

    def abort(self) -> None:
        """Drop the open shard (its samples are redone by the next run)."""
        if self._tar is not None:
            try:
                self._tar.close()
                self._file.close()
            finally:
                Path(self._partial).unlink(missing_ok=True)
        self._tar = self._file = self._partial = None
        self.keys = []


def complete_shards(out: Path) -> list[Path]:
    d = Path(out) / SHARD_DIR
    return sorted(p for p in d.glob("shard-*.tar") if SHARD_RE.match(p.name)) if d.is_dir() else []


def scan_shards(out: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of every sample in the complete shards (from their ``.json`` members) and the next shard
    number. Leftover ``.partial`` shards (a killed run's open shard) are deleted."""
    d = Path(out) / SHARD_DIR
    if d.is_dir():
        for p in d.glob(".shard-*.partial"):
            p.unlink(missing_ok=True)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    next_index = 0
    for shard in complete_shards(out):
        next_index = max(next_index, int(SHARD_RE.match(shard.name).group(1)) + 1)
        with tarfile.open(shard, mode="r:") as tar:
            for m in tar:
                if m.isfile() and m.name.endswith(".json"):
                    row = json.loads(tar.extractfile(m).read())
                    if row["key"] not in seen:
                        seen.add(row["key"])
                        rows.append(index_row(row, shard.name))
    return rows, next_index


def index_row(sample: dict[str, Any], shard: str | None) -> dict[str, Any]:
    """The index columns of a sample's JSON (or of a failed input's record)."""
    row = {c: sample.get(c) for c in INDEX_COLUMNS}
    row["shard"] = shard
    row["qa"] = bool(sample.get("qa"))
    return row


def write_index(out: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``index.parquet`` atomically (rows sorted by key)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: r["key"])
    schema = pa.schema([(c, getattr(pa, t)()) for c, t in INDEX_COLUMNS.items()])
    table = pa.Table.from_pylist([{c: r.get(c) for c in INDEX_COLUMNS} for r in rows], schema=schema)
    path = Path(out) / INDEX_NAME
    tmp = path.with_name(f".{path.name}.partial")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def read_index(out: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(Path(out) / INDEX_NAME).to_pylist()
