"""Descript Audio Codec (DAC, 44.1 kHz) tokenization and latent <-> code-frame alignment.

Conventions (see ``docs/ARCHITECTURE.md``):

* Audio given to :class:`DacCodec` is **mono, 44100 Hz, float32 in [-1, 1]**, shaped ``[N]`` or ``[1, N]``.
  DAC has a single input channel: the media layer (``media.read_audio``) resamples and downmixes before
  audio reaches this module; nothing here resamples or mixes. No loudness normalisation is applied
  (``DAC.compress`` would normalise to -16 LUFS and need the input level stored to undo it).
* One code frame = 512 samples (``settings.DAC_HOP``). ``N`` samples give ``ceil(N / 512)`` code frames
  (DAC right-pads with zeros); decoding gives 512 samples per code frame, trimmed back to ``N``.
* Codes are ``np.ndarray [n_codebooks, n_code_frames] int64`` with values in ``[0, 1024)``; row ``k`` is
  the ``k``-th residual codebook, so the first ``k`` rows of a 9-codebook encode are exactly the codes of a
  ``k``-codebook encode.
* Long signals are processed in chunks of ``chunk_frames`` code frames, each with ``context_frames`` of real
  neighbouring signal (or codes) on both sides, of which only the chunk's own output is kept. With 16 frames
  (8192 samples) of context -- more than the model's receptive field -- chunked results equal a whole-signal
  pass (codes identical; decoded audio identical to float rounding), at bounded memory.

Alignment: latent ``i`` of the visual tokens covers ``[start_i, end_i)`` seconds; its code frames are
``codes[:, off[i]:off[i+1]]`` with ``off`` from :func:`latent_code_offsets` (boundaries rounded to the nearest
code frame boundary from the *timestamps*, so there is no drift and every code frame belongs to one latent).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import CheckpointError, one_line
from .readouts import codes_per_latent  # noqa: F401 -- part of this module's API (one copy, in readouts)
from .settings import DAC_CODEBOOKS, DAC_HOP, DAC_SAMPLE_RATE, code_frame_boundary

if TYPE_CHECKING:  # pragma: no cover
    import dac

__all__ = [
    "DacCodec",
    "load_dac_model",
    "latent_code_offsets",
    "latent_times_from_frames",
    "codes_per_latent",
]

DEFAULT_CHUNK_FRAMES = 256
DEFAULT_CONTEXT_FRAMES = 16


# ----- loading ---------------------------------------------------------------------------------------
def load_dac_model(path: str | Path) -> dac.DAC:
    """Read a DAC weights file in the released format (``{"state_dict", "metadata": {"kwargs"}}``).

    Unlike ``dac.DAC.load`` this never unpickles code (``torch.load(weights_only=True)``) and loads the
    state dict strictly, so a wrong file is an error instead of a silently half-random model.
    Returns the model in eval mode on the CPU. Raises :class:`CheckpointError` (one line naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"DAC weights not found: {path}")
    try:
        import dac
    except Exception as err:  # pragma: no cover - environment problem
        raise CheckpointError(f"cannot import descript-audio-codec to load {path}: {one_line(err)}") from None
    if _is_torch_package(path):
        raise CheckpointError(
            f"{path}: a torch.package archive (what dac.DAC.save() writes by default), not the released DAC "
            f"weights format (a torch.save'd dict with state_dict and metadata); code in packages is never "
            f"unpickled here. Convert it in a Python process you trust: "
            f"`import dac; dac.DAC.load('{path}').save('<new path>', package=False)`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read DAC weights {path}: {one_line(err)}") from None
    if not (isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict)
            and isinstance(blob.get("metadata"), dict) and isinstance(blob["metadata"].get("kwargs"), dict)):
        raise CheckpointError(f"{path} is not a DAC weights file (no state_dict/metadata.kwargs)")
    import inspect

    allowed = set(inspect.signature(dac.DAC).parameters)
    kwargs = {k: v for k, v in blob["metadata"]["kwargs"].items() if k in allowed}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
            model = dac.DAC(**kwargs)
        model.load_state_dict(blob["state_dict"], strict=True)
    except Exception as err:
        raise CheckpointError(f"cannot load DAC weights {path}: {one_line(err)}") from None
    hop = int(np.prod(model.encoder_rates))
    if int(model.sample_rate) != DAC_SAMPLE_RATE or hop != DAC_HOP:
        raise CheckpointError(
            f"{path} is a {model.sample_rate} Hz / hop {hop} DAC; avtok-ui needs the 44.1 kHz model "
            f"(hop {DAC_HOP})"
        )
    return model.eval()


def _is_torch_package(path: Path) -> bool:
    """True for a ``torch.package`` archive (a zip with ``<name>/.data/`` entries and no ``data.pkl``)."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return (any("/.data/" in n or n.startswith(".data/") for n in names)
            and not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names))


# ----- codec -----------------------------------------------------------------------------------------
class DacCodec:
    """Chunked, bounded-memory DAC encode/decode of mono 44.1 kHz audio.

    ``DacCodec(model)`` wraps a loaded ``dac.DAC`` (put in eval mode, moved to ``device``: CPU unless a
    device such as ``"cuda"`` is given). All work runs under ``torch.inference_mode``.
    """

    sample_rate: int = DAC_SAMPLE_RATE
    hop: int = DAC_HOP

    def __init__(self, model: dac.DAC, device: str | torch.device | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.weights_path: Path | None = None  # set by from_pretrained (recorded in token files)
        self.n_codebooks: int = int(model.n_codebooks)
        self.codebook_size: int = int(model.codebook_size)
        if int(model.sample_rate) != self.sample_rate or int(np.prod(model.encoder_rates)) != self.hop:
            raise ValueError(f"DacCodec needs a {self.sample_rate} Hz model with hop {self.hop}")

    @classmethod
    def from_pretrained(
        cls,
        weights: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        allow_download: bool = True,
    ) -> DacCodec:
        """Locate (``checkpoints.resolve_dac``: explicit path, local caches, then download) and load DAC.

        Raises :class:`CheckpointError` with one line naming the file when it cannot be found or loaded.
        """
        from .checkpoints import resolve_dac

        path = resolve_dac(weights, allow_download=allow_download)
        codec = cls(load_dac_model(path), device=device)
        codec.weights_path = Path(path)
        return codec

    # ----- validation helpers ------------------------------------------------------------------------
    def _check_n_codebooks(self, n_codebooks: int) -> int:
        if isinstance(n_codebooks, bool) or not isinstance(n_codebooks, (int, np.integer)) or not (
            1 <= int(n_codebooks) <= self.n_codebooks
        ):
            raise ValueError(f"n_codebooks must be an integer from 1 to {self.n_codebooks}, got {n_codebooks!r}")
        return int(n_codebooks)

    @staticmethod
    def _check_chunking(chunk_frames: int, context_frames: int) -> tuple[int, int]:
        if int(chunk_frames) < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        if int(context_frames) < 0:
            raise ValueError(f"context_frames must be >= 0, got {context_frames}")
        return int(chunk_frames), int(context_frames)

    def _ensure_eval(self) -> None:
        # In train mode DAC's quantizer ignores n_quantizers (quantizer dropout): always encode in eval mode.
        if self.model.training:
            self.model.eval()

    # ----- encode ------------------------------------------------------------------------------------
    def _encode_segment(self, segment: np.ndarray, n_codebooks: int) -> np.ndarray:
        """``segment`` float32 [k*512] -> codes int64 [n_codebooks, k] (one model call)."""
        x = torch.from_numpy(np.ascontiguousarray(segment)).to(self.device).view(1, 1, -1)
        _, codes, *_ = self.model.encode(x, n_codebooks)
        return codes[0, :n_codebooks].to("cpu", torch.int64).numpy()

    def _encode_iter(
        self,
        pieces: Iterable[np.ndarray | torch.Tensor],
        n_codebooks: int,
        chunk_frames: int,
        context_frames: int,
        on_chunk: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Core of :meth:`encode`/:meth:`encode_stream`: rolling buffer over the incoming sample pieces.

        Chunk ``[a, b)`` (code frames, ``a`` a multiple of ``chunk_frames``) is encoded from samples
        ``[max(0, a-ctx)*hop, min(nf, b+ctx)*hop)`` (zero-padded past the end, like ``DAC.preprocess``),
        keeping frames ``[a, b)``. The segment bounds depend only on ``a`` and the total length, so any
        split of the input into pieces gives the same model calls and identical codes.
        """
        n_q = self._check_n_codebooks(n_codebooks)
        cf, ctx = self._check_chunking(chunk_frames, context_frames)
        hop = self.hop
        buf = _SampleBuffer()
        out: list[np.ndarray] = []
        a = 0  # next code frame to produce

        def emit(b: int, seg_end_frame: int) -> None:
            nonlocal a
            s = max(0, a - ctx)
            codes = self._encode_segment(buf.take(s * hop, seg_end_frame * hop), n_q)
            out.append(codes[:, a - s : b - s])
            a = b
            buf.drop_before(max(0, a - ctx) * hop)
            if on_chunk is not None:
                on_chunk(a)

        self._ensure_eval()
        with torch.inference_mode():
            for piece in pieces:
                buf.append(_as_mono(piece))
                while buf.end >= (a + cf + ctx) * hop:
                    emit(a + cf, a + cf + ctx)
            n_samples = buf.end
            nf = math.ceil(n_samples / hop)
            pad = nf * hop - n_samples
            if pad:
                buf.append(np.zeros(pad, np.float32))
            while a < nf:
                b = min(a + cf, nf)
                emit(b, min(nf, b + ctx))
        if not out:
            return np.zeros((n_q, 0), np.int64)
        return np.ascontiguousarray(np.concatenate(out, axis=1))

    def encode(
        self,
        audio: np.ndarray | torch.Tensor,
        n_codebooks: int = DAC_CODEBOOKS,
        *,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        context_frames: int = DEFAULT_CONTEXT_FRAMES,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Encode mono 44.1 kHz audio to DAC codes.

        ``audio``: float ``[N]`` or ``[1, N]`` (numpy or torch), values in [-1, 1], 44100 Hz, one channel.
        Returns ``np.ndarray [n_codebooks, ceil(N/512)] int64`` in ``[0, 1024)``, identical to a single
        whole-signal ``DAC.encode`` when ``context_frames >= 16``. ``progress(done_frames, total_frames)``
        is called after each chunk. Memory is bounded by one chunk of ``chunk_frames + 2*context_frames``.
        """
        x = _as_mono(audio)
        total = math.ceil(x.shape[0] / self.hop)
        cb = (lambda done: progress(done, total)) if progress is not None else None
        return self._encode_iter([x], n_codebooks, chunk_frames, context_frames, cb)

    def encode_stream(
        self,
        chunks: Iterable[np.ndarray | torch.Tensor],
        n_codebooks: int = DAC_CODEBOOKS,
        *,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        context_frames: int = DEFAULT_CONTEXT_FRAMES,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Encode an iterator of consecutive mono pieces (``[n]`` or ``[1, n]`` float32, any sizes).

        Same result as :meth:`encode` on their concatenation, holding only a rolling buffer of about
        ``(chunk_frames + 2*context_frames) * 512`` samples plus the latest piece. ``progress(done_frames)``
        is called after each chunk (the total is unknown while streaming).
        """
        return self._encode_iter(chunks, n_codebooks, chunk_frames, context_frames, progress)

    # ----- decode ------------------------------------------------------------------------------------
    def _check_codes(self, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(codes, torch.Tensor):
            t = codes.detach().to("cpu")
        else:
            arr = np.asarray(codes)
            if arr.dtype.kind not in "iu":
                raise ValueError(f"DAC codes must be integers, got dtype {arr.dtype}")
            t = torch.from_numpy(arr.astype(np.int64, copy=False))
        if t.ndim == 3 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 2:
            raise ValueError(f"DAC codes must be [n_codebooks, n_frames], got shape {tuple(t.shape)}")
        if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"DAC codes must be integers, got dtype {t.dtype}")
        if not 1 <= t.shape[0] <= self.n_codebooks:
            raise ValueError(f"DAC codes have {t.shape[0]} codebooks; expected 1 to {self.n_codebooks}")
        t = t.to(torch.int64)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.codebook_size):
            raise ValueError(f"DAC codes must lie in [0, {self.codebook_size}), got {int(t.min())}..{int(t.max())}")
        return t

    def decode_stream(
        self,
        codes: np.ndarray | torch.Tensor,
        n_samples: int | None = None,
        *,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        context_frames: int = DEFAULT_CONTEXT_FRAMES,
    ) -> Iterator[np.ndarray]:
        """Decode codes chunk by chunk; yields consecutive ``float32 [k]`` pieces in [-1, 1].

        ``codes``: ``[n_q, n]`` integers in ``[0, 1024)``, ``1 <= n_q <= 9`` (the first ``n_q`` codebooks).
        The pieces concatenate to ``n*512`` samples, or to ``n_samples`` (``<= n*512``) when given.
        Each chunk is decoded with ``context_frames`` code frames of context on both sides.
        Arguments are validated when this is called, before the first piece.
        """
        t = self._check_codes(codes)
        cf, ctx = self._check_chunking(chunk_frames, context_frames)
        n = int(t.shape[1])
        full = n * self.hop
        if n_samples is None:
            n_samples = full
        n_samples = int(n_samples)
        if not 0 <= n_samples <= full:
            raise ValueError(f"n_samples {n_samples} is outside 0..{full} ({n} code frames x {self.hop})")
        return self._decode_iter(t, n_samples, cf, ctx)

    def _decode_iter(self, t: torch.Tensor, n_samples: int, cf: int, ctx: int) -> Iterator[np.ndarray]:
        n = int(t.shape[1])
        hop = self.hop
        done = 0
        for a in range(0, n, cf):
            if done >= n_samples:
                break
            b = min(a + cf, n)
            s, e = max(0, a - ctx), min(n, b + ctx)
            self._ensure_eval()
            with torch.inference_mode():
                seg = t[None, :, s:e].to(self.device)
                z, _, _ = self.model.quantizer.from_codes(seg)
                y = self.model.decode(z)
                if y.shape[-1] != (e - s) * hop:  # pragma: no cover - not a 44.1 kHz/512 model
                    raise RuntimeError(f"DAC decoder gave {y.shape[-1]} samples for {e - s} code frames")
                piece = y[0, 0, (a - s) * hop : (b - s) * hop].to("cpu", torch.float32).numpy()
            take = min(piece.shape[0], n_samples - done)
            done += take
            yield np.ascontiguousarray(piece[:take])

    def decode(
        self,
        codes: np.ndarray | torch.Tensor,
        n_samples: int | None = None,
        *,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        context_frames: int = DEFAULT_CONTEXT_FRAMES,
    ) -> np.ndarray:
        """Decode codes ``[n_q, n]`` to mono 44.1 kHz ``float32 [n_samples or n*512]`` in [-1, 1]."""
        pieces = list(self.decode_stream(codes, n_samples, chunk_frames=chunk_frames,
                                         context_frames=context_frames))
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


class _SampleBuffer:
    """Consecutive 1-D float32 pieces addressed by global sample index, without re-copying on append."""

    def __init__(self) -> None:
        self._pieces: deque[np.ndarray] = deque()
        self.start = 0  # global index of the first held sample
        self.end = 0  # global index one past the last held sample

    def append(self, piece: np.ndarray) -> None:
        if piece.shape[0]:
            self._pieces.append(piece)
            self.end += piece.shape[0]

    def take(self, s: int, e: int) -> np.ndarray:
        """Copy of samples ``[s, e)`` (must be held)."""
        if not self.start <= s <= e <= self.end:  # pragma: no cover - internal invariant
            raise RuntimeError(f"sample range {s}..{e} not in buffer {self.start}..{self.end}")
        parts: list[np.ndarray] = []
        pos = self.start
        for p in self._pieces:
            p_end = pos + p.shape[0]
            if p_end > s and pos < e:
                parts.append(p[max(s, pos) - pos : min(e, p_end) - pos])
            if p_end >= e:
                break
            pos = p_end
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def drop_before(self, s: int) -> None:
        """Forget samples before global index ``s``."""
        while self._pieces and self.start + self._pieces[0].shape[0] <= s:
            self.start += self._pieces.popleft().shape[0]
        if self._pieces and self.start < s:
            self._pieces[0] = self._pieces[0][s - self.start :]
            self.start = s


def _as_mono(audio: Any) -> np.ndarray:
    """``[N]``, ``[1, N]`` or ``[1, 1, N]`` float (numpy/torch) -> contiguous-or-view float32 ``[N]``."""
    if isinstance(audio, torch.Tensor):
        if not audio.is_floating_point():
            raise ValueError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
        arr = audio.detach().to("cpu", torch.float32).numpy()
    else:
        arr = np.asarray(audio)
        if arr.dtype.kind != "f":
            raise ValueError(f"audio must be float samples in [-1, 1], got dtype {arr.dtype}")
        arr = arr.astype(np.float32, copy=False)
    while arr.ndim > 1 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise ValueError(
            f"DAC audio must be mono [N] or [1, N] at {DAC_SAMPLE_RATE} Hz, got shape {tuple(np.shape(audio))}"
        )
    return arr


# ----- alignment -------------------------------------------------------------------------------------
def latent_times_from_frames(
    spans: Sequence[tuple[int, int]], frame_times: np.ndarray | Sequence[float], duration_s: float
) -> list[tuple[float, float]]:
    """Time span ``[start, end)`` (seconds, origin = first frame) of every latent, from frame timestamps.

    ``spans``: per latent, the half-open source-frame range ``[s, e)`` (``VisualSetting.latent_source_spans``).
    ``frame_times[i]``: presentation time of source frame ``i`` (s, nondecreasing, first = 0); frame ``i``
    lasts until ``frame_times[i+1]``, the last one until ``duration_s``. Timestamps, not ``i / fps``, so
    variable-frame-rate sources stay aligned.
    """
    ft = np.asarray(frame_times, dtype=np.float64)
    n = ft.shape[0]
    if ft.ndim != 1 or n == 0:
        raise ValueError("frame_times must be a non-empty 1-D sequence of seconds")
    if np.any(np.diff(ft) < 0):
        raise ValueError("frame_times must be nondecreasing")
    if duration_s < ft[-1]:
        raise ValueError(f"duration {duration_s:.6f} s ends before the last frame ({ft[-1]:.6f} s)")
    times = np.append(ft, float(duration_s))
    out: list[tuple[float, float]] = []
    for s, e in spans:
        if not 0 <= s <= e <= n:
            raise ValueError(f"latent span [{s}, {e}) is outside the {n} source frames")
        out.append((float(times[s]), float(times[e])))
    return out


def latent_code_offsets(
    latent_times: Sequence[tuple[float, float]],
    n_code_frames: int,
    sample_rate: int = DAC_SAMPLE_RATE,
    hop: int = DAC_HOP,
) -> np.ndarray:
    """Code-frame offsets ``int64 [t+1]``: latent ``i`` <-> ``codes[:, off[i]:off[i+1]]``.

    ``off[i]`` is the code-frame boundary nearest to latent ``i``'s start time (``code_frame_boundary``),
    clipped to ``[0, n_code_frames]``; ``off[0] = 0`` and ``off[t] = n_code_frames``, so the offsets are
    nondecreasing and every code frame belongs to exactly one latent (a latent may get 0 frames if it is
    shorter than half a hop). Each boundary is within half a hop (5.8 ms) of its latent's true time.
    """
    if len(latent_times) == 0:
        raise ValueError("no latents to align")
    if n_code_frames < 0:
        raise ValueError(f"n_code_frames must be >= 0, got {n_code_frames}")
    starts = np.array([float(s) for s, _ in latent_times], dtype=np.float64)
    if np.any(np.diff(starts) < 0):
        raise ValueError("latent start times must be nondecreasing")
    off = np.empty(len(latent_times) + 1, np.int64)
    for i, s in enumerate(starts):
        off[i] = code_frame_boundary(float(s), sample_rate, hop)
    off[0] = 0
    off[-1] = n_code_frames
    np.clip(off, 0, n_code_frames, out=off)
    return off
