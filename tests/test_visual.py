"""CosmosTokenizer on the tiny bf16 stand-ins: shapes for all six settings, dtype rules, the CPU bf16
avg_pool3d fallback, window pad/crop, one-line errors.

The ``tiny_checkpoints`` fixture (tests/conftest.py) builds the stand-ins once per session. Building
registers the CPU bf16 avg_pool3d fallback in this process, so every check that needs a process
*without* it runs in a subprocess.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from avtok_ui.errors import AvtokError, CheckpointError
from avtok_ui.errors import one_line as one_line_error
from avtok_ui.settings import ALL_SETTINGS, CV_CHANNELS, DV_VOCAB_SIZE, VisualSetting
from avtok_ui.testing.tiny_cosmos import FSQ_BASIS
from avtok_ui.visual import (
    CosmosTokenizer,
    TokenizerRuntimeError,
    check_video_shape,
    cpu_bf16_avg_pool3d_registered,
    frames_to_tensor,
    native_dtype,
    pad_video,
    parse_dtype,
    tensor_to_frames,
)

IDS = [s.name for s in ALL_SETTINGS]
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizers(tiny_checkpoints: Path) -> dict[str, CosmosTokenizer]:
    return {
        s.name: CosmosTokenizer.from_folder(s, tiny_checkpoints / s.repo_name, device="cpu")
        for s in ALL_SETTINGS
    }


def _raw(tiny_checkpoints: Path, setting: VisualSetting) -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    folder = tiny_checkpoints / setting.repo_name
    return torch.jit.load(str(folder / "encoder.jit")), torch.jit.load(str(folder / "decoder.jit"))


def smooth_video(t: int, h: int, w: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """``[B, 3, T, H, W]`` fp32 in [-0.8, 0.8]: slowly moving low-frequency sinusoids."""
    g = torch.Generator().manual_seed(seed)
    tt = torch.arange(t, dtype=torch.float32).view(t, 1, 1)
    yy = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xx = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    chans = []
    for _ in range(3):
        fx, fy, ph = (torch.rand(3, generator=g) * torch.tensor([1.0, 1.0, 6.28])).tolist()
        chans.append(0.8 * torch.sin(2 * math.pi * (fx * xx / w + fy * yy / h) + ph + 0.05 * tt))
    return torch.stack(chans).unsqueeze(0).expand(batch, -1, -1, -1, -1).contiguous()


def smooth_frames(t: int, h: int, w: int) -> np.ndarray:
    v = smooth_video(t, h, w)[0]
    return ((v + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def run_py(code: str, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter (no fallback registered); it prints one JSON line last."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["_stderr"] = proc.stderr
    return out


# ----------------------------------------------------------------------------------------------------
# all six settings: shapes and counts against the closed forms
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=IDS)
def test_encode_decode_shapes(tokenizers: dict[str, CosmosTokenizer], setting: VisualSetting) -> None:
    tok = tokenizers[setting.name]
    tf, sf = setting.temporal, setting.spatial
    assert tok.setting == setting and tok.device == torch.device("cpu") and tok.dtype == torch.bfloat16
    for k, hm, wm, batch in ((0, 1, 1, 1), (2, 2, 3, 2), (4, 3, 2, 1)):
        T, H, W = 1 + tf * k, sf * hm, sf * wm
        tokens = tok.encode(smooth_video(T, H, W, batch))
        t = setting.latents_for_window(T)
        h, w = setting.latent_grid(H, W)
        assert t == 1 + k and (h, w) == (hm, wm)
        assert check_video_shape(setting, (batch, 3, T, H, W)) == (t, h, w)
        if setting.discrete:
            assert tokens.shape == (batch, t, h, w) and tokens.dtype == torch.int32
            assert 0 <= int(tokens.min()) and int(tokens.max()) < DV_VOCAB_SIZE
        else:
            assert tokens.shape == (batch, CV_CHANNELS, t, h, w) and tokens.dtype == torch.bfloat16
        assert tokens.numel() // (CV_CHANNELS if not setting.discrete else 1) == batch * t * h * w
        assert setting.visual_token_count(T, H, W, window=1 + tf * max(k, 1)) == t * h * w
        video = tok.decode(tokens)
        assert video.shape == (batch, 3, 1 + tf * (t - 1), H, W) and video.dtype == torch.float32
        assert float(video.abs().max()) <= 1.0


@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=IDS)
def test_raw_standin_outputs_match_real_interface(tiny_checkpoints: Path, setting: VisualSetting) -> None:
    enc, dec = _raw(tiny_checkpoints, setting)
    tf, sf = setting.temporal, setting.spatial
    x = smooth_video(1 + 2 * tf, 2 * sf, 3 * sf, batch=2)
    with torch.inference_mode():
        out = enc(x.bfloat16())
        out_fp32 = enc(x)  # fp32 input is cast inside (bit-identical latent, like the real patcher)
        if setting.discrete:
            ids, codes, zeros = out
            assert ids.dtype == torch.int32 and ids.shape == (2, 3, 2, 3)
            assert codes.dtype == torch.bfloat16 and codes.shape == (2, 6, 3, 2, 3)
            assert zeros.dtype == torch.float32 and zeros.shape == (2, 1, 1, 1, 3) and not zeros.any()
            assert 0 <= int(ids.min()) and int(ids.max()) < DV_VOCAB_SIZE
            assert torch.equal(ids, out_fp32[0])
            # ids are the mixed-radix number of the quantized codes
            levels = torch.tensor((8, 8, 8, 5, 5, 5)).view(1, 6, 1, 1, 1)
            digits = torch.round((codes.float() + 1) * (levels - 1) / 2).long()
            basis = torch.tensor(FSQ_BASIS).view(1, 6, 1, 1, 1)
            assert torch.equal((digits * basis).sum(1).int(), ids)
            rec = dec(ids)
            assert torch.equal(rec, dec(ids.long()))
        else:
            latent, extra = out
            assert latent.dtype == torch.bfloat16 and latent.shape == (2, 16, 3, 2, 3)
            assert isinstance(extra, tuple) and len(extra) == 2
            assert all(e.dtype == torch.float32 and e.shape == (1,) and not e.any() for e in extra)
            assert torch.equal(latent, out_fp32[0])
            rec = dec(latent)
        assert rec.dtype == torch.bfloat16 and rec.shape == (2, 3, 1 + 2 * tf, 2 * sf, 3 * sf)


@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=IDS)
def test_standin_is_causal(tiny_checkpoints: Path, setting: VisualSetting) -> None:
    """Latent 0 sees frame 0 only; latent i >= 1 sees frames 1+tf*(i-1) .. tf*i."""
    enc, _ = _raw(tiny_checkpoints, setting)
    tf, sf = setting.temporal, setting.spatial
    x = smooth_video(1 + 3 * tf, sf, 2 * sf)
    lat_dim = 1 if setting.discrete else 2

    def changed_latents(frames: slice) -> list[int]:
        y = x.clone()
        y[:, :, frames] = -y[:, :, frames]
        got = enc(y)[0]
        return [i for i in range(4) if not torch.equal(got.select(lat_dim, i), base.select(lat_dim, i))]

    with torch.inference_mode():
        base = enc(x)[0]
        spans = [(0, 1)] + [(1 + tf * (i - 1), 1 + tf * i) for i in range(1, 4)]
        for i, (s, e) in enumerate(spans):
            assert changed_latents(slice(s, e)) == [i], (i, s, e)
            for frame in (s, e - 1):  # one frame: only its own latent may change (DV may quantize it away)
                got = changed_latents(slice(frame, frame + 1))
                assert got == [i] or (setting.discrete and got == []), (frame, got)


def test_cv_decoder_rejects_fp32_latent_like_the_real_one(tiny_checkpoints: Path) -> None:
    setting = VisualSetting.parse("CV8x8x8")
    enc, dec = _raw(tiny_checkpoints, setting)
    with torch.inference_mode():
        latent = enc(smooth_video(9, 16, 16))[0]
        with pytest.raises(RuntimeError, match="expected scalar type"):
            dec(latent.float())


@pytest.mark.parametrize("name", ["CV4x8x8", "DV8x16x16"])
def test_standin_fails_after_float_like_the_real_one(tiny_checkpoints: Path, name: str) -> None:
    setting = VisualSetting.parse(name)
    enc, dec = _raw(tiny_checkpoints, setting)
    enc.float()
    dec.float()
    with torch.inference_mode():
        with pytest.raises(RuntimeError, match="expected scalar type|should be the same"):
            enc(smooth_video(1 + setting.temporal, setting.spatial, setting.spatial))


def test_decode_clamps_what_the_decoder_does_not(tiny_checkpoints: Path,
                                                 tokenizers: dict[str, CosmosTokenizer]) -> None:
    setting = VisualSetting.parse("CV4x8x8")
    tok = tokenizers[setting.name]
    _, dec = _raw(tiny_checkpoints, setting)
    latent = tok.encode(smooth_video(5, 16, 16)) * 8
    with torch.inference_mode():
        raw = dec(latent)
    assert float(raw.float().abs().max()) > 1.5  # decoders do not clamp
    assert torch.equal(tok.decode_raw(latent), raw) and tok.decode_raw(latent).dtype == torch.bfloat16
    video = tok.decode(latent)
    assert video.dtype == torch.float32 and float(video.min()) == -1.0 and float(video.max()) == 1.0


def test_decode_accepts_fp32_latent_and_int64_ids(tokenizers: dict[str, CosmosTokenizer]) -> None:
    cv, dv = tokenizers["CV8x8x8"], tokenizers["DV8x8x8"]
    x = smooth_video(9, 16, 24)
    lat = cv.encode(x)
    assert torch.equal(cv.decode(lat.float()), cv.decode(lat))  # cast to the model dtype first
    ids = dv.encode(x)
    assert torch.equal(dv.decode(ids.long()), dv.decode(ids))
    assert torch.equal(dv.decode(ids.to(torch.uint16)), dv.decode(ids))  # stored form, by value


# ----------------------------------------------------------------------------------------------------
# windows of uint8 frames: pad/crop for odd sizes and lengths
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=IDS)
def test_window_roundtrip_odd_sizes(tokenizers: dict[str, CosmosTokenizer], setting: VisualSetting) -> None:
    tok = tokenizers[setting.name]
    height, width = 23, 37
    for n in (1, 2, 5, 12, 17, 20):
        frames = smooth_frames(n, height, width)
        tokens = tok.encode_window(frames)
        assert tuple(tokens.shape) == tok.token_shape(n, height, width)
        assert tokens.shape[-3] == setting.latents_for_window(n)
        out = tok.decode_window(tokens, n, height, width)
        assert out.shape == (n, height, width, 3) and out.dtype == np.uint8
        assert psnr(frames, out) > 11, (n, psnr(frames, out))  # 2x3 latent cells at 8x16x16: coarse


@pytest.mark.parametrize("setting", ALL_SETTINGS, ids=IDS)
def test_reconstruction_is_meaningful(tokenizers: dict[str, CosmosTokenizer], setting: VisualSetting) -> None:
    tok = tokenizers[setting.name]
    frames = smooth_frames(17, 128, 192)
    out = tok.decode_window(tok.encode_window(frames), 17, 128, 192)
    noise = np.random.default_rng(0).integers(0, 256, frames.shape, dtype=np.uint8)
    assert psnr(frames, out) > 18 > psnr(frames, noise) + 5, psnr(frames, out)


def test_pad_video_replicates_edges() -> None:
    setting = VisualSetting.parse("DV4x8x8")
    x = torch.arange(2 * 6 * 9 * 3, dtype=torch.float32).view(1, 3, 2, 6, 9)
    y = pad_video(x, setting)
    assert y.shape == (1, 3, 5, 8, 16)
    assert torch.equal(y[:, :, :2, :6, :9], x)
    assert torch.equal(y[:, :, 4, :6, :9], x[:, :, 1])  # last frame repeated
    assert torch.equal(y[:, :, 0, 7, :9], x[:, :, 0, 5])  # bottom row replicated
    assert torch.equal(y[:, :, 0, :6, 15], x[:, :, 0, :, 8])  # right column replicated
    ok = torch.zeros(1, 3, 5, 8, 8)
    assert pad_video(ok, setting) is ok


def test_frames_tensor_conversions() -> None:
    frames = np.random.default_rng(1).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    x = frames_to_tensor(frames)
    assert x.shape == (1, 3, 3, 5, 7) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(tensor_to_frames(x), frames)
    assert (tensor_to_frames(x * 3)[x[0].permute(1, 2, 3, 0).numpy() > 0.5] == 255).all()  # clamped
    with pytest.raises(ValueError):
        frames_to_tensor(frames.astype(np.float32))


# ----------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------
def test_encode_rejects_bad_shapes(tokenizers: dict[str, CosmosTokenizer]) -> None:
    tok = tokenizers["CV8x16x16"]
    with pytest.raises(ValueError, match="1\\+8\\*k"):
        tok.encode(smooth_video(12, 16, 16))
    with pytest.raises(ValueError, match="multiple of 16"):
        tok.encode(smooth_video(9, 16, 24))
    with pytest.raises(ValueError):
        tok.encode(torch.zeros(1, 3, 9, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError):
        tok.encode(torch.zeros(1, 4, 9, 16, 16))


def test_decode_rejects_bad_tokens(tokenizers: dict[str, CosmosTokenizer]) -> None:
    dv, cv = tokenizers["DV4x8x8"], tokenizers["CV4x8x8"]
    with pytest.raises(ValueError, match="64000"):
        dv.decode(torch.full((1, 2, 2, 2), DV_VOCAB_SIZE, dtype=torch.int32))
    with pytest.raises(ValueError):
        dv.decode(torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError):
        cv.decode(torch.zeros(1, 6, 2, 2, 2))
    with pytest.raises(ValueError):
        cv.decode_window(cv.encode_window(smooth_frames(5, 16, 16)), 6, 16, 16)


def test_wrong_checkpoint_kind_is_a_one_line_error(tiny_checkpoints: Path) -> None:
    setting = VisualSetting.parse("CV8x8x8")
    folder = tiny_checkpoints / VisualSetting.parse("DV8x8x8").repo_name
    tok = CosmosTokenizer.from_folder(setting, folder, device="cpu")
    with pytest.raises(TokenizerRuntimeError) as err:
        tok.encode(smooth_video(9, 16, 16))
    assert "\n" not in str(err.value) and "encoder.jit" in str(err.value)


# ----------------------------------------------------------------------------------------------------
# dtype
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", IDS)
def test_fp32_on_bf16_trace_is_a_one_line_checkpoint_error(tiny_checkpoints: Path, name: str) -> None:
    setting = VisualSetting.parse(name)
    with pytest.raises(CheckpointError) as err:
        CosmosTokenizer.from_folder(setting, tiny_checkpoints / setting.repo_name, device="cpu", dtype="fp32")
    msg = str(err.value)
    assert "\n" not in msg
    assert "encoder.jit: this checkpoint is a bf16 trace and runs only in bf16; use --dtype auto/bf16" in msg
    assert "TorchScript interpreter" not in msg


def test_explicit_bf16_and_auto(tiny_checkpoints: Path) -> None:
    setting = VisualSetting.parse("DV4x8x8")
    tok = CosmosTokenizer.from_folder(setting, tiny_checkpoints / setting.repo_name, device="cpu", dtype="bf16")
    assert tok.dtype == tok.native_dtype == torch.bfloat16
    assert cpu_bf16_avg_pool3d_registered()


def test_parse_dtype_and_native_dtype(tmp_path: Path) -> None:
    assert parse_dtype("auto") is None and parse_dtype(None) is None
    assert parse_dtype("bf16") is torch.bfloat16 and parse_dtype("FP32") is torch.float32
    assert parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError):
        parse_dtype("int8")

    class IntOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("basis", torch.tensor([1, 8, 64]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.basis.sum()

    scripted = torch.jit.script(IntOnly())
    scripted.save(str(tmp_path / "m.jit"))
    assert native_dtype(torch.jit.load(str(tmp_path / "m.jit"))) == torch.bfloat16  # no floats: assume bf16
    assert native_dtype(torch.nn.Linear(2, 2)) == torch.float32


def test_from_pretrained_uses_checkpoint_env(checkpoints_env: Path) -> None:
    tok = CosmosTokenizer.from_pretrained("DV8x16x16", device="cpu", allow_download=False)
    assert tok.setting.name == "DV8x16x16" and tok.encoder_path.parent == checkpoints_env / tok.setting.repo_name
    assert "DV8x16x16" in repr(tok)


def test_from_pretrained_missing_is_checkpoint_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AVTOK_CHECKPOINTS", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError) as err:
        CosmosTokenizer.from_pretrained("CV4x8x8", tmp_path, device="cpu")
    assert "\n" not in str(err.value)


def test_corrupt_jit_is_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "encoder.jit").write_bytes(b"not a zip")
    (tmp_path / "decoder.jit").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError) as err:
        CosmosTokenizer.from_folder(VisualSetting.parse("CV4x8x8"), tmp_path, device="cpu")
    assert "encoder.jit" in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------
def test_one_line_error_takes_the_last_meaningful_line() -> None:
    text = ("The following operation failed in the TorchScript interpreter.\n"
            "Traceback of TorchScript, serialized code (most recent call last):\n"
            "  File \"code/__torch__/x.py\", line 14, in forward\n"
            "    y = torch.avg_pool3d(x0, [8, 8, 8])\n"
            "        ~~~~~~~~~~~~~~~~ <--- HERE\n\n"
            "RuntimeError: \"avg_pool3d_out_frame\" not implemented for 'BFloat16'\n")
    assert one_line_error(RuntimeError(text)) == "\"avg_pool3d_out_frame\" not implemented for 'BFloat16'"
    assert one_line_error(RuntimeError("plain")) == "plain"


def test_runtime_torchscript_error_becomes_one_line(tiny_checkpoints: Path) -> None:
    setting = VisualSetting.parse("CV4x8x8")
    enc, dec = _raw(tiny_checkpoints, setting)
    tok = CosmosTokenizer(setting, enc, dec, device=torch.device("cpu"), dtype=torch.bfloat16)
    with pytest.raises(TokenizerRuntimeError) as err:
        tok._run(dec, torch.zeros(1, 16, 1, 1, 1), None)  # fp32 into the bf16 decoder
    assert str(err.value) == "CV4x8x8: expected scalar type Float but found BFloat16"
    assert isinstance(err.value, AvtokError)


# ----------------------------------------------------------------------------------------------------
# CPU bf16 avg_pool3d fallback (fresh interpreters: the registration is process-wide)
# ----------------------------------------------------------------------------------------------------
def test_standin_fails_on_cpu_without_fallback_and_works_with_it(tiny_checkpoints: Path) -> None:
    folder = tiny_checkpoints / VisualSetting.parse("DV4x8x8").repo_name
    out = run_py(f"""
        import json, torch
        from avtok_ui.errors import one_line as one_line_error
        from avtok_ui.visual import ensure_cpu_bf16_avg_pool3d
        enc = torch.jit.load({str(folder / "encoder.jit")!r})
        x = torch.zeros(1, 3, 5, 8, 8)
        graph_has_pool = "aten::avg_pool3d" in str(enc.inlined_graph)
        try:
            enc(x)
            err, line = None, None
        except Exception as e:
            err, line = str(e), one_line_error(e)
        first = ensure_cpu_bf16_avg_pool3d()
        second = ensure_cpu_bf16_avg_pool3d()
        ids = enc(x)[0]
        print(json.dumps({{"err": err, "line": line, "first": first, "second": second, "pool": graph_has_pool,
                           "shape": list(ids.shape), "dtype": str(ids.dtype)}}))
    """)
    assert out["pool"]
    assert out["err"] is not None and "avg_pool3d_out_frame" in out["err"] and "BFloat16" in out["err"]
    assert out["err"].startswith("The following operation failed in the TorchScript interpreter.")
    assert out["line"] == "\"avg_pool3d_out_frame\" not implemented for 'BFloat16'"
    assert out["first"] is True and out["second"] is False
    assert out["shape"] == [1, 2, 1, 1] and out["dtype"] == "torch.int32"
    assert "Overriding a previously registered kernel" not in out["_stderr"]


def test_fallback_equals_torch_fp32_avg_pool3d() -> None:
    out = run_py("""
        import itertools, json, torch
        import torch.nn.functional as F
        from avtok_ui.visual import ensure_cpu_bf16_avg_pool3d
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 9, 11, 10, generator=g)
        cases = []
        for k, s, p, ceil, cip, div in itertools.product(
                [(2, 2, 2), (1, 2, 2), (3, 1, 2)], [None, (2, 1, 2)], [0, (1, 0, 1)],
                [False, True], [True, False], [None, 3]):
            if p and any(pi * 2 > ki for pi, ki in zip((p, p, p) if isinstance(p, int) else p, k)):
                continue
            cases.append((k, s, p, ceil, cip, div))
        def run(t):
            return [F.avg_pool3d(t, k, s, p, ceil, cip, div) for k, s, p, ceil, cip, div in cases]
        ref32 = run(x)                      # torch's own kernels, before the registration
        ref64 = run(x.double())
        refbf = run(x.bfloat16().float())
        ref4d = F.avg_pool3d(x[0], 2)
        ensure_cpu_bf16_avg_pool3d()
        got32, got64 = run(x), run(x.double())
        got16 = run(x.bfloat16())
        gothalf = run(x.half())
        ok32 = all(torch.equal(a, b) for a, b in zip(ref32, got32))
        ok64 = all(torch.equal(a, b) for a, b in zip(ref64, got64))
        okbf = all(b.dtype == torch.bfloat16 and torch.equal(a.bfloat16(), b) for a, b in zip(refbf, got16))
        okhalf = all(b.dtype == torch.float16 and torch.allclose(a, b.float(), atol=2e-3)
                     for a, b in zip(ref32, gothalf))
        ok4d = torch.equal(F.avg_pool3d(x[0], 2), ref4d)
        print(json.dumps({"n": len(cases), "ok32": ok32, "ok64": ok64, "okbf": okbf, "okhalf": okhalf,
                          "ok4d": ok4d}))
    """)
    assert out["n"] > 50
    assert out["ok32"] and out["ok64"] and out["okbf"] and out["okhalf"] and out["ok4d"], out
    assert "Overriding" not in out["_stderr"]


def test_fallback_chunks_large_inputs_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    import avtok_ui.visual as visual

    x = torch.randn(1, 7, 4, 8, 8).bfloat16()
    whole = visual.avg_pool3d_fp32(x, (2, 2, 2))
    monkeypatch.setattr(visual, "_AVG_POOL_CHUNK_ELEMS", 300)
    chunked = visual.avg_pool3d_fp32(x, (2, 2, 2))
    assert torch.equal(whole, chunked)
    assert torch.equal(whole, F.avg_pool3d(x.float(), 2).bfloat16())
