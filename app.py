"""avtok-ui Gradio app: ``python app.py`` (also the Hugging Face Space entry point).

Environment (all optional; see docs/SPACE.md):

* ``AVTOK_CHECKPOINTS`` -- folder with ``Cosmos-0.1-Tokenizer-<SETTING>/{encoder,decoder}.jit`` and
  ``dac/weights_44khz_8kbps_0.0.1.pth`` (read by the engine); ``AVTOK_ALLOW_DOWNLOAD=1`` fetches missing
  weights from the Hub on first use (default on a Space, off elsewhere).
* ``AVTOK_HOST`` / ``GRADIO_SERVER_NAME`` (default 127.0.0.1), ``AVTOK_PORT`` / ``GRADIO_SERVER_PORT``
  (default 7860).
* limits: ``AVTOK_MAX_UPLOAD_MB`` (500), ``AVTOK_MAX_DURATION_S`` (120 s per run), ``AVTOK_MAX_SOURCE_S``
  (3600), ``AVTOK_MAX_SIDE`` (1920 px); service: ``AVTOK_MODEL_CACHE_GB``, ``AVTOK_CONCURRENT_RUNS``,
  ``AVTOK_KEEP_RUNS``, ``AVTOK_RUN_ROOT``, ``AVTOK_GPU_DURATION_S`` (ZeroGPU).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from anywhere without installing


def _env(*names: str, default: str | None = None) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.py", description="avtok-ui: the reconstruction inspector (Gradio)")
    p.add_argument("--host", default=_env("AVTOK_HOST", "GRADIO_SERVER_NAME", default="127.0.0.1"),
                   help="interface to listen on (env AVTOK_HOST or GRADIO_SERVER_NAME; default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(_env("AVTOK_PORT", "GRADIO_SERVER_PORT", default="7860")),
                   help="port (env AVTOK_PORT or GRADIO_SERVER_PORT; default 7860)")
    p.add_argument("--checkpoints", default=None,
                   help="checkpoint folder (default: $AVTOK_CHECKPOINTS, then the Hugging Face cache)")
    p.add_argument("--allow-download", action="store_true", default=None,
                   help="download missing weights from the Hub on first use (env AVTOK_ALLOW_DOWNLOAD)")
    p.add_argument("--max-upload-mb", type=float, default=None, help="upload limit (env AVTOK_MAX_UPLOAD_MB)")
    p.add_argument("--max-duration", type=float, default=None,
                   help="longest clip per run in seconds, 0 = none (env AVTOK_MAX_DURATION_S)")
    p.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    return p.parse_args(argv)


def create_app(**overrides):
    """Build the app, its launch arguments and its service: ``(demo, launch_kwargs, service)``."""
    from avtok_ui.service import AppConfig, Service
    from avtok_ui.ui import build_app, launch_kwargs

    overrides = {k: v for k, v in overrides.items() if v is not None}
    service = Service(AppConfig.from_env(**overrides))
    demo = build_app(service)
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo, launch_kwargs(service), service


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (Spaces, Docker, systemd) ends the app like Ctrl-C: Gradio closes the server and the
    ``atexit`` handlers run, so the per-process run folder is removed."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    from avtok_ui.engine.heap import keep_heap

    keep_heap()  # this process runs the engine: reuse window buffers (see avtok_ui.engine.heap)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        demo, kwargs, service = create_app(
            checkpoint_dir=args.checkpoints, allow_download=args.allow_download,
            max_upload_mb=args.max_upload_mb, max_duration_s=args.max_duration,
        )
        summary = service.missing_summary()
        if summary:  # the console says what the page's banner says
            print(f"[avtok-ui] {summary}", file=sys.stderr, flush=True)
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, **kwargs)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the server was up: no traceback
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
