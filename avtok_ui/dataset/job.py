"""The dataset job's driver: inputs -> Ray Data actor pool of tokenizers -> shards, index, summary, QA.

::

    collect_inputs ─► skip keys already in complete shards ─► ray.data.from_items (one block per video)
        ─► .map(TokenizeWorker, concurrency=workers)    actors: models loaded once, many videos each
        ─► driver: iter_rows ─► ShardWriter (atomic shards) ─► index.parquet per finished shard
                             └► qa/<key>_reconstructed.mp4 + _metrics.json for the QA sample

Ray is embedded by default (``ray.init`` of a private local instance with this machine's CPUs, no
dashboard, shut down at the end); ``address`` joins an existing cluster instead. Job-level problems (bad
INPUT, OUT not writable, missing weights, another job writing to OUT) raise :class:`AvtokError` before any
work starts. Ctrl-C / SIGTERM close the open shard (every sample in it is whole) and stop; a SIGKILL loses
only the open shard, whose inputs the next run redoes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.heap import heap_env
from ..errors import AvtokError
from .inputs import InputItem, collect_inputs
from .shards import (
    QA_DIR,
    SUMMARY_NAME,
    ShardWriter,
    complete_shards,
    index_row,
    scan_shards,
    write_index,
    write_json,
)

EXIT_OK = 0
EXIT_SOME_FAILED = 3
JOB_FILE = "job.json"
LOCK_FILE = ".avtok-dataset.lock"


@dataclass
class JobOptions:
    """Everything ``avtok dataset`` takes. ``config`` is a :class:`avtok_ui.pipeline.RunConfig` (its trim is
    the default trim of inputs that give none)."""

    input: str
    out: Path
    config: Any
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float | None = None
    address: str | None = None
    shard_size: int = 1_000_000_000
    qa_fraction: float = 0.02
    limit: int | None = None
    retries: int = 1
    quiet: bool = False
    #: extra Ray ``runtime_env`` for the workers (Python API), e.g. ``{"env_vars": {...}}`` or a
    #: ``worker_process_setup_hook`` (the benchmark registers its GPU-speed stand-in ops that way)
    runtime_env: dict[str, Any] | None = None


@dataclass
class JobResult:
    summary: dict[str, Any]
    exit_code: int
    interrupted: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: when each result reached the driver (seconds after the pool started), in arrival order
    result_times_s: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------
# checks before any work
# ----------------------------------------------------------------------------------------------------
def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".avtok-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise AvtokError(f"{out}: output folder is not writable ({err.strerror or err})") from None


def _check_weights(config: Any) -> None:
    """The same resolution (and one-line messages) as ``avtok tokenize`` (``pipeline.load_models``)."""
    from ..checkpoints import require_weights

    require_weights(config.setting, config.checkpoint_dir, config.dac_weights, need_dac=config.codebooks > 0,
                    allow_download=config.allow_download)


def _job_identity(config: Any) -> dict[str, Any]:
    """Options that change the tokens: a resumed job must use the same."""
    return {"setting": config.setting.name, "window": config.window, "codebooks": config.codebooks,
            "max_side": config.max_side}


def _check_identity(out: Path, config: Any) -> None:
    path = out / JOB_FILE
    want = _job_identity(config)
    if path.is_file():
        have = json.loads(path.read_text())
        diff = [f"{k} {have.get(k)} (now {v})" for k, v in want.items() if have.get(k) != v]
        if diff and complete_shards(out):
            raise AvtokError(f"{out}: holds a dataset made with {', '.join(diff)}: use another OUT folder or "
                             "the same options to resume it")
    write_json(path, want)


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    import fcntl

    with open(out / LOCK_FILE, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AvtokError(f"{out}: another avtok dataset job is writing to this folder") from None
        yield


class _Interrupts:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt in the main thread, except inside :meth:`deferred`
    blocks (a shard member being written), where they are held until the block ends."""

    def __init__(self) -> None:
        self.critical = False
        self.pending = False

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.critical:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        try:
            old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def reclaim(self) -> None:
        """Take SIGINT/SIGTERM back after a library (``ray.init``) installed its own handlers."""
        with contextlib.suppress(ValueError):
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, self._handler)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.critical = True
        try:
            yield
        finally:
            self.critical = False
            if self.pending:
                self.pending = False
                raise KeyboardInterrupt


_INTERRUPTS = _Interrupts()


def qa_keys(keys: list[str], fraction: float) -> set[str]:
    """The QA sample: the ``ceil(fraction * n)`` keys with the smallest SHA-1 (stable, spread out)."""
    if fraction <= 0 or not keys:
        return set()
    n = min(len(keys), math.ceil(fraction * len(keys)))
    return set(sorted(keys, key=lambda k: hashlib.sha1(k.encode()).hexdigest())[:n])


# ----------------------------------------------------------------------------------------------------
# Ray
# ----------------------------------------------------------------------------------------------------
def _start_ray(address: str | None, runtime_env: dict[str, Any] | None = None) -> None:
    import logging

    debug = bool(os.environ.get("AVTOK_DEBUG"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not debug:  # Ray's C++ core logs warnings about its own internals on stderr
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if address:
        _check_reachable(address)
    import ray

    common = {"logging_level": logging.INFO if debug else logging.ERROR, "log_to_driver": debug,
              "configure_logging": True}
    try:
        env = dict(runtime_env or {})
        # the workers' malloc settings from their first instruction (Ray's own threads allocate before the
        # worker's __init__ can call keep_heap): measured, window buffers are otherwise faulted in every window
        env_vars = dict(env.get("env_vars") or {})
        for k, v in heap_env().items():
            env_vars.setdefault(k, v)
        if env_vars:
            env["env_vars"] = env_vars
        with contextlib.nullcontext() if debug else _native_stderr_silenced():
            if address:  # the cluster's nodes get this avtok_ui (their Python needs its dependencies)
                import avtok_ui

                env.setdefault("py_modules", [str(Path(avtok_ui.__file__).parent)])
                ray.init(address=address, runtime_env=env, **common)
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                         runtime_env=env or None, **common)
    except Exception as err:  # noqa: BLE001 -- cannot start or reach Ray: a job-level error
        what = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
        raise AvtokError(f"cannot {what} ({type(err).__name__}: {_last_line(err)})") from None
    _quiet_ray_loggers()


#: Seconds to wait for a TCP connection to an explicit cluster address before giving up.
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """An explicit ``host:port`` or ``ray://host:port`` must accept a TCP connection within
    :data:`CONNECT_TIMEOUT_S`, else a one-line error: Ray itself retries an unreachable cluster for minutes
    without a word (measured: still waiting after 2 minutes). ``auto`` is left to Ray (it fails at once)."""
    import socket

    target = address.strip()
    if "://" in target:
        scheme, target = target.split("://", 1)
        if scheme != "ray":
            return  # another client scheme: Ray's own check
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto", a bare host...: Ray's own resolution and errors
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        if isinstance(err, TimeoutError):
            reason = f"no answer within {CONNECT_TIMEOUT_S:g} s"
        else:
            reason = err.strerror or type(err).__name__
        raise AvtokError(f"cannot join the Ray cluster at {address} ({reason})") from None


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 (native code writes there, not to ``sys.stderr``) while Ray starts: its C++
    core prints "logging.cc: Set ray log level from environment variable ..." in this process even when told
    to log only fatal errors, as the first line a user of ``avtok dataset`` would see. A failure still reaches
    the user as the exception's one-line message (``AVTOK_DEBUG=1`` shows everything)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover - no fd 2 to save: nothing to silence
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _quiet_ray_loggers() -> None:
    """Ray and Ray Data log INFO/WARNING lines about their own machinery: errors only (AVTOK_DEBUG=1: all)."""
    import logging

    if os.environ.get("AVTOK_DEBUG"):
        return
    for name in [n for n in logging.root.manager.loggerDict if n == "ray" or n.startswith("ray.")]:
        logging.getLogger(name).setLevel(logging.ERROR)
    # a video that killed its worker is logged there as an ERROR with a traceback; the job reports it
    # itself, as a failed row with one line
    logging.getLogger("ray.data._internal.execution.streaming_executor_state").setLevel(logging.CRITICAL)


def _last_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__


def plan_workers(cpus: float, gpus: float, workers: int | None, gpus_per_worker: float | None,
                 cpus_per_worker: float | None) -> tuple[int, float, float]:
    """``(workers, cpus_per_worker, gpus_per_worker)`` for a cluster with ``cpus``/``gpus``.

    Default: one worker per GPU where GPUs exist, else one. CPUs per worker default to what is left after
    one CPU for the driver and Ray Data's own tasks, shared by the workers (at least 0.25): on a 2-CPU
    machine two workers get 0.5 each, so they cannot starve the tasks that feed them.
    """
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if gpus >= 1 else 0.0
    if gpus_per_worker < 0:
        raise AvtokError(f"--gpus-per-worker must be >= 0, got {gpus_per_worker:g}")
    if gpus_per_worker > 0 and gpus_per_worker > gpus:
        raise AvtokError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has {gpus:g} GPUs")
    if workers is None:
        workers = max(1, int(gpus // gpus_per_worker)) if gpus_per_worker > 0 else 1
    if workers < 1:
        raise AvtokError(f"--workers must be at least 1, got {workers}")
    if gpus_per_worker > 0 and workers * gpus_per_worker > gpus + 1e-9:
        raise AvtokError(f"{workers} workers x {gpus_per_worker:g} GPUs need more than the cluster's {gpus:g}")
    if cpus_per_worker is None:
        cpus_per_worker = max(0.25, (cpus - 1) / workers) if cpus > 1 else 0.25
    return workers, float(cpus_per_worker), float(gpus_per_worker)


# ----------------------------------------------------------------------------------------------------
# the job
# ----------------------------------------------------------------------------------------------------
class _Progress:
    """Videos done / total, hours of video, tokens per second, failures (tqdm on stderr)."""

    def __init__(self, total: int, initial: int, quiet: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="video", desc="dataset", file=sys.stderr,
                        dynamic_ncols=True, disable=True if quiet else None)
        self.t0 = time.perf_counter()
        self.seconds_of_video = 0.0
        self.tokens = 0
        self.failed = 0

    def update(self, row: dict[str, Any]) -> None:
        if row["status"] == "ok":
            self.seconds_of_video += row.get("duration_s") or 0.0
            self.tokens += (row.get("visual_tokens") or 0) + (row.get("audio_tokens") or 0)
        else:
            self.failed += 1
        wall = max(1e-9, time.perf_counter() - self.t0)
        self.bar.set_postfix_str(f"{self.seconds_of_video / 3600:.3f} h video, {self.tokens / wall:,.0f} tok/s, "
                                 f"{self.failed} failed", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_job(opts: JobOptions) -> JobResult:
    """Run (or resume) the dataset job; returns the summary and the exit code (0 all ok, 3 some failed).

    Raises :class:`AvtokError` for job-level problems, KeyboardInterrupt when interrupted (after saving
    what is complete)."""
    t_start = time.perf_counter()
    config = opts.config
    if not 0 <= opts.qa_fraction <= 1:
        raise AvtokError(f"--qa-fraction must be between 0 and 1, got {opts.qa_fraction:g}")
    if opts.retries < 0:
        raise AvtokError(f"--retries must be >= 0, got {opts.retries}")
    items = collect_inputs(opts.input, start_s=config.start_s, duration_s=config.duration_s)
    if opts.limit is not None:
        items = items[:max(0, opts.limit)]
    out = Path(opts.out).expanduser()
    _check_out(out)
    _check_weights(config)
    with _lock(out), _INTERRUPTS.installed():
        _check_identity(out, config)
        return _run(opts, items, out, t_start)


def _run(opts: JobOptions, items: list[InputItem], out: Path, t_start: float) -> JobResult:
    done_rows, next_shard = scan_shards(out)
    done = {r["key"] for r in done_rows}
    pending = [it for it in items if it.key not in done]
    qa = qa_keys([it.key for it in items], opts.qa_fraction)
    failed_rows: list[dict[str, Any]] = []
    writer = ShardWriter(out, opts.shard_size, next_shard)
    open_rows: list[dict[str, Any]] = []
    progress = _Progress(len(items), len(items) - len(pending), opts.quiet)
    run = {"processed": 0, "ok": 0, "failed": 0, "seconds_of_video": 0.0, "tokens": 0, "worker_seconds": 0.0}
    interrupted = False
    plan: dict[str, Any] = {}
    arrivals: list[float] = []  # when each result reached this process (JobResult.result_times_s)

    def shard_done(name: str | None) -> None:
        if name is None:
            return
        for r in open_rows:
            r["shard"] = name
        done_rows.extend(open_rows)
        open_rows.clear()
        write_index(out, done_rows + failed_rows)

    results: Any = None
    try:
        if pending:
            by_key = {it.key: it for it in pending}
            results = _execute(opts, pending, qa, plan, arrivals)
            for result in results:
                item = by_key.pop(result["key"], None)
                if item is None:  # a retried task that came back twice: keep the first
                    continue
                row = _result_row(result, item, out)
                run["processed"] += 1
                run["worker_seconds"] += result.get("seconds") or 0.0
                if row["status"] == "ok":
                    run["ok"] += 1
                    run["seconds_of_video"] += row["duration_s"] or 0.0
                    run["tokens"] += row["visual_tokens"] + row["audio_tokens"]
                    with _INTERRUPTS.deferred():  # a shard member is never cut in half by Ctrl-C
                        open_rows.append(row)
                        shard_done(writer.add(item.key, {"safetensors": result["tokens"], "json": result["record"]}))
                else:
                    run["failed"] += 1
                    failed_rows.append(row)
                progress.update(row)
            for item in by_key.values():  # lost with its worker more often than --retries allows
                row = _failed_row(item, f"the tokenizer worker died on it {opts.retries + 1} times "
                                        "(crash or out of memory)", attempts=opts.retries + 1)
                failed_rows.append(row)
                run["processed"] += 1
                run["failed"] += 1
                progress.update(row)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        shard_done(writer.close())  # every sample in the open shard is whole: keep it
        if results is not None:
            with contextlib.suppress(Exception):
                results.close()  # end the Ray Data iteration before Ray itself
        _stop_ray()
    rows = done_rows + failed_rows
    write_index(out, rows)
    wall = time.perf_counter() - t_start
    summary = _summary(rows, run, wall, opts, plan, interrupted, n_inputs=len(items))
    write_json(out / SUMMARY_NAME, summary)
    _write_qa_summary(out, rows)
    if interrupted:
        raise KeyboardInterrupt
    code = EXIT_SOME_FAILED if any(r["status"] == "failed" for r in rows) else EXIT_OK
    return JobResult(summary=summary, exit_code=code, rows=rows, result_times_s=arrivals)


def _execute(opts: JobOptions, pending: list[InputItem], qa: set[str], plan: dict[str, Any],
             arrivals: list[float]) -> Iterator[dict[str, Any]]:
    """Run the actor pool over ``pending``; yields one result row per input as workers finish them (their
    arrival times go into ``arrivals``)."""
    t0 = time.perf_counter()
    _start_ray(opts.address, opts.runtime_env)
    _INTERRUPTS.reclaim()
    plan["ray_start_s"] = time.perf_counter() - t0
    import warnings

    import ray
    from ray.data import ActorPoolStrategy, DataContext

    from .worker import TokenizeWorker

    _quiet_ray_loggers()

    res = ray.cluster_resources()
    workers, cpus, gpus = plan_workers(res.get("CPU", 1.0), res.get("GPU", 0.0), opts.workers,
                                       opts.gpus_per_worker, opts.cpus_per_worker)
    plan.update(workers=workers, cpus_per_worker=cpus, gpus_per_worker=gpus, ray=opts.address or "local",
                cluster_cpus=res.get("CPU", 0.0), cluster_gpus=res.get("GPU", 0.0))
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.enable_auto_log_stats = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False
    ctx.max_errored_blocks = len(pending)  # a video that kills its worker every time is a failed row
    rows = [it.to_row() | {"qa": it.key in qa} for it in pending]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    remote: dict[str, Any] = {"num_cpus": cpus, "max_restarts": -1, "max_task_retries": opts.retries}
    if gpus > 0:
        remote["num_gpus"] = gpus
    # one video in flight per actor: a worker that dies takes only its own video with it (with more in
    # flight, the videos queued behind it died too and used up their retries without ever running)
    pool = ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)
    with warnings.catch_warnings():  # max_restarts/max_task_retries have no named parameter yet
        warnings.simplefilter("ignore")
        ds = ds.map(TokenizeWorker, fn_constructor_kwargs={"config": opts.config, "retries": opts.retries,
                                                            "threads": max(1, int(cpus))},
                    compute=pool, **remote)
    t0 = time.perf_counter()
    try:
        with _prompt_dispatch():
            yield from _rows_timed(ds, plan, arrivals, t0)
        plan["pool_s"] = time.perf_counter() - t0  # every video done
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 -- the pool could not run at all (e.g. workers cannot load models)
        raise AvtokError(f"the tokenizer workers failed ({type(err).__name__}: {_last_line(err)})") from None


#: How long Ray Data's executor waits for running tasks before it looks again (its default is 0.1 s).
DISPATCH_WAIT_S = 0.02


@contextlib.contextmanager
def _prompt_dispatch() -> Iterator[None]:
    """Ray Data's executor waits (``ray.wait``) for *all* running tasks, up to 0.1 s, before it hands out more
    work; with one video in flight per worker, a worker that finishes while others are busy idles up to that
    long before its next video. Measured with 2 workers (16 x 4 s clips, GPU-speed stand-ins): the next video
    started 0.13-0.19 s after a result (0.02 s with one worker); at 0.02 s the two workers' rate rose ~8%,
    with no more driver CPU (0.01 s: a third more). Lowered for this job only (a private constant of the pinned
    Ray; tests/test_dataset_jobs.py checks that it still exists), then restored."""
    try:
        from ray.data._internal.execution import streaming_executor_state as ses
    except ImportError:  # pragma: no cover - another Ray layout: keep its default
        yield
        return
    old = getattr(ses, "WAIT_FOR_TASK_COMPLETION_TIMEOUT_S", None)
    if not isinstance(old, (int, float)):  # pragma: no cover
        yield
        return
    ses.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S = min(float(old), DISPATCH_WAIT_S)
    try:
        yield
    finally:
        ses.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S = old


def _rows_timed(ds: Any, plan: dict[str, Any], arrivals: list[float], t0: float) -> Iterator[dict[str, Any]]:
    """The pool's result rows, noting when each arrived (seconds after ``t0``) in ``arrivals`` and the first
    and the last in ``plan``."""
    for row in ds.iter_rows():
        now = time.perf_counter() - t0
        plan.setdefault("first_result_s", now)  # actors started, models loaded, first video done
        plan["last_result_s"] = now
        arrivals.append(now)
        yield row


def _stop_ray() -> None:
    with contextlib.suppress(Exception):
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _failed_row(item: InputItem, error: str, *, attempts: int = 1, worker: str | None = None,
                seconds: float = 0.0) -> dict[str, Any]:
    return index_row({"key": item.key, "source": item.path, "rel": item.rel, "start_s": item.start_s,
                      "trim_duration_s": item.duration_s, "status": "failed", "error": error,
                      "worker": worker, "attempts": attempts, "seconds": seconds}, None)


def _result_row(result: dict[str, Any], item: InputItem, out: Path) -> dict[str, Any]:
    if result["status"] != "ok":
        return _failed_row(item, result["error"] or "unknown error", attempts=result.get("attempts") or 1,
                           worker=result.get("worker"), seconds=result.get("seconds") or 0.0)
    record = json.loads(result["record"])
    if result.get("qa_video"):
        qa_dir = out / QA_DIR
        qa_dir.mkdir(exist_ok=True)
        from .shards import _write_atomic

        _write_atomic(qa_dir / f"{item.key}_reconstructed.mp4", result["qa_video"])
        if result.get("qa_metrics"):
            _write_atomic(qa_dir / f"{item.key}_metrics.json", result["qa_metrics"])
    return index_row(record, None)


def _summary(rows: list[dict[str, Any]], run: dict[str, Any], wall: float, opts: JobOptions,
             plan: dict[str, Any], interrupted: bool, n_inputs: int) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] == "failed"]
    video_s = sum(r["duration_s"] or 0.0 for r in ok)
    visual = sum(r["visual_tokens"] or 0 for r in ok)
    audio = sum(r["audio_tokens"] or 0 for r in ok)
    return {
        "inputs": len(rows), "ok": len(ok), "failed": len(failed), "complete": not interrupted and
        len(rows) >= n_inputs,
        "failed_inputs": [{"key": r["key"], "source": r["source"], "error": r["error"]} for r in failed],
        "hours_of_video": video_s / 3600, "visual_tokens": visual, "audio_tokens": audio,
        "total_tokens": visual + audio, "tokens_per_second_of_video": (visual + audio) / video_s if video_s else None,
        "token_bytes": sum(r["bytes"] or 0 for r in ok),
        "shards": len({r["shard"] for r in ok}),
        "setting": opts.config.setting.name, "window": opts.config.window, "codebooks": opts.config.codebooks,
        # this run (a resumed job counts only what it did itself)
        "wall_s": wall, "processed_this_run": run["processed"],
        "hours_of_video_this_run": run["seconds_of_video"] / 3600,
        "hours_of_video_per_hour": run["seconds_of_video"] / wall if wall else None,
        "tokens_per_second": run["tokens"] / wall if wall else None,
        "worker_seconds": run["worker_seconds"],
        "interrupted": interrupted,
        **({"workers": plan} if plan else {}),
    }


def _quantiles(values: list[float]) -> dict[str, float] | None:
    import numpy as np

    vals = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if not len(vals):
        return None
    q = np.quantile(vals, [0.0, 0.1, 0.5, 0.9, 1.0])
    return {"n": int(len(vals)), "min": float(q[0]), "p10": float(q[1]), "p50": float(q[2]), "p90": float(q[3]),
            "max": float(q[4]), "mean": float(vals.mean())}


def _write_qa_summary(out: Path, rows: list[dict[str, Any]]) -> None:
    qa = [r for r in rows if r["status"] == "ok" and r["qa"]]
    if not qa:
        return
    (out / QA_DIR).mkdir(exist_ok=True)
    write_json(out / QA_DIR / SUMMARY_NAME, {
        "samples": len(qa), "keys": [r["key"] for r in qa],
        "psnr_db": _quantiles([r["qa_psnr"] for r in qa]), "ssim": _quantiles([r["qa_ssim"] for r in qa]),
        "lpips": _quantiles([r["qa_lpips"] for r in qa]),
        "audio_si_sdr_db": _quantiles([r["qa_audio_si_sdr_db"] for r in qa]),
        "note": "per video: the same metrics `avtok tokenize` reports (<key>_metrics.json here); "
                "quantiles over the QA sample",
    })
