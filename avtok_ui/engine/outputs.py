"""Atomic outputs: every file of a run is written into a hidden staging folder next to its destination and
renamed into place only when the whole run succeeded; ``abort`` (any error, Ctrl-C, cancel) removes it all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import AvtokError


class Staging:
    """Hidden folders next to each destination; ``commit`` renames files into place, ``abort`` removes all."""

    def __init__(self) -> None:
        self._dirs: dict[Path, Path] = {}
        self._planned: list[tuple[Path, Path]] = []
        self._stale: list[Path] = []
        self._created: list[Path] = []

    def path_for(self, final: Path) -> Path:
        final = Path(final)
        parent = final.parent.resolve()
        if parent not in self._dirs:
            missing = [p for p in (parent, *parent.parents) if not p.exists()]
            try:
                parent.mkdir(parents=True, exist_ok=True)
                self._created.extend(missing)  # deepest first: removed on abort if still empty
                self._dirs[parent] = Path(tempfile.mkdtemp(prefix=".avtok-staging-", dir=parent))
            except OSError as err:
                raise AvtokError(f"{parent}: output folder is not writable ({err.strerror or err})") from None
        tmp = self._dirs[parent] / final.name
        self._planned.append((tmp, parent / final.name))
        return tmp

    def scratch(self, folder: Path, name: str) -> Path:
        """A temporary file in ``folder``'s staging area that is deleted, never committed."""
        self.path_for(Path(folder) / name)
        self._planned.pop()
        return self._dirs[Path(folder).resolve()] / name

    def replaces(self, final: Path) -> None:
        """``final`` is an output of a previous run under the same name that this run does not produce:
        it is deleted at commit, so a re-run never mixes old and new files."""
        self._stale.append(Path(final))

    def commit(self) -> None:
        for tmp, final in self._planned:
            if tmp.exists():
                os.chmod(tmp, 0o644)
                os.replace(tmp, final)
        for old in self._stale:
            old.unlink(missing_ok=True)
        self._created.clear()
        self.abort()

    def abort(self) -> None:
        for d in self._dirs.values():
            shutil.rmtree(d, ignore_errors=True)
        self._dirs.clear()
        for d in self._created:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty
        self._created.clear()
