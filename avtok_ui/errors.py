"""User-facing errors. Every message is one line that names the file (or setting) and the problem.

The CLI prints ``error: <message>`` and exits non-zero; the app shows the message. No tracebacks.
"""

from __future__ import annotations


class AvtokError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is one line."""


class MediaError(AvtokError):
    """A source video/audio file that cannot be read (missing, not a video, truncated, no frames...)."""


class CheckpointError(AvtokError):
    """Model weights that cannot be found or loaded."""


class TokenFileError(AvtokError):
    """A token file that is missing, malformed or of an unknown version."""


class Cancelled(AvtokError):
    """The run was cancelled by the user (Ctrl-C or the app's Cancel button)."""


_USELESS_LINES = (
    "The following operation failed in the TorchScript interpreter.",
    "Traceback of TorchScript",
)


def one_line(exc: BaseException | str) -> str:
    """The one-line form of any error: the last meaningful line of its message, without a
    ``RuntimeError:``-style prefix (the one formatter the CLI, the app and every module use).

    TorchScript errors start with "The following operation failed in the TorchScript interpreter." and a
    serialized-code traceback; the actual cause is the last line.
    """
    text = exc if isinstance(exc, str) else str(exc)
    if not isinstance(exc, str) and isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    lines = [ln.strip() for ln in text.splitlines()]
    good = [
        ln for ln in lines
        if ln and not ln.startswith(_USELESS_LINES) and not set(ln) <= set("~^ ")
        and not ln.endswith("<--- HERE") and not ln.startswith("File \"")
    ]
    line = good[-1] if good else (lines[0] if lines else type(exc).__name__)
    for prefix in ("RuntimeError: ", "NotImplementedError: ", "builtins.RuntimeError: ", "torch.jit.Error: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return line or type(exc).__name__
