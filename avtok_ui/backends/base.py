"""What every tokenizer backend provides: a *setting* (pure description + closed forms) and a loaded
*tokenizer* (encode/decode one window). Cosmos 0.1 (:class:`avtok_ui.settings.VisualSetting`,
:class:`avtok_ui.visual.CosmosTokenizer`) and the diffusers VAEs
(:class:`avtok_ui.backends.specs.DiffusersSetting`, :class:`avtok_ui.backends.diffusers_vae.DiffusersVAETokenizer`)
both satisfy these protocols; the engine only relies on them (duck typing, no common base class needed).

Pure Python: no torch at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["TokenizerSetting", "Tokenizer"]


@runtime_checkable
class TokenizerSetting(Protocol):
    """A tokenizer setting: what it is, where its weights live, and its closed-form shapes.

    Frame rule: a window of ``n`` source frames is edge-padded to ``1 + temporal*k`` frames and gives
    ``1 + k`` latent frames (the first latent covers frame 0 alone: causal restart per window). Frame sides
    are padded (replicate, bottom/right) up to multiples of ``spatial_multiple`` (= ``spatial``) and give
    ``ceil(H/spatial) x ceil(W/spatial)`` latent positions.
    """

    @property
    def name(self) -> str: ...                 # e.g. "DV8x16x16", "Wan2.1-4x8x8"
    @property
    def family(self) -> str: ...               # e.g. "Cosmos 0.1", "Wan 2.1"
    @property
    def backend(self) -> str: ...              # loader: "cosmos-jit" | "diffusers"
    @property
    def kind(self) -> str: ...                 # "CV" (continuous) | "DV" (discrete ids)
    @property
    def discrete(self) -> bool: ...
    @property
    def temporal(self) -> int: ...             # tf
    @property
    def spatial(self) -> int: ...              # sf
    @property
    def spatial_multiple(self) -> int: ...
    @property
    def latent_channels(self) -> int: ...      # values stored per latent position
    @property
    def stored_dtype(self) -> str: ...         # "bf16" | "uint16"
    @property
    def bytes_per_token(self) -> int: ...      # bytes stored per latent position
    @property
    def hub_id(self) -> str: ...
    @property
    def repo_name(self) -> str: ...            # folder name under $AVTOK_CHECKPOINTS
    @property
    def licence(self) -> str: ...
    @property
    def licence_url(self) -> str: ...

    def check_window(self, window: int) -> int: ...
    def latent_grid(self, height: int, width: int) -> tuple[int, int]: ...
    def padded_size(self, height: int, width: int) -> tuple[int, int]: ...
    def padded_window_length(self, n_frames: int) -> int: ...
    def latents_for_window(self, n_frames: int) -> int: ...
    def window_lengths(self, n_frames: int, window: int) -> list[int]: ...
    def latent_frames(self, n_frames: int, window: int) -> int: ...
    def latent_source_spans(self, n_frames: int, window: int) -> list[tuple[int, int]]: ...
    def visual_token_count(self, n_frames: int, height: int, width: int, window: int) -> int: ...


@runtime_checkable
class Tokenizer(Protocol):
    """A loaded tokenizer. Frames are ``np.ndarray [T, H, W, 3]`` uint8 RGB of any size and length.

    * ``encode_window(frames) -> torch.Tensor``: continuous ``[1, C, t, h, w]`` (model dtype) or discrete
      ids ``[1, t, h, w]`` int32, with ``t = setting.latents_for_window(T)``,
      ``(h, w) = setting.latent_grid(H, W)``;
    * ``decode_window(tokens, n_frames, height, width) -> np.ndarray [n_frames, height, width, 3]`` uint8
      (decoded, clamped to [-1, 1], ``round((x+1)*127.5)``, cropped back to the source size).
    """

    @property
    def setting(self) -> Any: ...
    @property
    def device(self) -> Any: ...
    @property
    def dtype(self) -> Any: ...

    def encode_window(self, frames_uint8: Any) -> Any: ...
    def decode_window(self, tokens: Any, n_frames: int, height: int, width: int) -> Any: ...
    def weight_paths(self) -> dict[str, Path | None]: ...
