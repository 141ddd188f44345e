"""The Cosmos 0.1 video tokenizer (TorchScript ``encoder.jit`` / ``decoder.jit``): loading, dtype and
device, the CPU bf16 ``avg_pool3d`` fallback, pad/crop and window encode/decode.

Tensor conventions (see docs/ARCHITECTURE.md):

* model input: ``[B, 3, T, H, W]`` in [-1, 1] (``x/127.5 - 1``), ``T = 1 + tf*k``, ``H, W`` multiples of
  the spatial factor ``sf``;
* CV latent ``[B, 16, t, h, w]`` in the model dtype (bf16 for the published files), ``t = 1 + k``,
  ``h = H/sf``, ``w = W/sf``; DV ids ``[B, t, h, w]`` int32 in ``[0, 64000)``;
* decoder output ``[B, 3, 1 + tf*(t-1), H, W]``; :meth:`CosmosTokenizer.decode` returns it float32
  clamped to [-1, 1] (the published decoders return bf16 and do not clamp: values reach +-7);
* frames on the I/O side: ``np.ndarray [T, H, W, 3]`` uint8 RGB.

The published files are bf16 traces: they run only in bf16 (the casts are baked in), and on CPU the
encoder needs a bf16 ``aten::avg_pool3d`` that torch does not have (``ensure_cpu_bf16_avg_pool3d``).

Pure computation (``frames_to_tensor``, ``pad_video``, ``tensor_to_frames``) is kept apart from loading
(``CosmosTokenizer.from_pretrained``); this module reads no file other than the two ``.jit`` files.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .devices import resolve_device
from .errors import CheckpointError, one_line
from .settings import CV_CHANNELS, DV_VOCAB_SIZE, VisualSetting

__all__ = [
    "CosmosTokenizer",
    "TokenizerRuntimeError",
    "ensure_cpu_bf16_avg_pool3d",
    "cpu_bf16_avg_pool3d_registered",
    "avg_pool3d_fp32",
    "frames_to_tensor",
    "pad_video",
    "tensor_to_frames",
    "check_video_shape",
    "expected_token_shape",
    "native_dtype",
    "parse_dtype",
    "DTYPE_NAMES",
]

ENCODER_FILE = "encoder.jit"
DECODER_FILE = "decoder.jit"


class TokenizerRuntimeError(CheckpointError, RuntimeError):
    """A checkpoint that loaded but failed while running (one-line message from the TorchScript error)."""


# ----------------------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------------------
_DTYPE_ALIASES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
}

#: Short names used in messages and reports.
DTYPE_NAMES: dict[torch.dtype, str] = {torch.bfloat16: "bf16", torch.float32: "fp32", torch.float16: "fp16"}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"auto"``/None -> None (the checkpoint's own); ``"bf16"``, ``"fp32"``, ``"fp16"`` (or a
    ``torch.dtype``) -> that dtype. Raises ValueError for anything else."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPE_NAMES:
            raise ValueError(f"unsupported model dtype {dtype}: use auto, bf16, fp32 or fp16")
        return dtype
    text = str(dtype).strip().lower().replace("torch.", "")
    if text == "auto":
        return None
    if text not in _DTYPE_ALIASES:
        raise ValueError(f"unsupported model dtype {dtype!r}: use auto, bf16, fp32 or fp16")
    return _DTYPE_ALIASES[text]


def native_dtype(*modules: torch.nn.Module | torch.jit.ScriptModule) -> torch.dtype:
    """The floating dtype of the modules' parameters and buffers (the one holding most elements).

    Modules with no floating tensors at all (a tiny discrete stand-in may own only integer buffers) are
    assumed to be bf16, the dtype of every published Cosmos file.
    """
    counts: dict[torch.dtype, int] = {}
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            if t.is_floating_point():
                counts[t.dtype] = counts.get(t.dtype, 0) + t.numel()
    if not counts:
        return torch.bfloat16
    return max(counts, key=lambda d: counts[d])


# ----------------------------------------------------------------------------------------------------
# CPU bf16 avg_pool3d fallback
# ----------------------------------------------------------------------------------------------------
_AVG_POOL_LIB: Any = None  # the torch.library.Library that owns the registration (kept alive forever)
_AVG_POOL_LOCK = threading.Lock()
#: Inputs above this many elements are pooled in channel chunks (bounds the fp32 temporary copy).
_AVG_POOL_CHUNK_ELEMS = 1 << 26


def avg_pool3d_fp32(
    input: torch.Tensor,
    kernel_size: Sequence[int] | int,
    stride: Sequence[int] | int = (),
    padding: Sequence[int] | int = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """``aten::avg_pool3d`` for any floating dtype, computed in fp32 (fp64 stays fp64), result in the input
    dtype. Same semantics as torch's (padding, ceil_mode, count_include_pad, divisor_override; 4-D or 5-D
    input) because the arithmetic is torch's own fp32 kernel, reached through the ``.out`` overload:
    that overload is a separate kernel, so calling it from the registered functional kernel cannot recurse.
    """
    k = _triple(kernel_size)
    s = _triple(stride) if stride not in ((), [], None) else k
    p = _triple(padding)
    work = torch.float64 if input.dtype == torch.float64 else torch.float32

    def pool(x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(0, dtype=work, device=x.device)
        torch.ops.aten.avg_pool3d.out(x.to(work), k, s, p, ceil_mode, count_include_pad, divisor_override,
                                      out=out)
        return out if input.dtype == work else out.to(input.dtype)

    if input.dim() < 4 or input.numel() <= _AVG_POOL_CHUNK_ELEMS or input.dtype == work:
        return pool(input)
    # Pool channel by channel groups: exact (pooling is per channel), and the fp32 copy stays bounded.
    cdim = input.dim() - 4
    per_channel = max(1, input.numel() // max(1, input.shape[cdim]))
    step = max(1, _AVG_POOL_CHUNK_ELEMS // per_channel)
    return torch.cat([pool(c) for c in torch.split(input, step, dim=cdim)], dim=cdim)


def _triple(v: Sequence[int] | int) -> list[int]:
    if isinstance(v, int):
        return [v, v, v]
    v = [int(i) for i in v]
    return v * 3 if len(v) == 1 else v


def cpu_bf16_avg_pool3d_registered() -> bool:
    """Whether :func:`ensure_cpu_bf16_avg_pool3d` has registered the fallback in this process."""
    return _AVG_POOL_LIB is not None


def ensure_cpu_bf16_avg_pool3d() -> bool:
    """Register (once per process) a CPU kernel for ``aten::avg_pool3d`` that computes in fp32.

    torch has no CPU bf16/fp16 ``avg_pool3d`` ("avg_pool3d_out_frame" not implemented for 'BFloat16'), which
    the published Cosmos encoders need on CPU. The registration replaces the CPU kernel for *every*
    dtype, so :func:`avg_pool3d_fp32` handles fp32/fp64 too (bit-identical to torch's own kernel).
    The "Overriding a previously registered kernel" warning is suppressed. Thread-safe.

    Returns True when this call registered it, False when it was already registered.
    """
    global _AVG_POOL_LIB
    if _AVG_POOL_LIB is not None:
        return False
    with _AVG_POOL_LOCK:
        if _AVG_POOL_LIB is not None:
            return False
        lib = torch.library.Library("aten", "IMPL")  # an override of an existing aten kernel
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Overriding a previously registered kernel ..."
            lib.impl("avg_pool3d", avg_pool3d_fp32, "CPU")
        _AVG_POOL_LIB = lib
        return True


# ----------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------
_DTYPE_ERROR_MARKERS = (
    "expected scalar type", "should be the same", "same dtype", "mixed dtype", "dtype mismatch",
    "to have the same", "Expected tensor for argument",
)


def _is_dtype_error(message: str) -> bool:
    return any(m in message for m in _DTYPE_ERROR_MARKERS)


# ----------------------------------------------------------------------------------------------------
# pure computation: shapes, frames <-> tensors, pad
# ----------------------------------------------------------------------------------------------------
def check_video_shape(setting: VisualSetting, shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate a model input shape ``[B, 3, T, H, W]``; return the latent ``(t, h, w)``.

    Requires ``T = 1 + tf*k`` (k >= 0) and ``H, W`` multiples of ``sf`` (ValueError otherwise).
    """
    if len(shape) != 5 or shape[1] != 3:
        raise ValueError(f"video must be [B, 3, T, H, W], got {list(shape)}")
    _, _, t, h, w = (int(v) for v in shape)
    tf, sf = setting.temporal, setting.spatial
    if t < 1 or (t - 1) % tf:
        raise ValueError(f"{setting.name}: T={t} frames is not of the form 1+{tf}*k (pad the window: "
                         f"{1 + tf * math.ceil(max(t - 1, 0) / tf)} frames)")
    if h < sf or w < sf or h % sf or w % sf:
        raise ValueError(f"{setting.name}: frame size {w}x{h} (WxH) is not a multiple of {sf} "
                         f"(pad it to {math.ceil(w / sf) * sf}x{math.ceil(h / sf) * sf})")
    return 1 + (t - 1) // tf, h // sf, w // sf


def expected_token_shape(setting: VisualSetting, n_frames: int, height: int, width: int,
                         batch: int = 1) -> tuple[int, ...]:
    """Token shape for an input of ``n_frames x height x width`` after window padding:
    CV ``(B, 16, t, h, w)``, DV ``(B, t, h, w)``."""
    t = setting.latents_for_window(n_frames)
    h, w = setting.latent_grid(height, width)
    return (batch, t, h, w) if setting.discrete else (batch, CV_CHANNELS, t, h, w)


def frames_to_tensor(frames: np.ndarray, device: str | torch.device | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``np.ndarray [T, H, W, 3]`` uint8 RGB -> ``[1, 3, T, H, W]`` in [-1, 1] (``x/127.5 - 1``) of ``dtype``.

    The uint8 frames are moved to ``device`` first (4x less to transfer) and converted there frame by frame
    (each in fp32, then cast to ``dtype``), so no fp32 copy of the whole window is ever made.
    """
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {arr.dtype} {list(arr.shape)}")
    if arr.shape[0] < 1:
        raise ValueError("a window has at least one frame")
    src = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    n, h, w, _ = src.shape
    out = torch.empty((1, 3, n, h, w), dtype=dtype, device=src.device)
    for i in range(n):
        out[0, :, i] = (src[i].permute(2, 0, 1).to(torch.float32) / 127.5 - 1.0).to(dtype)
    return out


def pad_video(video: torch.Tensor, setting: VisualSetting) -> torch.Tensor:
    """Pad ``[B, C, T, H, W]`` to what the encoder accepts: H and W replicate-padded at the bottom/right to
    multiples of ``sf``, T edge-padded (last frame repeated) to ``1 + tf*ceil((T-1)/tf)``.

    Returns the input itself when no padding is needed.
    """
    if video.dim() != 5:
        raise ValueError(f"video must be [B, C, T, H, W], got {list(video.shape)}")
    _, _, t, h, w = video.shape
    tp = setting.padded_window_length(int(t)) - t
    hp, wp = (a - b for a, b in zip(setting.padded_size(int(h), int(w)), (h, w), strict=True))
    if not (tp or hp or wp):
        return video
    return F.pad(video, (0, wp, 0, hp, 0, tp), mode="replicate")


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """``[3, T, H, W]`` or ``[1, 3, T, H, W]`` float (any dtype) in [-1, 1] -> ``np.ndarray [T, H, W, 3]``
    uint8.

    Values are clamped to [-1, 1], then ``round((x + 1) * 127.5)`` in fp32, frame by frame on the tensor's
    device (no fp32 copy of the whole clip; only uint8 is transferred).
    """
    if video.dim() == 5:
        if video.shape[0] != 1:
            raise ValueError(f"expected a batch of one video, got {list(video.shape)}")
        video = video[0]
    if video.dim() != 4 or video.shape[0] != 3:
        raise ValueError(f"video must be [3, T, H, W], got {list(video.shape)}")
    _, n, h, w = video.shape
    out = torch.empty((n, h, w, 3), dtype=torch.uint8, device=video.device)
    for i in range(n):
        frame = video[:, i].to(torch.float32).clamp(-1.0, 1.0)
        out[i] = ((frame + 1.0) * 127.5).round_().to(torch.uint8).permute(1, 2, 0)
    return out.cpu().numpy()


# ----------------------------------------------------------------------------------------------------
# the tokenizer
# ----------------------------------------------------------------------------------------------------
class CosmosTokenizer:
    """A Cosmos 0.1 video tokenizer: a TorchScript encoder/decoder pair for one :class:`VisualSetting`.

    Build with :meth:`from_pretrained` (locates the files) or :meth:`from_folder`. All model calls run
    under ``torch.inference_mode()``; the returned tensors are inference tensors (not for autograd).
    """

    def __init__(
        self,
        setting: VisualSetting,
        encoder: torch.jit.ScriptModule,
        decoder: torch.jit.ScriptModule,
        *,
        device: torch.device,
        dtype: torch.dtype,
        native: torch.dtype | None = None,
        encoder_path: Path | None = None,
        decoder_path: Path | None = None,
    ) -> None:
        self._setting = setting
        self._encoder = encoder
        self._decoder = decoder
        self._device = torch.device(device)
        self._dtype = dtype
        self._native = native if native is not None else dtype
        self.encoder_path = encoder_path
        self.decoder_path = decoder_path

    # ----- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        setting: VisualSetting | str,
        checkpoint_dir: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = "auto",
        allow_download: bool = True,
    ) -> CosmosTokenizer:
        """Locate the checkpoint (``checkpoints.resolve_cosmos``: explicit dir, ``AVTOK_CHECKPOINTS``, HF
        cache, Hub download) and load it.

        ``device``: default ``"cuda"`` if available else ``"cpu"``. ``dtype``: ``"auto"`` (the checkpoint's
        own; bf16 for the published files), ``"bf16"``, ``"fp32"`` or ``"fp16"``. A dtype the checkpoint
        cannot run in (the published bf16 traces run only in bf16) raises :class:`CheckpointError` at load.
        """
        from .checkpoints import resolve_cosmos

        if isinstance(setting, str):
            setting = VisualSetting.parse(setting)
        folder = resolve_cosmos(setting, checkpoint_dir, allow_download=allow_download)
        return cls.from_folder(setting, folder, device=device, dtype=dtype)

    @classmethod
    def from_folder(
        cls,
        setting: VisualSetting,
        folder: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = "auto",
    ) -> CosmosTokenizer:
        """Load ``folder/encoder.jit`` and ``folder/decoder.jit`` (no search). See :meth:`from_pretrained`."""
        want = parse_dtype(dtype)
        dev = resolve_device(device)
        folder = Path(folder)
        enc_path, dec_path = folder / ENCODER_FILE, folder / DECODER_FILE
        encoder = _load_jit(enc_path, dev)
        decoder = _load_jit(dec_path, dev)
        native = native_dtype(encoder, decoder)
        use = native if want is None else want
        if dev.type == "cpu" and use in (torch.bfloat16, torch.float16):
            ensure_cpu_bf16_avg_pool3d()
        if use != native:
            encoder.to(use)
            decoder.to(use)
        tok = cls(setting, encoder, decoder, device=dev, dtype=use, native=native,
                  encoder_path=enc_path, decoder_path=dec_path)
        if use != native:
            tok._probe()
        return tok

    def _probe(self) -> None:
        """Run a tiny window through encoder and decoder in the requested dtype.

        A checkpoint that cannot run in it (a bf16 trace after ``.float()``: the casts are baked in) raises
        :class:`CheckpointError` naming the file ("... is a bf16 trace and runs only in bf16 ...").
        """
        tf, sf = self._setting.temporal, self._setting.spatial
        x = torch.zeros(1, 3, 1 + tf, sf, sf, device=self._device, dtype=self._dtype)
        self.decode(self.encode(x))

    # ----- properties --------------------------------------------------------------------------------
    @property
    def setting(self) -> VisualSetting:
        return self._setting

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the modules run in (floating tensors and CV latents)."""
        return self._dtype

    @property
    def native_dtype(self) -> torch.dtype:
        """The checkpoint's own dtype (what ``dtype="auto"`` picks)."""
        return self._native

    def weight_paths(self) -> dict[str, Path | None]:
        """The files this tokenizer was loaded from (for reports)."""
        return {"encoder": self.encoder_path, "decoder": self.decoder_path}

    def __repr__(self) -> str:
        return (f"CosmosTokenizer({self._setting.name}, device={self._device}, "
                f"dtype={DTYPE_NAMES.get(self._dtype, self._dtype)})")

    # ----- running the modules -----------------------------------------------------------------------
    def _run(self, module: torch.jit.ScriptModule, arg: torch.Tensor, path: Path | None) -> Any:
        try:
            return module(arg)
        except torch.OutOfMemoryError as e:
            raise torch.OutOfMemoryError(f"{self._setting.name}: {one_line(e)}") from None
        except (RuntimeError, NotImplementedError, ValueError, TypeError, IndexError) as e:
            if "KeyboardInterrupt" in str(e):  # TorchScript wraps Ctrl-C in a RuntimeError
                raise KeyboardInterrupt from None
            msg = one_line(e)
            where = f"{path}" if path is not None else self._setting.name
            if self._dtype != self._native and _is_dtype_error(msg):
                nat = DTYPE_NAMES.get(self._native, str(self._native))
                raise TokenizerRuntimeError(
                    f"{where}: this checkpoint is a {nat} trace and runs only in {nat}; use --dtype auto/{nat} "
                    f"(running it in {DTYPE_NAMES.get(self._dtype, self._dtype)}: {msg})"
                ) from None
            raise TokenizerRuntimeError(f"{where}: {msg}") from None

    # ----- tensors in, tensors out -------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Encode ``video [B, 3, T, H, W]`` in [-1, 1] (any float dtype; cast to the model dtype).

        ``T = 1 + tf*k`` and ``H, W`` multiples of ``sf`` (ValueError otherwise; see :meth:`encode_window`
        for arbitrary sizes). Returns CV latent ``[B, 16, 1+k, H/sf, W/sf]`` in the model dtype, or DV ids
        ``[B, 1+k, H/sf, W/sf]`` int32 in ``[0, 64000)``.
        """
        if not isinstance(video, torch.Tensor) or not video.is_floating_point():
            raise ValueError("video must be a floating-point tensor [B, 3, T, H, W] in [-1, 1]")
        t, h, w = check_video_shape(self._setting, tuple(video.shape))
        with torch.inference_mode():
            x = video.to(device=self._device, dtype=self._dtype)
            out = self._run(self._encoder, x, self.encoder_path)
            tokens = self._pick_tokens(out)
            b = video.shape[0]
            want = (b, t, h, w) if self._setting.discrete else (b, CV_CHANNELS, t, h, w)
            if tuple(tokens.shape) != want:
                raise TokenizerRuntimeError(
                    f"{self.encoder_path or self._setting.name}: encoder returned {list(tokens.shape)}, "
                    f"expected {list(want)} for {self._setting.name} (is this the right checkpoint?)")
            if self._setting.discrete:
                return tokens.to(torch.int32)
            return tokens.to(self._dtype)

    def _pick_tokens(self, out: Any) -> torch.Tensor:
        """CV: ``(latent, (zero, zero))`` -> latent; DV: ``(ids, codes, zeros)`` -> ids (the integer one)."""
        where = self.encoder_path or self._setting.name
        if isinstance(out, torch.Tensor):
            tensors = [out]
        elif isinstance(out, (tuple, list)):
            tensors = [o for o in out if isinstance(o, torch.Tensor)]
        else:
            raise TokenizerRuntimeError(f"{where}: unexpected encoder output {type(out).__name__}")
        if self._setting.discrete:
            ids = [o for o in tensors if not o.is_floating_point() and o.dim() == 4]
            if not ids:
                raise TokenizerRuntimeError(
                    f"{where}: encoder returned no integer token ids: not a discrete (DV) checkpoint?")
            return ids[0]
        if not tensors or not tensors[0].is_floating_point():
            raise TokenizerRuntimeError(
                f"{where}: encoder returned no floating latent: not a continuous (CV) checkpoint?")
        return tensors[0]

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Decode tokens to ``[B, 3, 1 + tf*(t-1), H, W]`` float32 clamped to [-1, 1].

        CV: latent ``[B, 16, t, h, w]`` (any float dtype, cast to the model dtype); DV: ids ``[B, t, h, w]``
        of any integer dtype (int64 kept, others -> int32), values in ``[0, 64000)``.
        """
        with torch.inference_mode():
            return self.decode_raw(tokens).to(torch.float32).clamp_(-1.0, 1.0)

    def decode_raw(self, tokens: torch.Tensor) -> torch.Tensor:
        """Like :meth:`decode` but returns the decoder's own output: model dtype, *not* clamped
        (the published decoders reach +-7)."""
        if not isinstance(tokens, torch.Tensor):
            raise ValueError("tokens must be a torch.Tensor")
        if self._setting.discrete:
            if tokens.is_floating_point() or tokens.dtype == torch.bool or tokens.dim() != 4:
                raise ValueError(f"{self._setting.name}: tokens must be integer ids [B, t, h, w], got "
                                 f"{tokens.dtype} {list(tokens.shape)}")
        elif not tokens.is_floating_point() or tokens.dim() != 5 or tokens.shape[1] != CV_CHANNELS:
            raise ValueError(f"{self._setting.name}: tokens must be a float latent [B, {CV_CHANNELS}, t, h, w], "
                             f"got {tokens.dtype} {list(tokens.shape)}")
        if tokens.numel() == 0:
            raise ValueError(f"{self._setting.name}: empty tokens {list(tokens.shape)}")
        with torch.inference_mode():
            if self._setting.discrete:
                x = tokens.to(self._device)
                if x.dtype != torch.int64:
                    x = x.to(torch.int32)  # by value (uint16 stored ids included)
                lo, hi = int(x.min()), int(x.max())
                if lo < 0 or hi >= DV_VOCAB_SIZE:
                    raise ValueError(f"{self._setting.name}: token ids must lie in [0, {DV_VOCAB_SIZE}), "
                                     f"got [{lo}, {hi}]")
            else:
                x = tokens.to(device=self._device, dtype=self._dtype)
            out = self._run(self._decoder, x, self.decoder_path)
            if isinstance(out, (tuple, list)):
                out = out[0]
            if not isinstance(out, torch.Tensor) or out.dim() != 5 or out.shape[1] != 3:
                raise TokenizerRuntimeError(
                    f"{self.decoder_path or self._setting.name}: decoder returned an unexpected "
                    f"{list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
            return out

    # ----- windows of uint8 frames -------------------------------------------------------------------
    def encode_window(self, frames_uint8: np.ndarray) -> torch.Tensor:
        """Encode one window ``np.ndarray [T, H, W, 3]`` uint8 RGB of any size and length.

        Converted on the device to [-1, 1] in the model dtype, H/W replicate-padded (bottom/right) to
        multiples of ``sf``, T edge-padded (last frame repeated) to ``1 + tf*ceil((T-1)/tf)``. Returns CV
        ``[1, 16, t, h, w]`` (model dtype) or DV ``[1, t, h, w]`` int32, with ``t = 1 + ceil((T-1)/tf)``
        and ``h, w = ceil(H/sf), ceil(W/sf)``.
        """
        with torch.inference_mode():
            x = frames_to_tensor(frames_uint8, self._device, dtype=self._dtype)
            x = pad_video(x, self._setting)
            return self.encode(x)

    def decode_window(self, tokens: torch.Tensor, n_frames: int, height: int, width: int) -> np.ndarray:
        """Decode one window's tokens (CV ``[1, 16, t, h, w]`` / DV ``[1, t, h, w]``) and crop back to
        ``np.ndarray [n_frames, height, width, 3]`` uint8 (clamped, ``round((x+1)*127.5)``)."""
        with torch.inference_mode():
            video = self.decode_raw(tokens)
            if video.shape[0] != 1:
                raise ValueError(f"decode_window takes one window (batch 1), got {list(tokens.shape)}")
            _, _, t, h, w = video.shape
            if not (1 <= n_frames <= t and 1 <= height <= h and 1 <= width <= w):
                raise ValueError(f"{self._setting.name}: cannot crop decoded {t}x{h}x{w} (TxHxW) to "
                                 f"{n_frames}x{height}x{width}")
            return tensor_to_frames(video[0, :, :n_frames, :height, :width])

    # ----- convenience -------------------------------------------------------------------------------
    def token_shape(self, n_frames: int, height: int, width: int) -> tuple[int, ...]:
        """Shape :meth:`encode_window` returns for a window of ``n_frames x height x width``."""
        return expected_token_shape(self._setting, n_frames, height, width)


def _load_jit(path: Path, device: torch.device) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():  # "torch.jit.load is deprecated": the published files are TorchScript
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device)
    except Exception as e:  # noqa: BLE001 -- any load failure is a bad checkpoint file
        raise CheckpointError(f"{path}: cannot load TorchScript file ({one_line(e)})") from None
    module.eval()
    return module

