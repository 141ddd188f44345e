"""Tests of avtok_ui.metrics / avtok_ui.lpips_net against independent references.

SSIM is checked against scikit-image (the TokenBench reference), PSNR against numpy float64 (and ffmpeg's
psnr filter when the CLI is present), LPIPS against a straightforward re-implementation written here,
the mel distance against DAC's own MelSpectrogramLoss when importable.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avtok_ui import lpips_net
from avtok_ui import metrics as metrics_mod
from avtok_ui.metrics import (
    LPIPS,
    MEL_N_MELS,
    MEL_WINDOW_LENGTHS,
    LPIPSUnavailable,
    VideoMetrics,
    audio_metrics,
    format_summary,
    json_safe,
    lpips_status,
    mel_distance,
    mel_filterbank,
    mse_frames,
    psnr_frames,
    si_sdr,
    sse_frames,
    ssim_frames,
)

skimage_metrics = pytest.importorskip("skimage.metrics")
ASSET = Path(__file__).resolve().parents[1] / "assets" / "bigbuckbunny.mp4"
SSIM_TOL = 5e-5  # vs skimage on float32 frames (its own float32 rounding: up to ~7e-6 here); contract 1e-3


# ----- helpers ----------------------------------------------------------------------------------------
def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _noisy(a: np.ndarray, amp: int, seed: int = 1) -> np.ndarray:
    n = _rng(seed).integers(-amp, amp + 1, a.shape)
    return np.clip(a.astype(np.int64) + n, 0, 255).astype(np.uint8)


def _sk_ssim(a: np.ndarray, b: np.ndarray, dtype=np.float32) -> np.ndarray:
    return np.array(
        [
            skimage_metrics.structural_similarity(
                x.astype(dtype), y.astype(dtype), data_range=255, channel_axis=-1
            )
            for x, y in zip(a, b, strict=True)
        ],
        dtype=np.float64,
    )


def _gradient(t: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for k in range(t):
        r = 255 * xx / max(1, w - 1)
        g = 255 * yy / max(1, h - 1)
        b = 127.5 + 100 * np.sin((xx + yy + 3 * k) / 9.0)
        frames.append(np.stack([r, g, b], -1))
    return np.clip(np.round(np.stack(frames)), 0, 255).astype(np.uint8)


def _bbb_frames(indices: tuple[int, ...]) -> np.ndarray:
    av = pytest.importorskip("av")
    if not ASSET.is_file():
        pytest.skip(f"{ASSET} missing")
    out = []
    with av.open(str(ASSET)) as c:
        for i, fr in enumerate(c.decode(video=0)):
            if i in indices:
                out.append(fr.to_ndarray(format="rgb24"))
            if i >= max(indices):
                break
    return np.stack(out)


# ----- SSIM -------------------------------------------------------------------------------------------
SSIM_CASES = {
    "random_vs_noisy": lambda: (lambda a: (a, _noisy(a, 40)))(
        _rng(2).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    ),
    "random_vs_random": lambda: (
        _rng(3).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8),
        _rng(4).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8),
    ),
    "smooth_gradient": lambda: (lambda a: (a, _noisy(a, 3)))(_gradient(3, 72, 96)),
    "gradient_shifted": lambda: (lambda a: (a[:, :, :-2], a[:, :, 2:]))(_gradient(2, 50, 70)),
    "odd_37x23": lambda: (lambda a: (a, _noisy(a, 25)))(
        _rng(5).integers(0, 256, (2, 37, 23, 3), dtype=np.uint8)
    ),
    "min_7x7": lambda: (lambda a: (a, _noisy(a, 25)))(_rng(6).integers(0, 256, (4, 7, 7, 3), dtype=np.uint8)),
    "7x9_flat_plus_noise": lambda: (
        np.full((2, 7, 9, 3), 128, np.uint8),
        _noisy(np.full((2, 7, 9, 3), 128, np.uint8), 2),
    ),
    "grayscale_rgb_equal": lambda: (
        lambda g: (np.repeat(g, 3, axis=-1), np.repeat(_noisy(g, 12), 3, axis=-1))
    )(_rng(7).integers(0, 256, (2, 33, 41, 1), dtype=np.uint8)),
    "extremes_0_255": lambda: (np.zeros((1, 16, 16, 3), np.uint8), np.full((1, 16, 16, 3), 255, np.uint8)),
}


@pytest.mark.parametrize("case", sorted(SSIM_CASES))
def test_ssim_equals_skimage(case: str) -> None:
    a, b = SSIM_CASES[case]()
    ours = ssim_frames(a, b).numpy()
    ref32 = _sk_ssim(a, b, np.float32)  # TokenBench's exact call (float32 frames)
    ref64 = _sk_ssim(a, b, np.float64)
    assert ours.dtype == np.float64 and ours.shape == (a.shape[0],)
    assert np.max(np.abs(ours - ref32)) <= SSIM_TOL, (ours, ref32)
    assert np.max(np.abs(ours - ref64)) <= 1e-6, (ours, ref64)


def test_ssim_real_frames_bigbuckbunny() -> None:
    fr = _bbb_frames((0, 40, 41))
    crop = fr[:, 200:456, 300:620]  # full-size pairs are covered below; crops keep the test fast
    pairs = [
        (fr[1:2], fr[2:3]),  # consecutive frames, full 1280x720
        (crop, (crop // 16) * 16),  # heavy quantisation
        (crop, _noisy(crop, 6)),
        (crop[:, ::2, ::2].copy(), crop[:, 1::2, 1::2].copy()),
    ]
    worst = 0.0
    for a, b in pairs:
        d = np.max(np.abs(ssim_frames(a, b).numpy() - _sk_ssim(a, b, np.float32)))
        worst = max(worst, float(d))
    assert worst <= SSIM_TOL, worst


def _np_sse(a: np.ndarray, b: np.ndarray) -> list[int]:
    d = a.astype(np.int64) - b.astype(np.int64)
    return [int(v) for v in (d * d).reshape(a.shape[0], -1).sum(axis=1)]


@pytest.mark.parametrize("rows", [1, 17, 10**6])  # strips of 8 rows (the minimum), of ~17 rows; 4 frames per op
def test_strips_and_frame_batches_equal_skimage(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """The cache-sized strips (CPU) and frame batches must not change a number: SSIM vs skimage float64,
    SSE exact, and each frame's values independent of how frames are grouped."""
    a = np.concatenate([_gradient(2, 45, 53), _rng(11).integers(0, 256, (2, 45, 53, 3), dtype=np.uint8)])
    b = np.concatenate([_noisy(a[:2], 9), _rng(12).integers(0, 256, (2, 45, 53, 3), dtype=np.uint8)])
    b[1, 20:30] = 255  # saturated rows across a strip boundary
    elems = (rows + 6) * 3 * 53 // torch.get_num_threads()
    monkeypatch.setattr(metrics_mod, "_CPU_ELEMS_PER_THREAD", elems)
    ssim = ssim_frames(a, b).numpy()
    assert np.max(np.abs(ssim - _sk_ssim(a, b, np.float64))) <= 1e-6, ssim
    assert sse_frames(a, b).tolist() == _np_sse(a, b)
    vm = VideoMetrics(lpips=None, device="cpu")
    vm.update(a, b)
    assert vm._sse == _np_sse(a, b)
    one_by_one = np.concatenate([ssim_frames(a[i : i + 1], b[i : i + 1]).numpy() for i in range(4)])
    assert np.array_equal(one_by_one, ssim)


def test_extreme_values_do_not_overflow() -> None:
    """Worst cases of every integer intermediate (all 0 vs all 255; 255 vs 255) and the int64 fallbacks of
    rows too wide for int32 row sums (SSIM path from 5505 px, PSNR-only path from 11010 px)."""
    z, f = np.zeros((1, 9, 5600, 3), np.uint8), np.full((1, 9, 5600, 3), 255, np.uint8)
    assert ssim_frames(f, f).tolist() == [1.0]
    ref = _sk_ssim(z[:, :, :64], f[:, :, :64], np.float64)
    assert abs(ssim_frames(z, f).item() - ref[0]) <= 1e-6
    vm = VideoMetrics(lpips=None, device="cpu")
    vm.update(z, f)
    assert vm._sse == [9 * 5600 * 3 * 255 * 255] and vm.summary()["psnr"] == 0.0
    wide = _rng(13).integers(0, 256, (2, 2, 11100, 3), dtype=np.uint8)
    assert sse_frames(wide, 255 - wide).tolist() == _np_sse(wide, 255 - wide)


def test_tensor_inputs_any_layout_equal_numpy() -> None:
    """torch uint8 tensors (also non-contiguous views, e.g. a channel-first buffer permuted to
    [T, H, W, 3]) give exactly the numpy results."""
    a = _gradient(3, 30, 41)
    b = _noisy(a, 20)
    chw = torch.from_numpy(b).permute(0, 3, 1, 2).contiguous()  # [T, 3, H, W]
    tb = chw.permute(0, 2, 3, 1)  # [T, H, W, 3] view, not contiguous
    assert not tb.is_contiguous()
    assert torch.equal(ssim_frames(torch.from_numpy(a), tb), ssim_frames(a, b))
    assert torch.equal(sse_frames(torch.from_numpy(a), tb), sse_frames(a, b))
    v1, v2 = VideoMetrics(lpips=None, device="cpu"), VideoMetrics(lpips=None, device="cpu")
    v1.update(a, b)
    v2.update(torch.from_numpy(a), tb)
    assert v1.per_frame() == v2.per_frame() and v1.summary()["psnr"] == v2.summary()["psnr"]


def test_ssim_identical_is_one_and_rejects_tiny_frames() -> None:
    a = _rng(8).integers(0, 256, (2, 20, 30, 3), dtype=np.uint8)
    assert ssim_frames(a, a).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="7x7"):
        ssim_frames(a[:, :6], a[:, :6])


def test_input_validation() -> None:
    a = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        ssim_frames(a, np.zeros((1, 8, 9, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        psnr_frames(a.astype(np.float32), a.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        VideoMetrics(lpips=None, device="cpu").update(a[0], a[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_ssim_psnr_cuda_equal_cpu() -> None:
    a = _gradient(3, 64, 80)
    b = _noisy(a, 20)
    ga, gb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    s = ssim_frames(ga, gb)
    assert s.device.type == "cuda"
    assert torch.allclose(s.cpu(), ssim_frames(a, b), atol=1e-7, rtol=0)
    assert torch.equal(psnr_frames(ga, gb).cpu(), psnr_frames(a, b))


# ----- PSNR -------------------------------------------------------------------------------------------
def _np_psnr(mse: float) -> float:
    return 10 * math.log10(255.0**2 / mse)


def test_psnr_matches_numpy_float64() -> None:
    a = _rng(9).integers(0, 256, (5, 31, 45, 3), dtype=np.uint8)
    b = _noisy(a, 30)
    d = a.astype(np.float64) - b.astype(np.float64)
    per_mse = (d**2).reshape(5, -1).mean(axis=1)
    assert np.allclose(mse_frames(a, b).numpy(), per_mse, rtol=1e-12, atol=0)
    assert np.max(np.abs(psnr_frames(a, b).numpy() - [_np_psnr(m) for m in per_mse])) <= 0.01
    vm = VideoMetrics(lpips=None, device="cpu")
    vm.update(a, b)
    s = vm.summary()
    assert abs(s["psnr"] - _np_psnr(float((d**2).mean()))) <= 1e-9
    assert abs(s["psnr_mean_per_frame"] - float(np.mean([_np_psnr(m) for m in per_mse]))) <= 1e-9


def test_psnr_no_uint8_wraparound() -> None:
    a = np.zeros((1, 8, 8, 3), np.uint8)
    b = np.full((1, 8, 8, 3), 255, np.uint8)
    assert psnr_frames(a, b).item() == pytest.approx(0.0, abs=1e-12)  # uint8 arithmetic would give 48 dB


def test_identical_video_is_lossless_inf() -> None:
    a = _gradient(4, 24, 32)
    vm = VideoMetrics(lpips=None, device="cpu")
    vm.update(a, a)
    s = vm.summary()
    assert s["psnr"] == math.inf and s["lossless"] is True and s["ssim"] == 1.0
    assert s["n_lossless_frames"] == 4 and s["psnr_mean_per_frame"] == math.inf
    assert "∞ (lossless)" in format_summary(s)
    assert vm.per_frame()["psnr"] == [None] * 4
    blob = json.dumps(json_safe(s), allow_nan=False)  # strict JSON works
    assert json.loads(blob)["psnr"] is None and json.loads(blob)["lossless"] is True


def test_pooled_vs_mean_per_frame_jensen_and_labels() -> None:
    a = _gradient(6, 32, 32)
    b = np.concatenate([_noisy(a[:3], 1), _noisy(a[3:], 60)])  # uneven quality: the two differ a lot
    vm = VideoMetrics(lpips=None, device="cpu")
    vm.update(a, b)
    s = vm.summary()
    assert s["psnr_mean_per_frame"] >= s["psnr"] + 3.0
    conv = s["conventions"]
    assert "pooled-MSE" in conv["psnr"] and "TokenBench" in conv["psnr"]
    assert "mean of per-frame" in conv["psnr_mean_per_frame"]
    assert "7x7 uniform" in conv["ssim"] and "scored_on" in conv and "32x32" in conv["resolution"]
    text = format_summary(s)
    assert "mean of per-frame PSNR" in text and "pooled-MSE" in text


def test_psnr_equals_ffmpeg_psnr_filter(tmp_path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg CLI not installed")
    t, h, w = 4, 36, 52
    a = _gradient(t, h, w)
    b = _noisy(a, 25)
    (tmp_path / "a.rgb").write_bytes(a.tobytes())
    (tmp_path / "b.rgb").write_bytes(b.tobytes())
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25"]
    cmd = [
        ffmpeg,
        "-hide_banner",
        "-nostats",
        *raw,
        "-i",
        str(tmp_path / "a.rgb"),
        *raw,
        "-i",
        str(tmp_path / "b.rgb"),
        "-lavfi",
        "[0:v][1:v]psnr",
        "-f",
        "null",
        "-",
    ]
    log = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stderr
    m = re.search(r"average:([0-9.]+)", log)
    assert m, log[-2000:]
    vm = VideoMetrics(lpips=None, device="cpu")
    vm.update(a, b)
    # ffmpeg's overall "average" uses the MSE averaged over frames: the pooled MSE for equal-size frames
    assert abs(float(m.group(1)) - vm.summary()["psnr"]) <= 0.01


# ----- streaming --------------------------------------------------------------------------------------
def test_streaming_equals_one_shot() -> None:
    a = _gradient(10, 36, 44)
    b = _noisy(a, 15)
    lp = LPIPS.with_random_trunk("alex", device="cpu", seed=3)  # the accumulator logic is net-agnostic
    one = VideoMetrics(lpips=lp, device="cpu", batch=4)
    one.update(a, b)
    many = VideoMetrics(lpips=lp, device="cpu", batch=3)
    for s, e in [(0, 5), (5, 5), (5, 6), (6, 10)]:
        many.update(a[s:e], b[s:e])
    p1, p2 = one.per_frame(), many.per_frame()
    assert p1["psnr"] == p2["psnr"] and p1["ssim"] == p2["ssim"]
    assert np.allclose(p1["lpips"], p2["lpips"], rtol=1e-5, atol=1e-7)
    s1, s2 = one.summary(), many.summary()
    assert s1["psnr"] == s2["psnr"] and s1["ssim"] == s2["ssim"] and s1["n_frames"] == 10
    assert s1["lpips"] == pytest.approx(s2["lpips"], rel=1e-5)
    assert s1["lpips_valid"] is False and "NOT a valid LPIPS" in s1["conventions"]["lpips"]
    assert np.allclose(p1["ssim"], ssim_frames(a, b).numpy(), atol=0, rtol=0)
    with pytest.raises(ValueError, match="frame size changed"):
        many.update(a[:, :20], b[:, :20])
    with pytest.raises(ValueError, match="no frames"):
        VideoMetrics(lpips=None, device="cpu").summary()


# ----- LPIPS ------------------------------------------------------------------------------------------
def _lpips_dir() -> Path:
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lpips package (shipped linear heads) not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _torchvision_like_state(net: str, seed: int) -> dict[str, torch.Tensor]:
    """Random weights under torchvision's exact keys/shapes (written independently of lpips_net)."""
    if net == "vgg":
        convs = {
            0: (64, 3),
            2: (64, 64),
            5: (128, 64),
            7: (128, 128),
            10: (256, 128),
            12: (256, 256),
            14: (256, 256),
            17: (512, 256),
            19: (512, 512),
            21: (512, 512),
            24: (512, 512),
            26: (512, 512),
            28: (512, 512),
        }
        ks = dict.fromkeys(convs, 3)
    else:
        convs = {0: (64, 3), 3: (192, 64), 6: (384, 192), 8: (256, 384), 10: (256, 256)}
        ks = {0: 11, 3: 5, 6: 3, 8: 3, 10: 3}
    g = torch.Generator().manual_seed(seed)
    st = {}
    for i, (co, ci) in convs.items():
        k = ks[i]
        st[f"features.{i}.weight"] = torch.randn(co, ci, k, k, generator=g) * math.sqrt(2.0 / (ci * k * k))
        st[f"features.{i}.bias"] = 0.01 * torch.randn(co, generator=g)
    st["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision files carry a classifier: must be ignored
    return st


def _reference_lpips(st: dict, heads: dict, net: str, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Straightforward LPIPS v0.1 (as in lpips/lpips.py) on float [-1,1] NCHW -> [B] (float64 math)."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    if net == "vgg":
        plan = [
            ["c0", "c2"],
            ["p", "c5", "c7"],
            ["p", "c10", "c12", "c14"],
            ["p", "c17", "c19", "c21"],
            ["p", "c24", "c26", "c28"],
        ]
    else:
        plan = [["c0"], ["P", "c3"], ["P", "c6"], ["c8"], ["c10"]]

    def feats(x: torch.Tensor) -> list[torch.Tensor]:
        h = (x.double() - shift) / scale
        taps = []
        for group in plan:
            for op in group:
                if op == "p":
                    h = F.max_pool2d(h, 2, 2)
                elif op == "P":
                    h = F.max_pool2d(h, 3, 2)
                else:
                    i = int(op[1:])
                    w, b = st[f"features.{i}.weight"].double(), st[f"features.{i}.bias"].double()
                    stride, pad = (4, 2) if (net == "alex" and i == 0) else (1, w.shape[-1] // 2)
                    h = F.relu(F.conv2d(h, w, b, stride=stride, padding=pad))
            taps.append(h)
        return taps

    total = torch.zeros(x0.shape[0], dtype=torch.float64)
    for k, (f0, f1) in enumerate(zip(feats(x0), feats(x1), strict=True)):
        n0 = f0 / (f0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        n1 = f1 / (f1.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = heads[f"lin{k}.model.1.weight"].double()
        total += F.conv2d((n0 - n1) ** 2, w).mean(dim=(1, 2, 3))
    return total


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_matches_reference_and_loads_torchvision_keys(net: str, tmp_path: Path, monkeypatch) -> None:
    heads_path = _lpips_dir() / "weights" / "v0.1" / f"{net}.pth"
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    st = _torchvision_like_state(net, seed=11)
    fname = lpips_net.BACKBONE_FILES[net][0]
    torch.save(st, tmp_path / fname)
    monkeypatch.setenv("AVTOK_LPIPS_BACKBONE", str(tmp_path))  # a directory holding the torchvision file
    ok, why = lpips_status(net)
    assert ok and fname in why, why
    model = LPIPS.from_pretrained(net, device="cpu")
    assert model.valid and LPIPS.from_pretrained(net, device="cpu") is model  # resident, loaded once
    a = _gradient(2, 40, 56)
    b = _noisy(a, 30)
    ours = model(a, b).numpy()
    x0 = torch.from_numpy(a).permute(0, 3, 1, 2).double() / 127.5 - 1
    x1 = torch.from_numpy(b).permute(0, 3, 1, 2).double() / 127.5 - 1
    ref = _reference_lpips(st, heads, net, x0, x1).numpy()
    assert ours.dtype == np.float64 and np.all(ref > 0)
    assert np.allclose(ours, ref, rtol=1e-4, atol=1e-6), (ours, ref)
    assert np.allclose(model(a, a).numpy(), 0.0, atol=1e-7)
    vm = VideoMetrics(lpips="auto", lpips_net=net, device="cpu")
    vm.update(a, b)
    s = vm.summary()
    assert s["lpips"] == pytest.approx(float(ref.mean()), rel=1e-4) and s["lpips_unavailable"] is None
    assert fname in s["conventions"]["lpips"]


def test_lpips_constants_and_layers_match_lpips_source() -> None:
    d = _lpips_dir()
    src = (d / "lpips.py").read_text()
    shift = re.search(r"'shift',\s*torch\.Tensor\(\[([^\]]+)\]", src)
    scale = re.search(r"'scale',\s*torch\.Tensor\(\[([^\]]+)\]", src)
    assert shift and scale
    assert tuple(float(v) for v in shift.group(1).split(",")) == lpips_net.LPIPS_SHIFT
    assert tuple(float(v) for v in scale.group(1).split(",")) == lpips_net.LPIPS_SCALE
    assert "eps=1e-10" in (d / "__init__.py").read_text()  # normalize_tensor's eps, used in lpips_net
    pn = (d / "pretrained_networks.py").read_text()
    for cls, net in [("vgg16", "vgg"), ("alexnet", "alex")]:
        body = pn[pn.index(f"class {cls}(") :]
        body = body[: body.index("def forward")]
        ranges = re.findall(r"for x in range\((?:(\d+),\s*)?(\d+)\)", body)
        ends = tuple(int(e) for _s, e in ranges)
        assert ends == lpips_net.SLICE_ENDS[net], (net, ranges)
        chns = re.search(
            rf"pnet_type[^\n]*{'vgg' if net == 'vgg' else 'alex'}[^\n]*\n[^\n]*\n\s*self\.chns = \[([^\]]+)\]",
            src,
        )
        assert chns and tuple(int(c) for c in chns.group(1).split(",")) == lpips_net.CHANNELS[net]


def test_lpips_unavailable_reports_reason_not_number(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AVTOK_LPIPS_BACKBONE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    ok, why = lpips_status("vgg")
    assert not ok
    assert why.startswith("unavailable: vgg16-397923af.pth not found; put it in ")
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in why and "AVTOK_LPIPS_BACKBONE" in why
    with pytest.raises(LPIPSUnavailable, match="vgg16-397923af.pth not found"):
        LPIPS.from_pretrained("vgg", device="cpu")
    a = _gradient(2, 32, 32)
    vm = VideoMetrics(device="cpu")  # lpips="auto"
    vm.update(a, _noisy(a, 5))
    s = vm.summary()
    assert s["lpips"] is None and s["lpips_unavailable"] == why and vm.per_frame()["lpips"] is None
    line = next(x for x in format_summary(s).splitlines() if x.startswith("LPIPS"))
    assert "n/a" in line and "vgg16-397923af.pth" in line
    # explicit env pointing nowhere useful is named in the reason
    monkeypatch.setenv("AVTOK_LPIPS_BACKBONE", str(tmp_path / "nothing_here"))
    ok, why = lpips_status("alex")
    assert not ok and "alexnet-owt-7be5be79.pth not found" in why and "nothing_here" in why
    assert VideoMetrics(lpips=None, device="cpu").lpips_unavailable == "not computed (disabled)"


def test_lpips_bad_backbone_files_are_unavailable(tmp_path: Path) -> None:
    _lpips_dir()
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(LPIPSUnavailable, match="could not be loaded"):
        LPIPS.from_pretrained("vgg", device="cpu", backbone_path=bad)
    wrong = tmp_path / "alex_as_vgg.pth"
    torch.save(_torchvision_like_state("alex", 0), wrong)
    with pytest.raises(LPIPSUnavailable, match="does not match torchvision VGG16"):
        LPIPS.from_pretrained("vgg", device="cpu", backbone_path=wrong)


def test_lpips_small_frames_reported() -> None:
    a = _rng(1).integers(0, 256, (2, 12, 40, 3), dtype=np.uint8)
    vm = VideoMetrics(lpips=LPIPS.with_random_trunk("vgg", device="cpu"), device="cpu")
    vm.update(a, a)
    s = vm.summary()
    assert s["lpips"] is None and "smaller than LPIPS vgg's minimum 16x16" in s["lpips_unavailable"]
    # the documented minimum sizes are really the smallest the trunks accept
    for net, m in lpips_net.MIN_SIZE.items():
        lp = LPIPS.with_random_trunk(net, device="cpu")
        x = np.zeros((1, m, m, 3), np.uint8)
        assert lp(x, x).shape == (1,)
        with pytest.raises(RuntimeError):
            lp.model(torch.zeros(1, 3, m - 1, m - 1), torch.zeros(1, 3, m - 1, m - 1))


# ----- audio ------------------------------------------------------------------------------------------
SR = 44100


def _tone(n: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(n) / SR
    return (amp * np.sin(2 * np.pi * 440 * t) + 0.5 * amp * np.sin(2 * np.pi * 1234.5 * t)).astype(
        np.float32
    )[None]


def test_si_sdr_properties() -> None:
    r = _tone()
    assert si_sdr(r, r) == math.inf
    noise = 0.02 * _rng(3).standard_normal(r.shape)
    e = (r + noise).astype(np.float64)
    base = si_sdr(r, e)
    assert si_sdr(r, 0.25 * e) == pytest.approx(base, abs=1e-9)  # scale-invariant
    assert si_sdr(r, e + 0.1) == pytest.approx(base, abs=1e-9)  # zero-mean (DC offset ignored)
    expected = 10 * math.log10(float(np.mean(r.astype(np.float64) ** 2)) / 0.02**2)
    assert abs(base - expected) <= 0.1, (base, expected)
    assert si_sdr(r, 0.5 * r) > 100  # rescaled copy: perfect up to rounding
    assert math.isnan(si_sdr(np.zeros_like(r), r))  # silent reference: undefined
    with pytest.raises(ValueError, match="length"):
        si_sdr(r, r[:, :-1])


def test_mel_distance_properties() -> None:
    r = _tone()
    assert mel_distance(r, r) == 0.0
    rng = _rng(4)
    d = [mel_distance(r, r + s * rng.standard_normal(r.shape).astype(np.float32)) for s in (1e-3, 1e-2, 1e-1)]
    assert 0 < d[0] < d[1] < d[2]
    z = np.zeros((1, SR // 2), np.float32)
    assert mel_distance(z, z) == 0.0  # silence vs silence
    assert mel_distance(z, z + 0.01 * rng.standard_normal(z.shape).astype(np.float32)) > 0
    assert math.isnan(mel_distance(r[:, :1000], r[:, :1000]))  # shorter than the 2048 window's padding


def test_mel_filterbank_equals_librosa() -> None:
    librosa_filters = pytest.importorskip("librosa.filters")
    for win, nm in zip(MEL_WINDOW_LENGTHS, MEL_N_MELS, strict=True):
        ref = librosa_filters.mel(sr=SR, n_fft=win, n_mels=nm)
        assert np.max(np.abs(ref - mel_filterbank(SR, win, nm))) <= 1e-7 * max(1.0, float(ref.max()))


def test_mel_distance_equals_dac_loss() -> None:
    try:
        from audiotools import AudioSignal
        from dac.nn.loss import MelSpectrogramLoss
    except Exception as err:  # noqa: BLE001 -- optional reference
        pytest.skip(f"dac/audiotools not importable: {err}")
    r = _tone(SR // 2)
    e = (r + 0.01 * _rng(5).standard_normal(r.shape)).astype(np.float32)
    loss = MelSpectrogramLoss(  # descript-audio-codec conf/base.yml
        n_mels=list(MEL_N_MELS),
        window_lengths=list(MEL_WINDOW_LENGTHS),
        mel_fmin=[0.0] * 7,
        mel_fmax=[None] * 7,
        pow=1.0,
        clamp_eps=1e-5,
        mag_weight=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # audiotools' harmless "stft_data changed shape"
        ref = float(
            loss(AudioSignal(torch.from_numpy(e)[None], SR), AudioSignal(torch.from_numpy(r)[None], SR))
        )
    assert mel_distance(r, e, SR) == pytest.approx(ref, rel=1e-5)


def test_audio_metrics_missing_and_mismatched() -> None:
    r = _tone()
    assert audio_metrics(None, None) == {"available": False, "reason": "the video has no audio track"}
    assert audio_metrics(r, None)["available"] is False and audio_metrics(r, None)["reason"]
    assert audio_metrics(None, r)["available"] is False
    m = audio_metrics(r, r[:, :-100])
    assert m["available"] and m["n_samples"] == SR - 100 and "lengths differ" in m["note"]
    assert m["si_sdr_db"] == math.inf and m["mel_distance"] == 0.0
    s = audio_metrics(np.zeros_like(r), r)
    assert math.isnan(s["si_sdr_db"]) and "silent" in s["note"]
    json.dumps(json_safe(s), allow_nan=False)
    st = audio_metrics(np.repeat(r, 2, axis=0), r)
    assert st["channels"] == 1 and "mono" in st["note"]
    text = format_summary({"psnr": 30.0, "ssim": 0.9, "lpips": None, "lpips_unavailable": "x", "audio": s})
    assert "SI-SDR n/a" in text


def test_streaming_audio_metrics_equal_whole_track():
    """AudioMetrics (chunk by chunk, O(1) memory) == si_sdr of the whole track; mel is the chunk mean."""
    from avtok_ui.metrics import AudioMetrics, mel_distance, si_sdr

    rng = np.random.default_rng(3)
    t = np.arange(44100 * 3) / 44100
    ref = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.05).astype(np.float32)  # DC offset: zero-mean matters
    est = (0.9 * ref + 0.02 * rng.standard_normal(ref.size)).astype(np.float32)
    acc = AudioMetrics(44100)
    bounds = [0, 5000, 30000, 30001, 90000, ref.size]
    for a, b in zip(bounds, bounds[1:], strict=False):
        acc.update(ref[a:b], est[a:b])
    s = acc.summary()
    assert s["n_samples"] == ref.size
    assert s["si_sdr_db"] == pytest.approx(si_sdr(ref, est), abs=1e-6)
    chunks = [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b - a >= 4096]
    want = sum(mel_distance(ref[a:b], est[a:b]) * (b - a) for a, b in chunks) / sum(b - a for a, b in chunks)
    assert s["mel_distance"] == pytest.approx(want, rel=1e-9)
    same = AudioMetrics(44100)
    same.update(ref, ref * 0.5)
    assert same.si_sdr() == math.inf
    silent = AudioMetrics(44100)
    silent.update(np.zeros(8000, np.float32), est[:8000])
    assert math.isnan(silent.si_sdr()) and "silent" in silent.summary()["note"]
