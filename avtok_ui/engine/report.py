"""The report of one run, typed: :class:`RunReport` with :class:`Readouts`, :class:`VideoScores`,
:class:`AudioScores` and :class:`Timings`.

``RunReport.to_dict()`` is the JSON written as ``<nick>_metrics.json`` and returned by the app's API (the
same keys as before the report was typed); ``RunReport.from_dict`` reads one back. Each typed part names
the fields code relies on; everything else a part carries (conventions, histograms, notes) stays in its
``extra`` dict, so the JSON keeps every key it had.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T", bound="_Part")


@dataclass
class _Part:
    """A typed view of one JSON object; unknown keys are kept in ``extra`` (round trip is lossless)."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any] | None) -> T | None:
        if d is None:
            return None
        names = [f.name for f in fields(cls) if f.name != "extra"]
        known = {k: d.get(k) for k in names}
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        for f in fields(self):
            if f.name != "extra":
                out[f.name] = getattr(self, f.name)
        return out


@dataclass
class Readouts(_Part):
    """Token counts and costs of a token file (``readouts.token_readouts``)."""

    setting: str | None = None
    visual_tokens: int = 0
    audio_tokens: int = 0
    total_tokens: int = 0
    tokens_per_second: float | None = None
    payload_bytes: int = 0
    token_file_bytes: int = 0
    bits_per_source_pixel: float | None = None


@dataclass
class VideoScores(_Part):
    """PSNR (dB, pooled MSE on [0, 255]; inf when lossless), SSIM (mean of frames), LPIPS (mean; None when
    unavailable) over ``n_frames`` frames of ``width x height``."""

    psnr: float | None = None
    ssim: float | None = None
    lpips: float | None = None
    lossless: bool = False
    n_frames: int = 0
    width: int | None = None
    height: int | None = None


@dataclass
class AudioScores(_Part):
    """SI-SDR (dB) and DAC's multi-scale mel distance of DAC input vs output (mono, 44.1 kHz)."""

    si_sdr_db: float | None = None
    mel_distance: float | None = None
    n_samples: int = 0
    sample_rate: int | None = None


@dataclass
class Timings:
    """Busy seconds per stage (stages overlap: they add up to more than ``total``), seconds inside model
    calls, the run's wall time, and the wall time from the first model call to the end of the run."""

    stages: dict[str, float] = field(default_factory=dict)
    model_calls: float = 0.0
    total: float = 0.0
    after_first_model_call: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Timings:
        d = dict(d or {})
        model = float(d.pop("model_calls", 0.0))
        total = float(d.pop("total", 0.0))
        after = d.pop("after_first_model_call", None)
        return cls(stages=d, model_calls=model, total=total, after_first_model_call=after)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.stages)
        out["model_calls"] = self.model_calls
        out["total"] = self.total
        if self.after_first_model_call is not None:
            out["after_first_model_call"] = self.after_first_model_call
        return out


@dataclass
class RunReport:
    """Everything one run measured and wrote (serialised by :meth:`to_dict`)."""

    tool: str
    created: str
    source: dict[str, Any]
    evaluated: dict[str, Any]
    setting: str
    config: dict[str, Any]
    device: str
    dtype: str
    readouts: Readouts
    timings: Timings = field(default_factory=Timings)
    video_metrics: VideoScores | None = None
    per_frame: dict[str, Any] | None = None
    audio_metrics: AudioScores | None = None
    video_encoder: str | None = None
    windowing: str | None = None  # how long videos were cut in time (windows, causal restarts)
    outputs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    _ORDER = ("tool", "created", "source", "evaluated", "setting", "config", "device", "dtype", "readouts",
              "windowing", "video_encoder", "video_metrics", "per_frame", "audio_metrics", "timings_s", "outputs")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``<nick>_metrics.json``): absent parts are left out."""
        d: dict[str, Any] = {
            "tool": self.tool, "created": self.created, "source": self.source, "evaluated": self.evaluated,
            "setting": self.setting, "config": self.config, "device": self.device, "dtype": self.dtype,
            "readouts": self.readouts.to_dict(),
        }
        if self.windowing is not None:
            d["windowing"] = self.windowing
        if self.video_encoder is not None:
            d["video_encoder"] = self.video_encoder
        if self.video_metrics is not None:
            d["video_metrics"] = self.video_metrics.to_dict()
        if self.per_frame is not None:
            d["per_frame"] = self.per_frame
        if self.audio_metrics is not None:
            d["audio_metrics"] = self.audio_metrics.to_dict()
        d["timings_s"] = self.timings.to_dict()
        d["outputs"] = self.outputs
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunReport:
        """Read a report's JSON form back (e.g. a ``<nick>_metrics.json``)."""
        known = set(cls._ORDER)
        return cls(
            tool=d.get("tool", ""), created=d.get("created", ""), source=d.get("source", {}),
            evaluated=d.get("evaluated", {}), setting=d.get("setting", ""), config=d.get("config", {}),
            device=d.get("device", ""), dtype=d.get("dtype", ""),
            readouts=Readouts.from_dict(d.get("readouts") or {}),
            timings=Timings.from_dict(d.get("timings_s")),
            video_metrics=VideoScores.from_dict(d.get("video_metrics")),
            per_frame=d.get("per_frame"),
            audio_metrics=AudioScores.from_dict(d.get("audio_metrics")),
            video_encoder=d.get("video_encoder"),
            windowing=d.get("windowing"),
            outputs=d.get("outputs", {}),
            extra={k: v for k, v in d.items() if k not in known},
        )
