"""The diffusers video VAE settings: one :class:`DiffusersSetting` per published VAE (pure data).

Each row was checked against diffusers 0.42.1's source and documentation and the model cards; the
sources are listed per backend in docs/BACKENDS.md. Every setting is continuous: the token is the
VAE posterior's mode (its mean), ``[1, C, t, h, w]``, stored bf16 ``[1, t, h, w, C]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import FrameRule

__all__ = ["DiffusersSetting", "DIFFUSERS_SETTINGS"]

APACHE_2 = ("Apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0")


@dataclass(frozen=True)
class DiffusersSetting(FrameRule):
    """A diffusers video VAE used as a continuous tokenizer (same closed forms as Cosmos 0.1's settings).

    ``name`` is the user-facing setting name (parsed case-insensitively), ``diffusers_class`` the class in
    ``diffusers`` that loads ``<hub_id>/<subfolder>/{config.json, diffusion_pytorch_model.safetensors}``.
    """

    name: str
    family: str
    diffusers_class: str
    hub_id: str
    temporal: int
    spatial: int
    latent_channels: int
    licence: str
    licence_url: str
    subfolder: str = "vae"
    note: str = ""

    # ----- the attributes Cosmos 0.1's VisualSetting has -----------------------------------------------
    @property
    def discrete(self) -> bool:
        return False

    @property
    def kind(self) -> str:
        """``"CV"``: every diffusers VAE gives continuous latents."""
        return "CV"

    @property
    def backend(self) -> str:
        return "diffusers"

    @property
    def repo_name(self) -> str:
        """Hub repository name without the org; the folder name under ``AVTOK_CHECKPOINTS``."""
        return self.hub_id.split("/", 1)[1]

    @property
    def legacy_hub_id(self) -> str:
        return self.hub_id

    @property
    def spatial_multiple(self) -> int:
        return self.spatial

    @property
    def stored_dtype(self) -> str:
        return "bf16"

    @property
    def bytes_per_token(self) -> int:
        """Storage per latent position: ``C`` bf16 values."""
        return 2 * self.latent_channels

    def __str__(self) -> str:
        return self.name


DIFFUSERS_SETTINGS: tuple[DiffusersSetting, ...] = (
    DiffusersSetting(
        name="Wan2.1-4x8x8", family="Wan 2.1", diffusers_class="AutoencoderKLWan",
        hub_id="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", temporal=4, spatial=8, latent_channels=16,
        licence=APACHE_2[0], licence_url=APACHE_2[1]),
    DiffusersSetting(
        name="Wan2.2-4x16x16", family="Wan 2.2", diffusers_class="AutoencoderKLWan",
        hub_id="Wan-AI/Wan2.2-TI2V-5B-Diffusers", temporal=4, spatial=16, latent_channels=48,
        licence=APACHE_2[0], licence_url=APACHE_2[1],
        note="Wan 2.2 config: patch_size 2 (pixel unshuffle), is_residual, z_dim 48"),
    DiffusersSetting(
        name="HunyuanVideo-4x8x8", family="HunyuanVideo", diffusers_class="AutoencoderKLHunyuanVideo",
        hub_id="hunyuanvideo-community/HunyuanVideo", temporal=4, spatial=8, latent_channels=16,
        licence="Tencent Hunyuan Community License (does not apply in the EU, UK and South Korea)",
        licence_url="https://huggingface.co/tencent/HunyuanVideo/blob/main/LICENSE"),
    DiffusersSetting(
        name="CogVideoX-4x8x8", family="CogVideoX", diffusers_class="AutoencoderKLCogVideoX",
        hub_id="THUDM/CogVideoX-2b", temporal=4, spatial=8, latent_channels=16,
        licence=APACHE_2[0], licence_url=APACHE_2[1],
        note="CogVideoX-2b (transformer and VAE) is Apache-2.0; CogVideoX-5b uses the CogVideoX License"),
    DiffusersSetting(
        name="LTXVideo-8x32x32", family="LTX-Video", diffusers_class="AutoencoderKLLTXVideo",
        hub_id="Lightricks/LTX-Video", temporal=8, spatial=32, latent_channels=128,
        licence="LTX-Video open weights licence (custom; commercial use revenue-gated)",
        licence_url="https://huggingface.co/Lightricks/LTX-Video/blob/main/License.txt"),
    DiffusersSetting(
        name="Cosmos1-CV8x8x8", family="Cosmos 1.0", diffusers_class="AutoencoderKLCosmos",
        hub_id="nvidia/Cosmos-1.0-Tokenizer-CV8x8x8", temporal=8, spatial=8, latent_channels=16,
        licence="NVIDIA Open Model License",
        licence_url="https://www.nvidia.com/en-us/agreements/enterprise-software/nvidia-open-model-license/"),
)
