"""glibc heap policy of the engine's processes: keep window buffers for reuse, or trim them back to the OS.

Window-sized buffers (a 17-frame 720p window is 47 MB as uint8, 94 MB as bf16) are allocated and freed for
every window. This module is imported by the CLI before torch, so it stays free of heavy imports.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

_HEAP_KEPT = False

#: Windows between two trims of a run (:func:`trim_after_window`; memory stays flat, see benchmarks/README.md).
TRIM_EVERY = 8


#: glibc's malloc settings of :func:`keep_heap` (one arena, mmap threshold 512 MiB, trim threshold 1 GiB).
_ARENA_MAX, _MMAP_THRESHOLD, _TRIM_THRESHOLD = 1, 512 << 20, 1 << 30


def _keep_wanted() -> bool:
    """Linux/glibc and not ``AVTOK_HEAP=trim``."""
    return sys.platform.startswith("linux") and os.environ.get("AVTOK_HEAP", "keep").lower() != "trim"


def heap_env() -> dict[str, str]:
    """Environment for a process that will run the engine and is started by something else (a Ray worker):
    :func:`keep_heap`'s settings as ``GLIBC_TUNABLES``, read by glibc when the process starts. Needed where
    the process has threads before the engine's code runs: ``mallopt`` then comes too late for them (threads
    that already allocated keep their own arenas, whose window-sized buffers are mapped and faulted in again
    every window; measured in Ray's tokenizer workers). Empty with ``AVTOK_HEAP=trim``, off Linux, or when the
    caller's environment already sets ``GLIBC_TUNABLES`` (theirs is kept)."""
    if not _keep_wanted() or "GLIBC_TUNABLES" in os.environ:
        return {}
    return {"GLIBC_TUNABLES": f"glibc.malloc.arena_max={_ARENA_MAX}:glibc.malloc.mmap_threshold={_MMAP_THRESHOLD}"
                              f":glibc.malloc.trim_threshold={_TRIM_THRESHOLD}"}


def keep_heap() -> bool:
    r"""Configure glibc's malloc for a process that runs the engine (the CLI, the app, a dataset worker call
    this; a library user's process is left alone): one arena, window-sized buffers from the heap rather than
    fresh ``mmap``\ s, no trimming. Freed window buffers are then reused by the next window instead of being
    unmapped and faulted in again: a 60 s 720p GPU-speed run took 17-25% less CPU and 60% less kernel time,
    for ~20% more peak RSS that stays flat in video length (benchmarks/README.md). ``AVTOK_HEAP=trim`` keeps
    glibc's defaults (then :func:`trim_heap` returns freed buffers to the OS every few windows). Returns
    whether the settings took effect (Linux/glibc only). Threads that allocated before this call keep their
    own arenas: call it first thing, or start the process with :func:`heap_env`."""
    global _HEAP_KEPT
    if _HEAP_KEPT:
        return True
    if not _keep_wanted():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        ok = (libc.mallopt(m_arena_max, _ARENA_MAX) == 1 and libc.mallopt(m_mmap_threshold, _MMAP_THRESHOLD) == 1
              and libc.mallopt(m_trim_threshold, _TRIM_THRESHOLD) == 1)
    except (OSError, AttributeError):
        return False
    _HEAP_KEPT = ok
    return ok


def trim_heap() -> None:
    """Return freed window buffers to the OS (glibc keeps them otherwise and RSS grows with video length).
    A no-op after :func:`keep_heap` (the buffers are then kept on purpose, for reuse)."""
    if _HEAP_KEPT:
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def trim_after_window(index: int) -> None:
    """:func:`trim_heap` after every :data:`TRIM_EVERY`-th window (``index`` counts from 0): often enough for
    flat memory; not after every window, since each trim makes the next windows fault their buffers in again."""
    if index % TRIM_EVERY == TRIM_EVERY - 1:
        trim_heap()
