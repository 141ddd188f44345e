"""Cosmos stand-ins that take as long as a GPU would: for measuring how busy the pipeline keeps a model.

``build_gpu_speed_cosmos(setting, out_dir)`` writes ``out_dir/<setting.repo_name>/{encoder,decoder}.jit``
with the published files' interface (bf16 ``torch.jit.trace``\\ s of ``nn.Sequential``\\ s, same output
tuples as :mod:`avtok_ui.testing.tiny_cosmos`):

* CV encoder ``[B, 3, T, H, W]`` -> ``(latent [B, 16, t, h, w] bf16, (tensor([0.]), tensor([0.])))``;
* DV encoder -> ``(ids int32 [B, t, h, w] in [0, 64000), codes bf16 [B, 6, t, h, w], zeros fp32
  [B, 1, 1, 1, w])``;
* decoders (CV latent bf16 / DV ids int32 or int64) -> bf16 ``[B, 3, 1 + tf*(t-1), H, W]``.

All the work of each file is ONE custom op (``avtok_gpu_speed::encode`` / ``::decode``, registered with
``torch.library.custom_op`` when this module is imported) that

1. materialises a shape-correct output cheaply (encoder: every ``tf``-th frame subsampled by ``sf``,
   channels repeated; decoder: nearest upsampling of the latent's first three channels), so reconstructions
   still look like the source (a blocky version of it) and the H.264 encoder sees realistic content;
2. then sleeps (GIL released) for the rest of a fixed hold: ``encode_ms`` per input frame and ``decode_ms``
   per output frame, scaled by pixel count relative to 1280x720 (and by batch size). The hold is baked into
   the traced files as constants.

A process-wide clock (:func:`model_clock`) accumulates the time spent inside those ops: the model time.

**The loader process must import this module before** ``torch.jit.load`` **of such a file** (the op's
schema must be registered; otherwise loading fails with "Unknown builtin op: avtok_gpu_speed::encode").
The product does not import it: run the CLI in a wrapper process that does, e.g.::

    python -m avtok_ui.testing.gpu_speed build --out /tmp/gpu-ckpt --encode-ms 10 --decode-ms 15
    python -m avtok_ui.testing.gpu_speed run --stats stats.json -- \\
        tokenize clip.mp4 --setting CV8x16x16 --checkpoints /tmp/gpu-ckpt --no-audio --no-metrics

``run`` calls :func:`avtok_ui.cli.main` in this process and writes :class:`ModelClock` (model time,
wall time from the first model call to the end of the run) as JSON. On CUDA the hold is a host-side sleep
while the (cheap) output kernels run: the host thread is blocked for the hold, as it is when a real model's
output is synchronised.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..settings import ALL_SETTINGS, CV_CHANNELS, FSQ_LEVELS, VisualSetting
from .tiny_cosmos import _save_atomic

__all__ = [
    "OP_NAMESPACE",
    "CONFIG_FILE",
    "ModelClock",
    "model_clock",
    "reset_model_clock",
    "build_gpu_speed_cosmos",
    "build_all_gpu_speed_cosmos",
    "run_cli",
    "warm_up",
]

OP_NAMESPACE = "avtok_gpu_speed"
#: Written next to the setting folders: the holds the files were built with (documentation for reports).
CONFIG_FILE = "gpu_speed.json"
#: Pixels of the reference frame the holds are given for.
REF_PIXELS = 1280 * 720
DV_CHANNELS = len(FSQ_LEVELS)
_DV_MAX_ID = 63999


# ----------------------------------------------------------------------------------------------------
# the model clock
# ----------------------------------------------------------------------------------------------------
@dataclass
class ModelClock:
    """Time spent inside the stand-in ops of this process (seconds; ``first_start``/``last_end`` are
    ``time.perf_counter()`` values, None before the first call)."""

    calls: int = 0
    model_s: float = 0.0
    encode_s: float = 0.0
    decode_s: float = 0.0
    first_start: float | None = None
    last_end: float | None = None


_CLOCK = ModelClock()
_CLOCK_LOCK = threading.Lock()


def model_clock() -> ModelClock:
    """A copy of this process's model clock."""
    with _CLOCK_LOCK:
        return ModelClock(**asdict(_CLOCK))


def reset_model_clock() -> None:
    """Zero the model clock (e.g. between runs in one process)."""
    global _CLOCK
    with _CLOCK_LOCK:
        _CLOCK = ModelClock()


def _hold(started: float, seconds: float, which: str) -> None:
    """Sleep until ``started + seconds`` (GIL released), then book the op's whole duration."""
    remaining = started + seconds - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)
    end = time.perf_counter()
    with _CLOCK_LOCK:
        _CLOCK.calls += 1
        _CLOCK.model_s += end - started
        if which == "encode":
            _CLOCK.encode_s += end - started
        else:
            _CLOCK.decode_s += end - started
        if _CLOCK.first_start is None or started < _CLOCK.first_start:
            _CLOCK.first_start = started
        if _CLOCK.last_end is None or end > _CLOCK.last_end:
            _CLOCK.last_end = end


# ----------------------------------------------------------------------------------------------------
# the ops (registered on import)
# ----------------------------------------------------------------------------------------------------
@torch.library.custom_op(f"{OP_NAMESPACE}::encode", mutates_args=())
def _encode_op(x: torch.Tensor, tf: int, sf: int, discrete: bool,
               ms_per_frame: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x [B, 3, T, H, W]`` -> ``(tokens, codes, zeros)``: CV ``(latent bf16 [B,16,t,h,w], zeros [1],
    zeros [1])``; DV ``(ids int32 [B,t,h,w], codes bf16 [B,6,t,h,w], zeros fp32 [B,1,1,1,w])``."""
    started = time.perf_counter()
    b, _, n, hh, ww = x.shape
    sub = x[:, :, ::tf, ::sf, ::sf].to(torch.bfloat16)  # [B, 3, t, h, w]: every tf-th frame, subsampled
    if discrete:
        v = sub[:, :1].float().clamp(-1.0, 1.0)
        ids = ((v + 1.0) * (_DV_MAX_ID / 2.0)).round().to(torch.int32)[:, 0]
        codes = sub.repeat(1, 2, 1, 1, 1).contiguous()  # [B, 6, t, h, w]
        zeros = torch.zeros((b, 1, 1, 1, sub.shape[-1]), dtype=torch.float32, device=x.device)
        out = (ids, codes, zeros)
    else:
        latent = sub.repeat(1, (CV_CHANNELS + 2) // 3, 1, 1, 1)[:, :CV_CHANNELS].contiguous()
        out = (latent, torch.zeros(1), torch.zeros(1))
    _hold(started, ms_per_frame / 1000.0 * b * n * hh * ww / REF_PIXELS, "encode")
    return out


@_encode_op.register_fake
def _(x: torch.Tensor, tf: int, sf: int, discrete: bool,
      ms_per_frame: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, _, n, hh, ww = x.shape
    t, h, w = (n - 1) // tf + 1, (hh - 1) // sf + 1, (ww - 1) // sf + 1
    if discrete:
        return (x.new_empty((b, t, h, w), dtype=torch.int32), x.new_empty((b, 6, t, h, w), dtype=torch.bfloat16),
                x.new_empty((b, 1, 1, 1, w), dtype=torch.float32))
    return (x.new_empty((b, CV_CHANNELS, t, h, w), dtype=torch.bfloat16), torch.empty(1), torch.empty(1))


@torch.library.custom_op(f"{OP_NAMESPACE}::decode", mutates_args=())
def _decode_op(z: torch.Tensor, tf: int, sf: int, discrete: bool, ms_per_frame: float) -> torch.Tensor:
    """CV latent ``[B, 16, t, h, w]`` / DV ids ``[B, t, h, w]`` -> bf16 ``[B, 3, 1 + tf*(t-1), t*sf, w*sf]``
    (nearest upsampling of the first three latent channels, or of the ids scaled to [-1, 1])."""
    started = time.perf_counter()
    if discrete:
        y = (z.to(torch.float32) * (2.0 / _DV_MAX_ID) - 1.0).to(torch.bfloat16).unsqueeze(1).expand(-1, 3, -1, -1, -1)
    else:
        y = z[:, :3].to(torch.bfloat16)
    b, c, t, h, w = y.shape
    # frames: latent 0 -> frame 0, latent i >= 1 -> tf frames; space: sf x sf blocks (one copy at the end)
    index = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(1, t).repeat_interleave(tf)]).to(y.device)
    y = y.index_select(2, index).repeat_interleave(sf, dim=4)  # [b, c, n, h, w*sf]: small
    n = y.shape[2]
    # rows repeated by one copy whose inner runs are whole output rows (a GPU model costs the host no CPU here;
    # the 0-stride element-wise expand took twice the CPU)
    out = y.unsqueeze(4).expand(b, c, n, h, sf, w * sf).reshape(b, c, n, h * sf, w * sf)
    _hold(started, ms_per_frame / 1000.0 * b * n * h * sf * w * sf / REF_PIXELS, "decode")
    return out.contiguous()


@_decode_op.register_fake
def _(z: torch.Tensor, tf: int, sf: int, discrete: bool, ms_per_frame: float) -> torch.Tensor:
    t, h, w = z.shape[-3:]
    return z.new_empty((z.shape[0], 3, 1 + tf * (t - 1), h * sf, w * sf), dtype=torch.bfloat16)


# ----------------------------------------------------------------------------------------------------
# modules and files
# ----------------------------------------------------------------------------------------------------
class _Bf16(nn.Module):
    """Casts to bf16 (a no-op for bf16 input) and owns a bf16 parameter, so the file is a "bf16 trace"."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, dtype=torch.bfloat16), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16)


class _Encode(nn.Module):
    def __init__(self, setting: VisualSetting, ms: float) -> None:
        super().__init__()
        self.tf, self.sf, self.discrete, self.ms = setting.temporal, setting.spatial, setting.discrete, float(ms)

    def forward(self, x: torch.Tensor):  # noqa: ANN201 -- the published tuple layouts (see module doc)
        a, b, c = torch.ops.avtok_gpu_speed.encode(x, self.tf, self.sf, self.discrete, self.ms)
        return (a, b, c) if self.discrete else (a, (b, c))


class _Decode(nn.Module):
    def __init__(self, setting: VisualSetting, ms: float) -> None:
        super().__init__()
        self.tf, self.sf, self.discrete, self.ms = setting.temporal, setting.spatial, setting.discrete, float(ms)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.ops.avtok_gpu_speed.decode(z, self.tf, self.sf, self.discrete, self.ms)


def build_gpu_speed_cosmos(setting: VisualSetting, out_dir: str | Path, *, encode_ms: float = 10.0,
                           decode_ms: float = 15.0) -> Path:
    """Write ``out_dir/<setting.repo_name>/{encoder,decoder}.jit`` holding ``encode_ms`` per input frame and
    ``decode_ms`` per output frame (per 1280x720 frame, scaled by pixel count); return that folder.

    The model clock is reset afterwards (tracing runs the ops once each).
    """
    folder = Path(out_dir) / setting.repo_name
    folder.mkdir(parents=True, exist_ok=True)
    tf, sf = setting.temporal, setting.spatial
    x = torch.rand(1, 3, 1 + tf, 2 * sf, 3 * sf).mul(2).sub(1).to(torch.bfloat16)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # "torch.jit.trace is deprecated"
        encoder = nn.Sequential(_Bf16(), _Encode(setting, encode_ms)).eval()
        enc = torch.jit.trace(encoder, x)
        z = encoder(x)[0]
        if setting.discrete:
            decoder = nn.Sequential(_Decode(setting, decode_ms)).eval()
        else:
            decoder = nn.Sequential(_Bf16(), _Decode(setting, decode_ms)).eval()
        dec = torch.jit.trace(decoder, z)
    _save_atomic(enc, folder / "encoder.jit")
    _save_atomic(dec, folder / "decoder.jit")
    reset_model_clock()
    return folder


def build_all_gpu_speed_cosmos(root: str | Path, *, encode_ms: float = 10.0, decode_ms: float = 15.0) -> Path:
    """The six settings' folders under ``root`` (usable as ``AVTOK_CHECKPOINTS``) plus ``root/gpu_speed.json``
    recording the holds; return ``root``."""
    root = Path(root)
    for setting in ALL_SETTINGS:
        build_gpu_speed_cosmos(setting, root, encode_ms=encode_ms, decode_ms=decode_ms)
    (root / CONFIG_FILE).write_text(json.dumps(
        {"encode_ms_per_720p_frame": encode_ms, "decode_ms_per_720p_frame": decode_ms,
         "op_namespace": OP_NAMESPACE, "loader_must_import": "avtok_ui.testing.gpu_speed"}, indent=1) + "\n")
    return root


# ----------------------------------------------------------------------------------------------------
# wrapper process: the CLI with the ops registered
# ----------------------------------------------------------------------------------------------------
def warm_up() -> None:
    """Call both ops once on tiny tensors, then zero the clock.

    The first call of a ``custom_op`` in a process imports much of ``torch._dynamo`` (about 6 s on a 2-core
    CPU): done here, that cost does not land inside the first model call of a measured run.
    """
    x = torch.zeros(1, 3, 1, 16, 16, dtype=torch.bfloat16)
    for discrete in (False, True):
        z = torch.ops.avtok_gpu_speed.encode(x, 8, 16, discrete, 0.0)[0]
        torch.ops.avtok_gpu_speed.decode(z, 8, 16, discrete, 0.0)
    reset_model_clock()


def run_cli(argv: list[str], stats: str | Path | None = None) -> int:
    """Run ``avtok_ui.cli.main(argv)`` in this process (the ops are registered and warmed up) and, if
    ``stats`` is given, write the model clock there as JSON with ``end`` (perf_counter when the CLI
    returned), ``wall_from_first_call_s`` and ``exit_code``. Returns the CLI's exit code."""
    from ..cli import main

    warm_up()
    code = 1
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code if isinstance(e.code, int) else 1
    finally:
        end = time.perf_counter()
        if stats is not None:
            clock = model_clock()
            data = asdict(clock) | {"end": end, "exit_code": code, "wall_from_first_call_s":
                                    None if clock.first_start is None else end - clock.first_start}
            Path(stats).write_text(json.dumps(data, indent=1) + "\n")
    return int(code)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m avtok_ui.testing.gpu_speed",
                                description="GPU-speed Cosmos stand-ins: build them, or run the CLI with them")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the six settings' folders (use the folder as AVTOK_CHECKPOINTS)")
    b.add_argument("--out", required=True, type=Path)
    b.add_argument("--encode-ms", type=float, default=10.0, help="hold per 1280x720 input frame (default 10)")
    b.add_argument("--decode-ms", type=float, default=15.0, help="hold per 1280x720 output frame (default 15)")
    r = sub.add_parser("run", help="run `avtok ARGS...` in this process, the stand-in ops registered")
    r.add_argument("--stats", default=None, help="write the model clock here (JSON)")
    r.add_argument("args", nargs=argparse.REMAINDER, help="-- then the avtok arguments")
    args = p.parse_args(argv)
    if args.cmd == "build":
        build_all_gpu_speed_cosmos(args.out, encode_ms=args.encode_ms, decode_ms=args.decode_ms)
        print(f"GPU-speed stand-ins written to {args.out} (encode {args.encode_ms:g} ms, decode "
              f"{args.decode_ms:g} ms per 720p frame); load them only in a process that imports avtok_ui.testing.gpu_speed")
        return 0
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    return run_cli(rest, args.stats)


if __name__ == "__main__":
    # Run as ``python -m``: this file is ``__main__``, whose import already registered the ops under
    # ``avtok_gpu_speed``; importing it again under its package name would register them twice.
    sys.modules.setdefault("avtok_ui.testing.gpu_speed", sys.modules[__name__])
    raise SystemExit(main())
