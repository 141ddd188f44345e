"""Launch the Gradio app in-process on 127.0.0.1 (a free port) for the app and browser tests."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Gradio caches uploads under one shared folder by content hash (default <tmp>/gradio): a test app of another
# process on the same machine, closing with the same synthetic clip cached, could delete our copy mid-test
# ("alpha.mp4: file not found"). Each test process gets its own folder.
if not os.environ.get("GRADIO_TEMP_DIR"):
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="avtok-test-gradio-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_app(checkpoints: Path | None, run_root: Path, **overrides: Any):
    """Yield ``(url, service)`` for an app whose models come from ``checkpoints`` (None: the engine's
    default search); the server is closed afterwards."""
    from avtok_ui.service import AppConfig, Service
    from avtok_ui.ui import build_app, launch_kwargs

    cfg = AppConfig(
        checkpoint_dir=str(checkpoints) if checkpoints else None,
        dac_weights=str(checkpoints) if checkpoints else None,
        allow_download=False, run_root=str(run_root), keep_runs=overrides.pop("keep_runs", 8),
        default_lpips="off", **overrides,
    )
    service = Service(cfg)
    demo = build_app(service)
    demo.queue(default_concurrency_limit=4)
    port = free_port()
    kwargs = launch_kwargs(service)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield f"http://127.0.0.1:{port}/", service
    finally:
        demo.close()
        service.runs.cleanup()
