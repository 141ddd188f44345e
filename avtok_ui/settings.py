"""The six Cosmos settings, their checkpoint names, and closed-form token counts.

Pure Python: knows nothing about torch or files.

Vocabulary used across the project:

* *setting* -- continuous (CV) or discrete (DV) x compression ``T x H x W`` (4x8x8, 8x8x8, 8x16x16).
* *window* -- number of source frames tokenized independently, always of the form ``1 + tf*k``.
  Each window restarts causality: its first frame gets a latent of its own.
* *latent frame* -- one step of the latent time axis. In a window, latent 0 covers source frame 0 and
  latent ``i >= 1`` covers source frames ``1 + tf*(i-1) .. tf*i`` (inclusive).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import AvtokError

#: FSQ levels of the discrete Cosmos 0.1 tokenizers; ids = sum(digit * basis) lie in [0, 64000).
FSQ_LEVELS: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
DV_VOCAB_SIZE: int = math.prod(FSQ_LEVELS)  # 64000
CV_CHANNELS: int = 16

#: Default temporal window (source frames). 17 = 1+4*4 = 1+8*2 is valid for every setting, is what
#: NVIDIA's own CLI uses, and keeps a 720p window within a few GB on CPU. Longer windows (e.g. 129, the
#: seed tool's) give fewer tokens per second (fewer causal restarts) at a higher memory cost.
DEFAULT_WINDOW: int = 17

#: x264 presets of the reconstruction videos, fastest first.
X264_PRESETS: tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                 "slower", "veryslow")
#: Default x264 preset of the reconstructions (chosen by measurement: benchmarks/README.md).
DEFAULT_PRESET: str = "veryfast"

HUB_ORG = "nvidia"
HUB_PREFIX = "Cosmos-0.1-Tokenizer-"
LEGACY_HUB_PREFIX = "Cosmos-Tokenizer-"

VALID_FACTORS: tuple[tuple[int, int], ...] = ((4, 8), (8, 8), (8, 16))


class SettingError(AvtokError, ValueError):
    """An unsupported or malformed tokenizer setting (message is one user-facing line)."""


@dataclass(frozen=True, order=True)
class VisualSetting:
    """One Cosmos video tokenizer setting: continuous/discrete x temporal x spatial compression."""

    discrete: bool
    temporal: int
    spatial: int

    def __post_init__(self) -> None:
        if (self.temporal, self.spatial) not in VALID_FACTORS:
            combos = ", ".join(f"{t}x{s}x{s}" for t, s in VALID_FACTORS)
            raise SettingError(
                f"unsupported compression {self.temporal}x{self.spatial}x{self.spatial}: "
                f"Cosmos 0.1 tokenizers exist for {combos} (temporal 4 only with spatial 8)"
            )

    # ----- names -------------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"DV"`` or ``"CV"``."""
        return "DV" if self.discrete else "CV"

    @property
    def name(self) -> str:
        """Short name, e.g. ``"DV8x16x16"``."""
        return f"{self.kind}{self.temporal}x{self.spatial}x{self.spatial}"

    @property
    def repo_name(self) -> str:
        """Hub repository name (without org), also the folder name under ``AVTOK_CHECKPOINTS``."""
        return HUB_PREFIX + self.name

    @property
    def hub_id(self) -> str:
        """Current Hub id, e.g. ``"nvidia/Cosmos-0.1-Tokenizer-DV8x16x16"``."""
        return f"{HUB_ORG}/{self.repo_name}"

    @property
    def legacy_hub_id(self) -> str:
        """Old un-versioned Hub id (redirects to :attr:`hub_id` on the Hub; may exist in old caches)."""
        return f"{HUB_ORG}/{LEGACY_HUB_PREFIX}{self.name}"

    def __str__(self) -> str:
        return self.name

    # ----- parsing -----------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> VisualSetting:
        """Parse ``"DV8x16x16"``, ``"cv4x8x8"``, ``"Cosmos-0.1-Tokenizer-CV8x8x8"`` or ``"nvidia/..."``."""
        m = re.fullmatch(
            r"(?:nvidia/)?(?:Cosmos-(?:0\.1-)?Tokenizer-)?([CDcd][Vv])(\d+)x(\d+)x(\d+)", text.strip()
        )
        if not m:
            raise SettingError(
                f"cannot parse setting {text!r}: expected e.g. DV8x16x16, CV4x8x8 ({', '.join(all_names())})"
            )
        kind, t, h, w = m.group(1).upper(), int(m.group(2)), int(m.group(3)), int(m.group(4))
        if h != w:
            raise SettingError(f"unsupported setting {text!r}: spatial factors must be equal")
        return cls(discrete=kind == "DV", temporal=t, spatial=h)

    @classmethod
    def from_flags(cls, is_discrete: bool | str, temporal: int | str, spatial: int | str) -> VisualSetting:
        """Build from the seed CLI's ``<is_discrete> <temporal_factor> <spatial_factor>`` arguments."""
        return cls(discrete=parse_bool(is_discrete), temporal=_parse_int(temporal, "temporal factor"),
                   spatial=_parse_int(spatial, "spatial factor"))

    # ----- closed forms ------------------------------------------------------------------------------
    def latent_grid(self, height: int, width: int) -> tuple[int, int]:
        """Latent ``(h, w)`` for a source of ``height x width`` pixels (source padded up to a multiple)."""
        return math.ceil(height / self.spatial), math.ceil(width / self.spatial)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """Pixel size the encoder sees: each side padded up to a multiple of the spatial factor."""
        h, w = self.latent_grid(height, width)
        return h * self.spatial, w * self.spatial

    def check_window(self, window: int) -> int:
        """Validate a temporal window (source frames); it must be ``1 + tf*k`` with ``k >= 1``."""
        if isinstance(window, bool) or not isinstance(window, int) or window < 1 + self.temporal or (
            window - 1) % self.temporal:
            raise SettingError(
                f"window {window} is not valid for {self.name}: it must be 1+{self.temporal}*k frames "
                f"(e.g. {1 + self.temporal * 2}, {1 + self.temporal * 4}, {1 + self.temporal * 16})"
            )
        return window

    def padded_window_length(self, n_frames: int) -> int:
        """Frames fed to the encoder for a window of ``n_frames`` source frames (edge-padded to 1+tf*k)."""
        if n_frames < 1:
            raise ValueError("a window has at least one frame")
        return 1 + self.temporal * math.ceil((n_frames - 1) / self.temporal)

    def latents_for_window(self, n_frames: int) -> int:
        """Latent frames produced by one window of ``n_frames`` source frames: ``1 + ceil((n-1)/tf)``."""
        return 1 + math.ceil((self.padded_window_length(n_frames) - 1) / self.temporal)

    def window_lengths(self, n_frames: int, window: int) -> list[int]:
        """Source-frame lengths of the independent windows that cover ``n_frames`` frames."""
        self.check_window(window)
        full, rest = divmod(n_frames, window)
        return [window] * full + ([rest] if rest else [])

    def latent_frames(self, n_frames: int, window: int) -> int:
        """Total latent frames for a video of ``n_frames`` frames tokenized in ``window``-frame windows."""
        return sum(self.latents_for_window(n) for n in self.window_lengths(n_frames, window))

    def latent_source_spans(self, n_frames: int, window: int) -> list[tuple[int, int]]:
        """For every latent frame, the half-open range ``[start, end)`` of *source* frames it covers.

        Padding frames are excluded, so the last latent of a short window may cover fewer than ``tf``.
        """
        spans: list[tuple[int, int]] = []
        base = 0
        for n in self.window_lengths(n_frames, window):
            spans.append((base, base + 1))
            for i in range(1, self.latents_for_window(n)):
                s = base + 1 + self.temporal * (i - 1)
                spans.append((s, min(s + self.temporal, base + n)))
            base += n
        return spans

    def visual_token_count(self, n_frames: int, height: int, width: int, window: int) -> int:
        """Number of visual tokens (latent positions) for the whole video."""
        h, w = self.latent_grid(height, width)
        return self.latent_frames(n_frames, window) * h * w

    @property
    def bytes_per_token(self) -> int:
        """Storage per visual token: 16 bf16 channels = 32 bytes (CV) or one uint16 id = 2 bytes (DV)."""
        return 2 if self.discrete else 2 * CV_CHANNELS


ALL_SETTINGS: tuple[VisualSetting, ...] = tuple(
    VisualSetting(discrete=d, temporal=t, spatial=s) for d in (False, True) for t, s in VALID_FACTORS
)


def all_names() -> list[str]:
    return [s.name for s in ALL_SETTINGS]


def parse_bool(value: bool | str | int) -> bool:
    """Accept the seed CLI's spellings of ``is_discrete``: true/false, 1/0, yes/no, discrete/continuous."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "t", "yes", "y", "discrete", "dv"}:
        return True
    if text in {"0", "false", "f", "no", "n", "continuous", "cv"}:
        return False
    raise SettingError(f"is_discrete must be true/false (or 1/0), got {value!r}")


def _parse_int(value: int | str, what: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise SettingError(f"{what} must be an integer, got {value!r}") from None


# ----- audio (DAC 44.1 kHz) --------------------------------------------------------------------------
DAC_SAMPLE_RATE = 44100
DAC_HOP = 512
DAC_CODEBOOKS = 9
DAC_CODEBOOK_SIZE = 1024
DAC_WEIGHTS_NAME = "weights_44khz_8kbps_0.0.1.pth"


def code_frame_boundary(seconds: float, sample_rate: int = DAC_SAMPLE_RATE, hop: int = DAC_HOP) -> int:
    """Index of the DAC code frame boundary nearest to time ``seconds`` (cumulative rounding).

    Assigning each latent the code frames between the boundaries of its start and end times keeps
    every latent within half a hop (5.8 ms) of its true time span, with no drift over any length.
    """
    return int(math.floor(seconds * sample_rate / hop + 0.5))


def audio_code_frames(n_samples: int, hop: int = DAC_HOP) -> int:
    """DAC code frames for ``n_samples`` samples (DAC right-pads to a multiple of the hop)."""
    return math.ceil(n_samples / hop)
