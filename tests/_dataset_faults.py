"""Driver for tests/test_dataset_jobs.py: runs ``avtok dataset`` (the real CLI, ``avtok_ui.cli.main``) with
faults injected into the tokenizer workers, by the input's file name:

* ``raise_once*``: the first ``pipeline.tokenize`` call raises an unexpected RuntimeError, the retry succeeds;
* ``raise_always*``: every call raises it;
* ``crash_once*``: the first call kills the worker process (``os._exit``), the restarted worker succeeds;
* ``crash_always*``: every call kills the worker process.

The faults reach the Ray worker processes through the job's ``runtime_env`` (a ``worker_process_setup_hook``,
as ``benchmarks/bench_dataset.py`` uses it): no hook in product code. This file runs as ``__main__``, so Ray
pickles :func:`inject_faults` by value. Usage: ``python _dataset_faults.py <avtok dataset arguments>``.
"""

from __future__ import annotations

import sys


def inject_faults() -> None:
    """Runs at the start of every Ray worker process: wraps ``avtok_ui.pipeline.tokenize``."""
    import os
    from pathlib import Path

    import avtok_ui.pipeline as pipeline

    real = pipeline.tokenize
    calls: dict[str, int] = {}

    def tokenize(source, *args, **kwargs):
        name = Path(source).name
        calls[name] = calls.get(name, 0) + 1
        if name.startswith("raise_always") or (name.startswith("raise_once") and calls[name] == 1):
            raise RuntimeError(f"injected fault in call {calls[name]}")
        if name.startswith(("crash_once", "crash_always")):
            marker = Path(source).parent / f".{name}.crashes"  # counts crashes across worker processes
            n = len(marker.read_text()) if marker.exists() else 0
            if name.startswith("crash_always") or n == 0:
                marker.write_text("x" * (n + 1))
                os._exit(17)
        return real(source, *args, **kwargs)

    pipeline.tokenize = tokenize


def main(argv: list[str]) -> int:
    import avtok_ui.dataset.job as job
    from avtok_ui.cli import main as avtok

    run_job = job.run_job

    def run_with_faults(opts):
        opts.runtime_env = {"worker_process_setup_hook": inject_faults}
        return run_job(opts)

    job.run_job = run_with_faults
    return avtok(["dataset", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
