"""Upload checks that run *before* an event joins the app's run queue (Gradio ``validator=``).

A run waits behind every queued run; a file that cannot be read should not. Each check here is cheap (a probe
of the video's container and the app's limits, or the token file's schema check) and turns the problem into
one line on the input it concerns, with no traceback in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import AvtokError

log = logging.getLogger("avtok_ui.app")

#: ``check(path)`` raises a one-line :class:`AvtokError` for an unusable upload
Check = Callable[[Any], object]


def upload_problem(check: Check, value: Any) -> str | None:
    """The one-line problem with an uploaded file, or ``None`` when ``check`` accepts it."""
    try:
        check(value)
    except AvtokError as err:
        msg = " ".join(str(err).split())
    except Exception as err:  # noqa: BLE001 - a check never crashes the request; the file is refused
        name = Path(str(value)).name if value else "upload"
        msg = f"{name}: cannot be read ({' '.join(str(err).split()) or type(err).__name__})"
    else:
        return None
    log.info("upload rejected before the run queue: %s", msg)
    return msg


def check_tokens(value: Any) -> None:
    """A token file upload: the full schema check of :func:`avtok_ui.tokencheck.validate`."""
    from .tokencheck import validate

    if not value:
        raise AvtokError("no token file: upload a .safetensors file written by avtok")
    validate(value)


def validator(n_inputs: int, checks: dict[int, Check]) -> Callable[..., Any]:
    """A Gradio ``validator`` for an event with ``n_inputs`` inputs: ``checks`` maps an input's position to its
    check. Returns one ``gr.validate`` per input (Gradio shows a failed one on that input and, for API
    clients, raises ``ValidationError``), so a bad file is refused without waiting for the queue."""
    import gradio as gr

    def run_checks(*args: Any, **_kwargs: Any) -> list[dict[str, Any]] | dict[str, Any]:
        out = [gr.validate(True, "") for _ in range(n_inputs)]
        for pos, check in checks.items():
            msg = upload_problem(check, args[pos] if pos < len(args) else None)
            if msg is not None:
                out[pos] = gr.validate(False, msg)
        return out[0] if n_inputs == 1 else out  # Gradio wraps a single output's value itself

    return run_checks

