"""The tokenizer worker: a callable class that Ray Data runs as an actor pool.

One instance loads the models once (``pipeline.load_models``) and tokenizes many videos, one row at a time.
Each row in is an input (``key``, ``path``, ``start_s``, ``duration_s``, ``qa``); each row out carries the
result *as bytes* (the token file, its JSON record and, for QA samples, the reconstruction mp4 and metrics
JSON), so the driver can write shards even when the worker runs on another machine of a Ray cluster.

A bad input (any :class:`~avtok_ui.errors.AvtokError`: not a video, truncated, no frames...) is a
``failed`` row with its one-line reason. Any other exception is retried ``retries`` times in the worker,
then becomes a ``failed`` row too. A worker process that dies is restarted by Ray and its video retried
(``max_task_retries``); see :mod:`avtok_ui.dataset.job`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import AvtokError
from ..metrics import json_safe


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


def sample_record(tokens_path: Path, item: dict[str, Any]) -> dict[str, Any]:
    """The ``<key>.json`` of a sample: its index columns, the token file's metadata and readouts."""
    from ..readouts import token_readouts
    from ..tokens import load_tokens

    tf = load_tokens(tokens_path, visual=False)
    m = tf.meta
    _, t, h, w = m.latent_shape[:4]
    clip = m.clip
    duration = float(clip.get("duration_s") or m.source.get("duration_s") or 0.0)
    width, height = int(m.padding["width"]), int(m.padding["height"])
    src_bytes = m.source.get("file_size")
    if src_bytes and m.source.get("duration_s"):
        src_bytes = int(src_bytes * min(1.0, duration / m.source["duration_s"]))
    readouts = token_readouts(tf, tokens_path.stat().st_size, src_bytes, duration, width, height)
    return {
        "key": item["key"], "source": item["path"], "rel": item["rel"], "start_s": item["start_s"],
        "trim_duration_s": item["duration_s"], "status": "ok", "error": None,
        "frames": int(tf.window_frames.sum()), "duration_s": duration, "width": width, "height": height,
        "visual_tokens": int(t * h * w), "audio_tokens": int(tf.audio_codes.numel()) if tf.audio_codes is not None else 0,
        "bytes": tokens_path.stat().st_size, "setting": m.setting, "window": m.window,
        "readouts": readouts, "meta": dataclasses.asdict(m),
    }


def _qa_scores(report: dict[str, Any]) -> dict[str, Any]:
    v = report.get("video_metrics") or {}
    a = report.get("audio_metrics") or {}
    return {"qa_psnr": v.get("psnr"), "qa_ssim": v.get("ssim"), "qa_lpips": v.get("lpips"),
            "qa_audio_si_sdr_db": a.get("si_sdr_db")}


class TokenizeWorker:
    """Ray Data callable class: ``__init__`` loads the models, ``__call__`` tokenizes one input row."""

    def __init__(self, config: Any, retries: int = 1, threads: int = 1) -> None:
        import torch

        from ..engine.heap import keep_heap
        from ..pipeline import load_models

        keep_heap()  # a worker process runs the engine for many videos: reuse window buffers
        torch.set_num_threads(max(1, int(threads)))
        self.config = config
        self.retries = max(0, int(retries))
        self.models = load_models(config, need_audio=config.codebooks > 0)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._tmp = Path(tempfile.mkdtemp(prefix="avtok-dataset-"))

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from ..pipeline import tokenize

        item = dict(row)
        qa = bool(item.get("qa"))
        key = item["key"]
        out: dict[str, Any] = {"key": key, "status": "failed", "error": None, "worker": self.worker,
                               "attempts": 0, "seconds": 0.0, "tokens": b"", "record": b"", "qa_video": b"",
                               "qa_metrics": b""}
        cfg = dataclasses.replace(self.config, start_s=float(item["start_s"] or 0.0),
                                  duration_s=item["duration_s"], metrics=qa and self.config.metrics)
        t0 = time.perf_counter()
        work = Path(tempfile.mkdtemp(dir=self._tmp))
        try:
            for attempt in range(1, self.retries + 2):
                out["attempts"] = attempt
                try:
                    # the tokens-only path (no decoder); the QA sample runs the full path as `avtok tokenize`
                    result = tokenize(item["path"], work, work, key, cfg, models=self.models, tokens_only=not qa)
                except AvtokError as err:  # a bad input: deterministic, not retried
                    out["error"] = _one_line(str(err))
                    return out
                except Exception as err:  # noqa: BLE001 -- unexpected: retried, then a failed row
                    out["error"] = f"internal error ({type(err).__name__}: {_one_line(str(err))})"
                    continue
                record = sample_record(Path(result.tokens), item)
                record.update(worker=self.worker, attempts=attempt, qa=qa)
                record["seconds"] = out["seconds"] = time.perf_counter() - t0
                if qa:
                    record.update(_qa_scores(result.report))
                    out["qa_video"] = Path(result.video).read_bytes()
                    if result.metrics_json is not None:
                        out["qa_metrics"] = Path(result.metrics_json).read_bytes()
                out.update(status="ok", error=None, tokens=Path(result.tokens).read_bytes(),
                           record=json.dumps(json_safe(record), default=str).encode())
                return out
            return out
        finally:
            out["seconds"] = time.perf_counter() - t0
            shutil.rmtree(work, ignore_errors=True)
