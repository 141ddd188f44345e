"""LPIPS v0.1 (Zhang et al. 2018) without torchvision: our own VGG16 / AlexNet trunks + the linear heads
that ship inside the ``lpips`` package.

Why not ``import lpips``: its model code imports torchvision, which cannot be installed next to our CPU
torch pin. We only read its *data files* (``lpips/weights/v0.1/{vgg,alex}.pth``, the learned 1x1 heads) by
path, and rebuild the network so that it computes exactly what ``lpips.LPIPS(net=..., version="0.1")``
computes in eval mode:

* input in [-1, 1]; the v0.1 scaling layer ``(x - shift) / scale`` with
  shift ``[-.030, -.088, -.188]`` and scale ``[.458, .448, .450]``;
* five trunk taps (VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 = torchvision ``features`` indices
  ``[0,4) [4,9) [9,16) [16,23) [23,30)``; AlexNet: relu1..relu5 = ``[0,2) [2,5) [5,8) [8,10) [10,12)``);
* per tap: unit-normalise over channels (``x / (||x||_2 + 1e-10)``), squared difference, 1x1 linear head
  (no bias), spatial mean; the five values are summed.

The trunks use torchvision's exact module layout so the ImageNet weight files torchvision would download
(``vgg16-397923af.pth``, ``alexnet-owt-7be5be79.pth``) load with their own keys (``features.0.weight``...).
They are looked up (in order) in an explicit ``backbone_path``, ``$AVTOK_LPIPS_BACKBONE`` (a file or a
directory) and torch's hub cache (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``);
:func:`fetch_backbone` downloads the file into that cache when downloads are allowed (the rule of every other
weight file: ``checkpoints.download_blocked``). When absent, LPIPS is *unavailable* with a one-line reason --
never a made-up number.

Precision: float32 trunk (like ``lpips``); on CUDA PyTorch's default cuDNN TF32 setting applies, exactly as
it would to the reference package under the same torch. Results are returned as float64.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .devices import resolve_device
from .errors import CheckpointError

__all__ = [
    "LPIPS",
    "LPIPSUnavailable",
    "LPIPS_SHIFT",
    "LPIPS_SCALE",
    "BACKBONE_FILES",
    "MIN_SIZE",
    "lpips_status",
    "resolve_backbone",
    "linear_heads_path",
    "hub_checkpoint_dir",
    "backbone_url",
    "fetch_backbone",
]

#: v0.1 scaling layer constants (``lpips/lpips.py``, ``ScalingLayer``).
LPIPS_SHIFT: tuple[float, float, float] = (-0.030, -0.088, -0.188)
LPIPS_SCALE: tuple[float, float, float] = (0.458, 0.448, 0.450)

#: torchvision weight-file names, first one preferred (older AlexNet name accepted too).
BACKBONE_FILES: dict[str, tuple[str, ...]] = {
    "vgg": ("vgg16-397923af.pth",),
    "alex": ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth"),
}
#: End (exclusive) of each LPIPS slice in torchvision's ``features`` indices (``lpips/pretrained_networks.py``).
SLICE_ENDS: dict[str, tuple[int, ...]] = {"vgg": (4, 9, 16, 23, 30), "alex": (2, 5, 8, 10, 12)}
CHANNELS: dict[str, tuple[int, ...]] = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}
#: Smallest frame side the trunk accepts (every tap must keep >= 1 pixel).
MIN_SIZE: dict[str, int] = {"vgg": 16, "alex": 31}
_NET_ALIASES = {"vgg": "vgg", "vgg16": "vgg", "alex": "alex", "alexnet": "alex"}
_NET_LABEL = {"vgg": "VGG16", "alex": "AlexNet"}

#: Pixels (frames x H x W) per trunk batch on CPU / on any accelerator; both images of a pair run together.
_PIXEL_BUDGET = {"cpu": 1280 * 720, "cuda": 1280 * 720 * 16}


class LPIPSUnavailable(CheckpointError):
    """LPIPS cannot be computed here; ``str(err)`` is the one-line reason ("unavailable: ... not found ...")."""


def _canon_net(net: str) -> str:
    try:
        return _NET_ALIASES[net.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown LPIPS net {net!r}: use 'vgg' or 'alex'") from None


# ----- locating files ---------------------------------------------------------------------------------
def hub_checkpoint_dir() -> Path:
    """torch's hub checkpoint folder: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def linear_heads_path(net: str = "vgg") -> Path | None:
    """Path of the shipped v0.1 linear heads (``lpips/weights/v0.1/<net>.pth``), or None if absent.

    Uses ``importlib.util.find_spec`` only: the ``lpips`` package itself is never imported (it would
    import torchvision).
    """
    net = _canon_net(net)
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "weights" / "v0.1" / f"{net}.pth"
        if p.is_file():
            return p
    return None


def resolve_backbone(
    net: str = "vgg", backbone_path: str | os.PathLike | None = None
) -> tuple[Path | None, str]:
    """Find the torchvision ImageNet weights for ``net``.

    Order: ``backbone_path`` (file or dir) -> ``$AVTOK_LPIPS_BACKBONE`` (file or dir) -> torch hub cache.
    A file given explicitly (argument or env) is used as is, whatever its name.

    Returns ``(path, "")`` when found, else ``(None, reason)`` with the one-line unavailability reason.
    """
    net = _canon_net(net)
    names = BACKBONE_FILES[net]
    hub = hub_checkpoint_dir()
    explicit: list[tuple[str, Path]] = []
    if backbone_path is not None:
        explicit.append(("backbone_path", Path(backbone_path).expanduser()))
    env = os.environ.get("AVTOK_LPIPS_BACKBONE")
    if env:
        explicit.append(("AVTOK_LPIPS_BACKBONE", Path(env).expanduser()))
    for _src, p in explicit:
        if p.is_file():
            return p, ""
        if p.is_dir():
            for n in names:
                if (p / n).is_file():
                    return p / n, ""
    for n in names:
        if (hub / n).is_file():
            return hub / n, ""
    where = "; ".join(f"{src}={p} has no {names[0]}" for src, p in explicit)
    reason = f"unavailable: {names[0]} not found; put it in {hub} or set AVTOK_LPIPS_BACKBONE"
    if where:
        reason += f" ({where})"
    return None, reason


#: Where torchvision downloads the ImageNet trunks from (the file name ends in its SHA-256 prefix).
BACKBONE_URL = "https://download.pytorch.org/models/{name}"


def backbone_url(net: str = "vgg") -> str:
    """URL of the torchvision weight file for ``net`` (``vgg16-397923af.pth`` / ``alexnet-owt-7be5be79.pth``)."""
    return BACKBONE_URL.format(name=BACKBONE_FILES[_canon_net(net)][0])


def fetch_backbone(net: str = "vgg", *, allow_download: bool) -> tuple[Path | None, str]:
    """Make sure the trunk file for ``net`` is there, downloading it into torch's hub cache
    (:func:`hub_checkpoint_dir`, where :func:`resolve_backbone` looks) when downloads are allowed -- the same
    rule as every other weight file (``checkpoints.download_blocked``: the caller's switch and
    ``HF_HUB_OFFLINE``). The download is checked against the SHA-256 prefix in the file name and lands
    atomically. Returns ``(path, "")`` or ``(None, reason)`` (the "unavailable: ..." line, plus why no
    download happened); never raises.
    """
    from . import checkpoints as ck

    net = _canon_net(net)
    found, reason = resolve_backbone(net)
    if found is not None:
        return found, ""
    blocked = ck.download_blocked(allow_download)
    if blocked:
        return None, f"{reason} ({blocked})"
    url = backbone_url(net)
    unreachable = ck._unreachable(url)
    if unreachable:
        return None, f"{reason} (download of {url} failed: {unreachable})"
    name = BACKBONE_FILES[net][0]
    dest = hub_checkpoint_dir() / name
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        hash_prefix = name.rsplit("-", 1)[1].split(".")[0]
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=hash_prefix, progress=False)
    except Exception as err:  # noqa: BLE001 -- network, disk, hash mismatch: LPIPS stays unavailable
        first = (str(err).splitlines() or [type(err).__name__])[0]
        return None, f"{reason} (download of {url} failed: {type(err).__name__}: {first[:160]})"
    return (dest, "") if dest.is_file() else (None, f"{reason} (download of {url} gave no file)")


def lpips_status(net: str = "vgg", backbone_path: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Cheap availability check (looks for files, loads nothing).

    Returns ``(True, "LPIPS v0.1 <net>: trunk <file>, heads <file>")`` or ``(False, "unavailable: ...")``.
    A file that exists but cannot be loaded is only discovered by :meth:`LPIPS.from_pretrained`.
    """
    net = _canon_net(net)
    heads = linear_heads_path(net)
    if heads is None:
        return False, (
            f"unavailable: lpips/weights/v0.1/{net}.pth not found; install the lpips package "
            "(pip install --no-deps lpips==0.1.4)"
        )
    trunk, reason = resolve_backbone(net, backbone_path)
    if trunk is None:
        return False, reason
    return True, f"LPIPS v0.1 {_NET_LABEL[net]}: trunk {trunk}, heads {heads}"


# ----- the network ------------------------------------------------------------------------------------
def _vgg16_features() -> nn.Sequential:
    """torchvision ``vgg16().features`` layout (indices 0..30)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c_in, int(v), kernel_size=3, padding=1), nn.ReLU()]
            c_in = int(v)
    return nn.Sequential(*layers)


def _alexnet_features() -> nn.Sequential:
    """torchvision ``alexnet().features`` layout (indices 0..12)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class LPIPSNet(nn.Module):
    """The LPIPS v0.1 computation graph (float in [-1, 1], NCHW) -> distance per image pair [B]."""

    def __init__(self, net: str = "vgg") -> None:
        super().__init__()
        self.net = _canon_net(net)
        # attribute name ``features`` => state-dict keys ``features.0.weight`` like torchvision
        self.features = _vgg16_features() if self.net == "vgg" else _alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS[self.net])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.slice_ends = SLICE_ENDS[self.net]
        self.requires_grad_(False)
        self.eval()

    # -- weights --
    def load_backbone(self, state: dict[str, Tensor], source: str = "backbone") -> None:
        """Load torchvision ``features.*`` weights (``classifier.*`` and other keys are ignored)."""
        feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        if not feats:
            raise LPIPSUnavailable(
                f"unavailable: {source} holds no 'features.*' weights of a torchvision model"
            )
        try:
            self.features.load_state_dict(feats, strict=True)
        except RuntimeError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise LPIPSUnavailable(
                f"unavailable: {source} does not match torchvision {_NET_LABEL[self.net]} features ({first})"
            ) from None

    def load_linear_heads(self, state: dict[str, Tensor], source: str = "linear heads") -> None:
        """Load ``lin{k}.model.1.weight`` tensors from lpips' ``weights/v0.1/<net>.pth``."""
        for k, lin in enumerate(self.lins):
            key = f"lin{k}.model.1.weight"
            if key not in state or tuple(state[key].shape) != tuple(lin.weight.shape):
                raise LPIPSUnavailable(
                    f"unavailable: {source} has no {key} of shape {tuple(lin.weight.shape)}"
                )
            lin.weight.data.copy_(state[key])

    def random_trunk(self, seed: int = 0) -> None:
        """Seeded Kaiming-normal trunk (benchmarks/tests only; NOT a valid LPIPS)."""
        g = torch.Generator().manual_seed(seed)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                w = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
                m.weight.data.copy_(w)
                m.bias.data.zero_()

    # -- forward --
    def taps(self, x: Tensor) -> list[Tensor]:
        """Scaled input -> the five ReLU taps."""
        h = (x - self.shift) / self.scale
        out: list[Tensor] = []
        start = 0
        for end in self.slice_ends:
            for i in range(start, end):
                h = self.features[i](h)
            out.append(h)
            start = end
        return out

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        """LPIPS distance per pair: ``x0``, ``x1`` float [B, 3, H, W] in [-1, 1] -> [B]."""
        b = x0.shape[0]
        feats = self.taps(torch.cat([x0, x1], dim=0))
        total = x0.new_zeros(b)
        for f, lin in zip(feats, self.lins, strict=True):
            f = f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + 1e-10)
            d = (f[:b] - f[b:]) ** 2
            total = total + lin(d).mean(dim=(2, 3)).squeeze(1)
        return total


# ----- the resident metric ----------------------------------------------------------------------------
_RESIDENT: dict[tuple, LPIPS] = {}
_RESIDENT_LOCK = threading.Lock()


def _load_state(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- any unreadable file is "unavailable", never a crash
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise LPIPSUnavailable(f"unavailable: {path} could not be loaded ({first[:160]})") from None
    if not isinstance(state, dict):
        raise LPIPSUnavailable(f"unavailable: {path} is not a state dict")
    return state


class LPIPS:
    """Resident LPIPS v0.1 scorer for uint8 video frames.

    Build with :meth:`from_pretrained` (real weights; cached per net/device/file, so repeated calls are
    free) or :meth:`with_random_trunk` (benchmarks/tests; labelled as not a valid LPIPS).
    Call with two uint8 ``[T, H, W, 3]`` arrays/tensors -> float64 ``[T]`` (on the input's device).
    """

    def __init__(self, model: LPIPSNet, device: torch.device, description: str, valid: bool) -> None:
        # channels_last: ~15-20% faster convolutions on CPU (oneDNN) and the natural layout of
        # [T, H, W, 3] frames, whose permute to NCHW is already a channels_last view.
        self.model = model.to(device=device, memory_format=torch.channels_last)
        self.device = device
        self.net = model.net
        #: human label, e.g. "LPIPS v0.1 VGG16 on [-1,1] (trunk vgg16-397923af.pth)"
        self.description = description
        #: False for a random trunk: numbers are for speed/equivalence tests only
        self.valid = valid
        self.min_size = MIN_SIZE[model.net]
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        net: str = "vgg",
        device: str | torch.device | None = None,
        backbone_path: str | os.PathLike | None = None,
    ) -> LPIPS:
        """Real LPIPS v0.1; raises :class:`LPIPSUnavailable` (one-line reason) if files are missing/bad."""
        net = _canon_net(net)
        dev = resolve_device(device)
        heads = linear_heads_path(net)
        ok, reason = lpips_status(net, backbone_path)
        if not ok:
            raise LPIPSUnavailable(reason)
        trunk, _ = resolve_backbone(net, backbone_path)
        assert trunk is not None and heads is not None
        try:
            st = trunk.stat()
            key = (net, str(dev), str(trunk.resolve()), st.st_mtime_ns, st.st_size, str(heads))
        except OSError as err:
            raise LPIPSUnavailable(f"unavailable: {trunk} could not be read ({err.strerror})") from None
        with _RESIDENT_LOCK:
            hit = _RESIDENT.get(key)
            if hit is not None:
                return hit
            model = LPIPSNet(net)
            model.load_backbone(_load_state(trunk), source=str(trunk))
            model.load_linear_heads(_load_state(heads), source=str(heads))
            desc = f"LPIPS v0.1 {_NET_LABEL[net]} on [-1,1] (trunk {trunk.name})"
            inst = cls(model, dev, desc, valid=True)
            _RESIDENT[key] = inst
            return inst

    @classmethod
    def with_random_trunk(
        cls, net: str = "vgg", device: str | torch.device | None = None, seed: int = 0
    ) -> LPIPS:
        """Seeded random trunk + the shipped linear heads (if present). For benchmarks/tests only."""
        net = _canon_net(net)
        model = LPIPSNet(net)
        model.random_trunk(seed)
        heads = linear_heads_path(net)
        if heads is not None:
            model.load_linear_heads(_load_state(heads), source=str(heads))
        desc = f"random-init {_NET_LABEL[net]} trunk (seed {seed}): NOT a valid LPIPS"
        return cls(model, resolve_device(device), desc, valid=False)

    def _to_model_input(self, frames: Tensor) -> Tensor:
        x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).to(torch.float32)
        return (x / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(
        self, orig: Tensor | np.ndarray, recon: Tensor | np.ndarray, batch: int | None = None
    ) -> Tensor:
        """Per-frame LPIPS: uint8 ``[T, H, W, 3]`` pairs -> float64 ``[T]`` on ``orig``'s device.

        Frames are batched on the scorer's device: up to 16 720p frames per trunk pass on an accelerator,
        one on CPU (``_PIXEL_BUDGET``), in passes of equal size; ``batch`` caps frames per pass further.
        """
        a = orig if isinstance(orig, Tensor) else torch.from_numpy(np.ascontiguousarray(orig))
        b = recon if isinstance(recon, Tensor) else torch.from_numpy(np.ascontiguousarray(recon))
        if a.dtype != torch.uint8 or b.dtype != torch.uint8:
            raise TypeError(f"LPIPS expects uint8 frames, got {a.dtype} and {b.dtype}")
        if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(
                f"LPIPS expects two [T, H, W, 3] arrays of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        t, h, w, _ = a.shape
        if min(h, w) < self.min_size:
            raise ValueError(
                f"LPIPS {self.net} needs frames of at least {self.min_size}x{self.min_size}, got {w}x{h}"
            )
        budget = _PIXEL_BUDGET["cpu" if self.device.type == "cpu" else "cuda"]
        step = max(1, budget // (h * w))
        if batch is not None:
            step = max(1, min(step, int(batch)))
        step = -(-t // -(-t // step)) if t else 1  # balanced passes: 17 frames by <= 16 -> 9 + 8, not 16 + 1
        out = torch.empty(t, dtype=torch.float64, device=self.device)
        with self._lock:
            for s in range(0, t, step):
                e = min(t, s + step)
                out[s:e] = self.model(self._to_model_input(a[s:e]), self._to_model_input(b[s:e])).to(
                    torch.float64
                )
        return out.to(a.device)

    def __repr__(self) -> str:
        return f"LPIPS({self.description!r}, device={self.device})"
