"""One tokenizer wrapper for every diffusers video VAE (Wan 2.1/2.2, HunyuanVideo, CogVideoX, LTX-Video,
Cosmos 1.0), driven by its :class:`~avtok_ui.backends.specs.DiffusersSetting`.

Same engine-facing contract as :class:`avtok_ui.visual.CosmosTokenizer`:

* model input ``[1, 3, T, H, W]`` in [-1, 1], ``T = 1 + tf*k``, ``H, W`` multiples of ``sf``
  (:meth:`encode_window` pads: H/W replicate bottom/right, T by repeating the last frame);
* token = **raw VAE latent**: ``vae.encode(x).latent_dist.mode()`` -- the posterior mean for the
  ``DiagonalGaussianDistribution`` classes, the latent itself for Cosmos 1.0's ``IdentityDistribution`` --
  ``[1, C, 1+k, H/sf, W/sf]`` in the model dtype. No ``scaling_factor`` and no ``latents_mean/std``
  normalisation is applied (those belong to the diffusion models' latent space, not to reconstruction):
  the stored latent is exactly what ``vae.decode`` takes;
* :meth:`decode_window` -> ``vae.decode(z).sample`` clamped to [-1, 1], cropped back, uint8.

Each class runs with its diffusers defaults (HunyuanVideo's frame-wise encoding of windows > 16 frames,
CogVideoX's 8-frame batches with a conv cache, Wan's 4-frame causal cache), so our encode/decode equal
diffusers' own calls. One exception: CogVideoX decodes an even number of latents to ``4t`` frames
(its time upsampler keeps frame 0 apart only for odd counts), so an even-length latent gets its last
latent repeated, is decoded to ``1 + 4t`` frames, and the first ``1 + 4(t-1)`` are kept (the decoder is
causal in time, so the earlier frames are unchanged).

Weights: ``config.json`` + ``diffusion_pytorch_model.safetensors`` found by
:func:`avtok_ui.checkpoints.resolve_diffusers`. Model dtype: ``auto`` = fp32 (how the published VAEs are
stored and diffusers' default); ``bf16``/``fp16`` on request.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import CheckpointError, one_line
from ..visual import (
    DTYPE_NAMES,
    TokenizerRuntimeError,
    check_video_shape,
    frames_to_tensor,
    pad_video,
    parse_dtype,
    tensor_to_frames,
)
from .specs import DiffusersSetting

__all__ = ["DiffusersVAETokenizer", "config_hash", "latent_channels_of"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


def config_hash(config: dict[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the model config without diffusers' bookkeeping keys (``_*``):
    equal for the same architecture whatever diffusers version saved it."""
    clean = {k: v for k, v in config.items() if not k.startswith("_")}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=list).encode()).hexdigest()[:16]


def latent_channels_of(config: dict[str, Any]) -> int | None:
    """Latent channels a diffusers VAE config declares (``latent_channels`` or Wan's ``z_dim``)."""
    value = config.get("latent_channels", config.get("z_dim"))
    return int(value) if value is not None else None


class DiffusersVAETokenizer:
    """A diffusers video VAE as a continuous tokenizer for one :class:`DiffusersSetting`.

    Build with :meth:`from_pretrained` (locates the files) or :meth:`from_folder`. Model calls run under
    ``torch.inference_mode()``.
    """

    def __init__(self, setting: DiffusersSetting, vae: Any, *, device: torch.device, dtype: torch.dtype,
                 folder: Path | None = None, config: dict[str, Any] | None = None) -> None:
        self._setting = setting
        self._vae = vae
        self._device = torch.device(device)
        self._dtype = dtype
        self.folder = folder
        self.config: dict[str, Any] = dict(config or getattr(vae, "config", {}) or {})

    # ----- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, setting: DiffusersSetting | str, checkpoint_dir: str | Path | None = None, *,
                        device: str | torch.device | None = None, dtype: str | torch.dtype | None = "auto",
                        allow_download: bool = True) -> DiffusersVAETokenizer:
        """Locate (explicit dir, ``$AVTOK_CHECKPOINTS/<repo name>/vae``, HF cache, download) and load."""
        from ..checkpoints import resolve_diffusers
        from .registry import parse_setting

        if isinstance(setting, str):
            setting = parse_setting(setting)
        if not isinstance(setting, DiffusersSetting):
            raise CheckpointError(f"{setting}: not a diffusers VAE setting")
        folder = resolve_diffusers(setting, checkpoint_dir, allow_download=allow_download)
        return cls.from_folder(setting, folder, device=device, dtype=dtype)

    @classmethod
    def from_folder(cls, setting: DiffusersSetting, folder: str | Path, *,
                    device: str | torch.device | None = None,
                    dtype: str | torch.dtype | None = "auto") -> DiffusersVAETokenizer:
        """Load ``folder/{config.json, diffusion_pytorch_model.safetensors}`` with the setting's class."""
        folder = Path(folder)
        want = parse_dtype(dtype) or torch.float32
        dev = resolve_device(device)
        cfg_path = folder / CONFIG_FILE
        try:
            config = json.loads(cfg_path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{cfg_path}: file not found") from None
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{cfg_path}: not a readable JSON config ({one_line(e)})") from None
        found = config.get("_class_name")
        if found is not None and found != setting.diffusers_class:
            raise CheckpointError(f"{cfg_path}: is a {found} config, {setting.name} needs {setting.diffusers_class}")
        channels = latent_channels_of(config)
        if channels is not None and channels != setting.latent_channels:
            raise CheckpointError(f"{cfg_path}: declares {channels} latent channels, {setting.name} has "
                                  f"{setting.latent_channels} (is this the right checkpoint?)")
        try:
            import diffusers
        except ImportError:
            raise CheckpointError(f"{setting.name} needs the diffusers package (pip install 'diffusers>=0.42')") from None
        klass = getattr(diffusers, setting.diffusers_class, None)
        if klass is None:
            raise CheckpointError(f"{setting.name}: diffusers {diffusers.__version__} has no {setting.diffusers_class} "
                                  f"(needs diffusers >= 0.42)")
        level = diffusers.utils.logging.get_verbosity()
        diffusers.utils.logging.set_verbosity_error()  # no "install accelerate" advice on every load
        try:
            vae = klass.from_pretrained(str(folder), torch_dtype=want, low_cpu_mem_usage=False)
        except Exception as e:  # noqa: BLE001 -- any load failure is a bad checkpoint folder
            raise CheckpointError(f"{folder}: cannot load {setting.diffusers_class} ({one_line(e)})") from None
        finally:
            diffusers.utils.logging.set_verbosity(level)
        vae.eval().to(device=dev)
        return cls(setting, vae, device=dev, dtype=want, folder=folder, config=config)

    # ----- properties --------------------------------------------------------------------------------
    @property
    def setting(self) -> DiffusersSetting:
        return self._setting

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def native_dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def vae(self) -> Any:
        """The underlying diffusers model."""
        return self._vae

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    def weight_paths(self) -> dict[str, Path | None]:
        f = self.folder
        return {"config": f / CONFIG_FILE if f else None, "weights": f / WEIGHTS_FILE if f else None}

    def describe(self) -> dict[str, Any]:
        """What a token file / report records about this backend."""
        import diffusers

        return {"backend": "diffusers", "class": self._setting.diffusers_class, "hub_id": self._setting.hub_id,
                "config_sha256_16": self.config_hash, "diffusers_version": diffusers.__version__,
                "normalisation": "raw latent_dist.mode(), no scaling_factor / latents_mean/std",
                "dtype": DTYPE_NAMES.get(self._dtype, str(self._dtype))}

    def __repr__(self) -> str:
        return (f"DiffusersVAETokenizer({self._setting.name}, {self._setting.diffusers_class}, "
                f"device={self._device}, dtype={DTYPE_NAMES.get(self._dtype, self._dtype)})")

    # ----- tensors in, tensors out -------------------------------------------------------------------
    def _where(self) -> str:
        return str(self.folder) if self.folder is not None else self._setting.name

    def _call(self, fn: Any, arg: torch.Tensor) -> torch.Tensor:
        try:
            return fn(arg)
        except torch.OutOfMemoryError as e:
            raise torch.OutOfMemoryError(f"{self._setting.name}: {one_line(e)}") from None
        except (RuntimeError, NotImplementedError, ValueError, TypeError, IndexError) as e:
            raise TokenizerRuntimeError(f"{self._where()}: {one_line(e)}") from None

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """``video [1, 3, T, H, W]`` in [-1, 1] (``T = 1+tf*k``, ``H, W`` multiples of ``sf``) ->
        latent ``[1, C, 1+k, H/sf, W/sf]`` in the model dtype (the posterior mode, not scaled)."""
        if not isinstance(video, torch.Tensor) or not video.is_floating_point():
            raise ValueError("video must be a floating-point tensor [B, 3, T, H, W] in [-1, 1]")
        t, h, w = check_video_shape(self._setting, tuple(video.shape))
        with torch.inference_mode():
            x = video.to(device=self._device, dtype=self._dtype)
            z = self._call(lambda v: self._vae.encode(v).latent_dist.mode(), x)
            want = (video.shape[0], self._setting.latent_channels, t, h, w)
            if tuple(z.shape) != want:
                raise TokenizerRuntimeError(f"{self._where()}: encoder returned {list(z.shape)}, expected "
                                            f"{list(want)} for {self._setting.name}")
            return z.to(self._dtype)

    def decode_raw(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent ``[1, C, t, h, w]`` -> ``[1, 3, 1 + tf*(t-1), H, W]`` in the model dtype, not clamped."""
        c = self._setting.latent_channels
        if not isinstance(latent, torch.Tensor) or not latent.is_floating_point() or latent.dim() != 5 \
                or latent.shape[1] != c:
            got = f"{latent.dtype} {list(latent.shape)}" if isinstance(latent, torch.Tensor) else type(latent).__name__
            raise ValueError(f"{self._setting.name}: tokens must be a float latent [B, {c}, t, h, w], got {got}")
        if latent.numel() == 0:
            raise ValueError(f"{self._setting.name}: empty tokens {list(latent.shape)}")
        t = int(latent.shape[2])
        n_out = 1 + self._setting.temporal * (t - 1)
        with torch.inference_mode():
            z = latent.to(device=self._device, dtype=self._dtype)
            if self._setting.diffusers_class == "AutoencoderKLCogVideoX" and t % 2 == 0:
                z = torch.cat([z, z[:, :, -1:]], dim=2)  # odd count: frame 0 kept apart (see module doc)
            out = self._call(lambda v: self._vae.decode(v).sample, z)
            if out.dim() != 5 or out.shape[1] != 3 or out.shape[2] < n_out:
                raise TokenizerRuntimeError(f"{self._where()}: decoder returned {list(out.shape)} for a latent "
                                            f"{list(latent.shape)} (expected {n_out} frames)")
            return out[:, :, :n_out]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Like :meth:`decode_raw`, float32 clamped to [-1, 1]."""
        with torch.inference_mode():
            return self.decode_raw(latent).to(torch.float32).clamp_(-1.0, 1.0)

    # ----- windows of uint8 frames -------------------------------------------------------------------
    def encode_window(self, frames_uint8: np.ndarray) -> torch.Tensor:
        """Encode one window ``np.ndarray [T, H, W, 3]`` uint8 RGB of any size and length (padded as
        :func:`avtok_ui.visual.pad_video`) -> ``[1, C, 1 + ceil((T-1)/tf), ceil(H/sf), ceil(W/sf)]``."""
        with torch.inference_mode():
            x = frames_to_tensor(frames_uint8, self._device, dtype=self._dtype)
            return self.encode(pad_video(x, self._setting))

    def decode_window(self, tokens: torch.Tensor, n_frames: int, height: int, width: int) -> np.ndarray:
        """Decode one window's latent and crop back to ``np.ndarray [n_frames, height, width, 3]`` uint8."""
        with torch.inference_mode():
            video = self.decode_raw(tokens)
            if video.shape[0] != 1:
                raise ValueError(f"decode_window takes one window (batch 1), got {list(tokens.shape)}")
            _, _, t, h, w = video.shape
            if not (1 <= n_frames <= t and 1 <= height <= h and 1 <= width <= w):
                raise ValueError(f"{self._setting.name}: cannot crop decoded {t}x{h}x{w} (TxHxW) to "
                                 f"{n_frames}x{height}x{width}")
            return tensor_to_frames(video[0, :, :n_frames, :height, :width])

    def token_shape(self, n_frames: int, height: int, width: int) -> tuple[int, ...]:
        h, w = self._setting.latent_grid(height, width)
        return (1, self._setting.latent_channels, self._setting.latents_for_window(n_frames), h, w)
