"""The one place that chooses and validates the compute device (CLI, app, engine, metrics, backends)."""

from __future__ import annotations

from typing import Any

from .errors import AvtokError


class DeviceError(AvtokError, ValueError):
    """An unknown device name, or CUDA asked for where there is none (one user-facing line)."""


def cuda_available() -> bool:
    """True when torch sees a CUDA device (a broken torch install counts as "no CUDA")."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def default_device() -> Any:
    """``torch.device("cuda")`` when available, else ``torch.device("cpu")``."""
    import torch

    return torch.device("cuda" if cuda_available() else "cpu")


def resolve_device(device: Any = None) -> Any:
    """``None``/``""``/``"auto"`` -> :func:`default_device`; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a
    ``torch.device`` -> that device, checked (:class:`DeviceError` if unknown or CUDA is missing)."""
    import torch

    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        return default_device()
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"device must be cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if dev.type == "cuda" and not cuda_available():
        raise DeviceError(f"device {str(device)!r} requested but CUDA is not available on this machine (use cpu)")
    return dev


def device_name(device: Any = None) -> str:
    """:func:`resolve_device` as a string (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    return str(resolve_device(device))
