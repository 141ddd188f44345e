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
