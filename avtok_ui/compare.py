"""Score any reconstruction against its original, with the same conventions as a tokenize run.

Both videos are decoded frame by frame (streaming) to uint8 RGB at native resolution; frames are paired by
index. Frame counts and sizes must match (as in TokenBench): a mismatch is an error, not a silent crop.
Audio (when both files have it) is compared at 44.1 kHz mono on the video timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import media
from .devices import resolve_device
from .engine.stages import ZipCounts, zip_chunks
from .errors import AvtokError


def _trim_text(start_s: float, duration_s: float | None) -> str:
    """How the original was trimmed, as the frame-count error says it ("has " when it was not)."""
    if not start_s and not duration_s:
        return "has "
    span = f"from {start_s:g} s" + (f" for {duration_s:g} s" if duration_s else " to its end")
    return f"trimmed {span} (--start {start_s:g}" + (f" --duration {duration_s:g}" if duration_s else "") + ") has "


def compare_videos(original: str | Path, reconstruction: str | Path, *, lpips: str = "auto",
                   device: str | None = None, batch: int = 16, start_s: float = 0.0,
                   duration_s: float | None = None, max_side: int | None = None,
                   progress: Callable[[str, float, float], None] | None = None,
                   allow_download: bool = False) -> dict[str, Any]:
    """Return ``{"video_metrics", "per_frame", "audio_metrics", "original", "reconstruction"}``.

    ``allow_download``: fetch a missing LPIPS trunk into torch's hub cache (``lpips_net.fetch_backbone``).
    """
    from .metrics import AudioMetrics, VideoMetrics

    progress = progress or (lambda s, d, t: None)
    from .pipeline import capped_size

    a_path, b_path = Path(original), Path(reconstruction)
    a_info, b_info = media.probe(a_path), media.probe(b_path)
    # the original as a trimmed / capped run saw it
    size = capped_size(a_info.width, a_info.height, max_side)
    if size is not None:
        import dataclasses

        a_info = dataclasses.replace(a_info, width=size[0], height=size[1])
    # an odd-sized source's reconstruction is padded to even for H.264 (one replicated row/column): crop it
    crop = (b_info.width - a_info.width, b_info.height - a_info.height) in ((0, 0), (0, 1), (1, 0), (1, 1))
    if not crop:
        raise AvtokError(
            f"{b_path.name}: the reconstruction is {b_info.width}x{b_info.height} but the original "
            f"{a_path.name} is {a_info.width}x{a_info.height}"
            f"{' after --max-side ' + str(max_side) if size is not None else ''}; scores need the same size"
        )
    device = resolve_device(device)
    from .pipeline import lpips_net

    if lpips != "off":
        from .lpips_net import fetch_backbone

        fetch_backbone(lpips_net(lpips, device), allow_download=allow_download)
    vm = VideoMetrics(lpips=None if lpips == "off" else "auto", lpips_net=lpips_net(lpips, device), device=device,
                      scored_on="the two files' decoded uint8 RGB frames (a reconstruction's H.264 round trip "
                                "included)")
    if size is not None:
        vm.resolution_note = f"original resized to {size[0]}x{size[1]} (--max-side) before scoring"
    ia = media.iter_windows(a_path, batch, info=media.probe(a_path), start_s=start_s, duration_s=duration_s,
                            size=size)
    ib = media.iter_windows(b_path, batch, info=b_info)
    total = max(a_info.n_frames, 1)
    counts = ZipCounts()
    done = 0
    for fa, fb in zip_chunks((w.frames for w in ia), (w.frames[:, :a_info.height, :a_info.width] for w in ib),
                             counts):
        vm.update(fa, fb)
        done += len(fa)
        progress("compare", done, total)
    n_a, n_b = counts.a, counts.b
    if n_a != n_b:
        raise AvtokError(f"{b_path.name}: the reconstruction has {n_b} frames but the original {a_path.name} "
                         f"{_trim_text(start_s, duration_s)}{n_a}; scores need the same count (give the "
                         "original's trim as the run used it: --start/--duration)")
    report: dict[str, Any] = {
        "original": a_info.to_dict(),
        "reconstruction": b_info.to_dict(),
        "video_metrics": vm.summary(),
        "reconstruction_cropped": (b_info.width, b_info.height) != (a_info.width, a_info.height),
        "per_frame": vm.per_frame(),
    }
    if a_info.audio is not None and b_info.audio is not None:
        score = AudioMetrics(44100, "both files' audio at 44.1 kHz mono, on the video timeline")
        ra = media.read_audio(a_path, sample_rate=44100, mono=True, start_s=start_s, duration_s=duration_s)
        rb = media.read_audio(b_path, info=b_info, sample_rate=44100, mono=True)
        for xa, xb in zip_chunks((c[0] for c in ra), (c[0] for c in rb)):
            score.update(xa, xb)
        report["audio_metrics"] = score.summary()
    else:
        report["audio_metrics"] = {"available": False,
                                   "reason": "audio missing in " + (a_path.name if a_info.audio is None else b_path.name)}
    return report
