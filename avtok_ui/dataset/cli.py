"""``avtok dataset INPUT OUT``: the sub-command's options and its printout (the work is in :mod:`.job`).

Exit status: 0 every input succeeded, 3 some inputs failed (listed in ``summary.json`` and the index),
1 job-level error (bad INPUT, OUT not writable, missing weights), 130 interrupted (complete shards kept:
run the same command again to finish).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AvtokError

EXIT_INTERRUPTED = 130


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``dataset`` on the ``avtok`` sub-command parser."""
    from ..cli import _add_run_options

    d = sub.add_parser(
        "dataset", help="a folder / glob / manifest of videos -> sharded token dataset (Ray Data, resumable)",
        description="Tokenize many videos into WebDataset shards (OUT/shards/*.tar), an index (index.parquet), "
                    "a summary (summary.json) and quality checks on a sample (OUT/qa/). Runs a local Ray by "
                    "default; re-run the same command to resume. Exit 0 all ok, 3 some inputs failed.")
    d.add_argument("input", metavar="INPUT",
                   help="a folder (recursive), a glob ('videos/**/*.mp4') or a manifest (.csv/.jsonl/.parquet "
                        "with a 'path' column and optional start_s, duration_s, key)")
    d.add_argument("out", metavar="OUT", help="dataset folder (created; resumed if it holds a previous run)")
    d.add_argument("--workers", type=int, default=None, metavar="N",
                   help="tokenizer actors (default: one per GPU, else 1)")
    d.add_argument("--gpus-per-worker", type=float, default=None, metavar="F",
                   help="GPUs per actor, fractional for small models (default 1 where GPUs exist, else 0)")
    d.add_argument("--cpus-per-worker", type=float, default=None, metavar="F",
                   help="CPUs reserved per actor (default: the CPUs less one, shared by the workers)")
    d.add_argument("--address", default=None, metavar="ADDR",
                   help="join an existing Ray cluster (auto, host:port or ray://host:port) instead of "
                        "starting a local one")
    d.add_argument("--shard-size", default="1GB", metavar="SIZE", help="close a shard at this size (default 1GB)")
    d.add_argument("--qa-fraction", type=float, default=0.02, metavar="F",
                   help="fraction of inputs also reconstructed and scored into OUT/qa/ (default 0.02)")
    d.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N inputs (by key)")
    d.add_argument("--retries", type=int, default=1, metavar="N",
                   help="retries of a video whose worker crashed or hit an internal error (default 1)")
    _add_run_options(d)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import _config
    from .job import JobOptions, run_job
    from .shards import parse_size

    try:
        shard_size = parse_size(args.shard_size)
    except ValueError as err:
        raise AvtokError(f"--shard-size: {err}") from None
    opts = JobOptions(input=args.input, out=Path(args.out), config=_config(args), workers=args.workers,
                      gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                      address=args.address, shard_size=shard_size, qa_fraction=args.qa_fraction,
                      limit=args.limit, retries=args.retries, quiet=args.quiet)
    try:
        result = run_job(opts)
    except KeyboardInterrupt:
        print(f"error: interrupted; complete shards are kept in {args.out}: run the same command again to "
              "finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    s = result.summary
    print(f"{s['ok']} of {s['inputs']} inputs ok, {s['failed']} failed; {s['hours_of_video']:.3f} h of video, "
          f"{s['total_tokens']:,} tokens ({s['visual_tokens']:,} visual + {s['audio_tokens']:,} audio) in "
          f"{s['shards']} shards")
    if s["processed_this_run"]:
        print(f"this run: {s['processed_this_run']} inputs in {s['wall_s']:.1f} s, "
              f"{s['hours_of_video_per_hour']:.2f} h of video per hour, {s['tokens_per_second']:,.0f} tokens/s")
    for f in s["failed_inputs"]:
        err = f["error"] if f["error"].startswith(Path(f["source"]).name) else f"{f['source']}: {f['error']}"
        print(f"failed: {err}", file=sys.stderr)
    print(f"dataset: {args.out}")
    return result.exit_code
