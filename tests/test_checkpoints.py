"""Checkpoint resolution: explicit dir > $AVTOK_CHECKPOINTS > HF cache > download; one-line errors; no hangs.

Every test runs with an empty HF cache, an empty home (DAC's cache) and no AVTOK_CHECKPOINTS unless it
sets them; HF_HUB_OFFLINE=1 comes from conftest.py. The files are dummies: resolution never reads them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import avtok_ui.checkpoints as ck
from avtok_ui.checkpoints import missing_checkpoints, resolve_cosmos, resolve_dac
from avtok_ui.errors import CheckpointError
from avtok_ui.settings import ALL_SETTINGS, DAC_WEIGHTS_NAME, VisualSetting

CV = VisualSetting.parse("CV8x8x8")
DV = VisualSetting.parse("DV4x8x8")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("AVTOK_CHECKPOINTS", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def make_folder(folder: Path, files: tuple[str, ...] = ("encoder.jit", "decoder.jit")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_bytes(b"dummy")
    return folder


def make_hf_cache(cache: Path, repo_id: str, commit: str = "a" * 40) -> Path:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/<files>}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return make_folder(repo / "snapshots" / commit)


def assert_one_line(msg: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg


# ----------------------------------------------------------------------------------------------------
# Cosmos: order
# ----------------------------------------------------------------------------------------------------
def test_explicit_folder_itself_parent_and_file(tmp_path: Path) -> None:
    own = make_folder(tmp_path / "mine")
    assert resolve_cosmos(CV, own) == own
    assert resolve_cosmos(CV, str(own / "encoder.jit")) == own
    parent = tmp_path / "parent"
    sub = make_folder(parent / CV.repo_name)
    assert resolve_cosmos(CV, parent) == sub
    legacy = make_folder(tmp_path / "old" / "Cosmos-Tokenizer-CV8x8x8")
    assert resolve_cosmos(CV, tmp_path / "old") == legacy


def test_order_explicit_then_env_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = make_hf_cache(tmp_path / "hf-cache", CV.hub_id)
    assert resolve_cosmos(CV) == cached
    env_root = tmp_path / "env"
    env_folder = make_folder(env_root / CV.repo_name)
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(env_root))
    assert resolve_cosmos(CV) == env_folder
    explicit = make_folder(tmp_path / "explicit" / CV.repo_name)
    assert resolve_cosmos(CV, tmp_path / "explicit") == explicit
    # an existing explicit folder without this setting's files falls through to the next place
    (tmp_path / "partial").mkdir()
    assert resolve_cosmos(CV, tmp_path / "partial") == env_folder
    monkeypatch.delenv("AVTOK_CHECKPOINTS")
    assert resolve_cosmos(CV, tmp_path / "partial") == cached
    # a mistyped (non-existent) explicit folder is an error, never silently replaced by another copy
    with pytest.raises(CheckpointError, match="nowhere: checkpoint folder does not exist"):
        resolve_cosmos(CV, tmp_path / "nowhere")


def test_env_root_itself_is_not_a_setting_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_folder(tmp_path / "env")  # files directly in the root: ambiguous between settings
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(root))
    with pytest.raises(CheckpointError):
        resolve_cosmos(CV)


def test_legacy_hub_id_in_cache(tmp_path: Path) -> None:
    cached = make_hf_cache(tmp_path / "hf-cache", CV.legacy_hub_id)
    assert resolve_cosmos(CV) == cached


def test_cache_with_only_one_file_is_a_miss(tmp_path: Path) -> None:
    snap = make_hf_cache(tmp_path / "hf-cache", CV.hub_id)
    (snap / "decoder.jit").unlink()
    with pytest.raises(CheckpointError):
        resolve_cosmos(CV)


# ----------------------------------------------------------------------------------------------------
# Cosmos: errors, offline, download
# ----------------------------------------------------------------------------------------------------
def test_error_message_is_one_line_and_actionable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tmp_path / "env"))
    make_folder(tmp_path / "given", ("encoder.jit",))
    with pytest.raises(CheckpointError) as err:
        resolve_cosmos(DV, tmp_path / "given")
    msg = str(err.value)
    assert_one_line(msg)
    for needle in ("DV4x8x8", "encoder.jit", "decoder.jit", "AVTOK_CHECKPOINTS", str(tmp_path / "given"),
                   "has encoder.jit but not decoder.jit", str(tmp_path / "env" / DV.repo_name),
                   "nvidia/Cosmos-0.1-Tokenizer-DV4x8x8", "nvidia/Cosmos-Tokenizer-DV4x8x8",
                   str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE",
                   "huggingface-cli download nvidia/Cosmos-0.1-Tokenizer-DV4x8x8 --local-dir "
                   "$AVTOK_CHECKPOINTS/Cosmos-0.1-Tokenizer-DV4x8x8"):
        assert needle in msg, needle


def test_offline_never_downloads_and_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def boom(*a, **k):  # pragma: no cover - must not be called
        raise AssertionError("hf_hub_download called while offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", boom)
    t0 = time.monotonic()
    for setting in ALL_SETTINGS:
        with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
            resolve_cosmos(setting, allow_download=True)
    assert time.monotonic() - t0 < 2.0


def test_allow_download_false_never_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("download attempted")))
    with pytest.raises(CheckpointError, match="download not allowed"):
        resolve_cosmos(CV, allow_download=False)


def test_network_error_becomes_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    import huggingface_hub.constants  # a lazy submodule: patchable only once imported (test order must not matter)

    calls: list[str] = []

    def fail(repo_id: str, filename: str, **kwargs):
        calls.append(filename)
        raise OSError("Connection refused\nwhile fetching https://huggingface.co/...\nmore detail")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(ck, "_hub_unreachable", lambda: None)  # pretend the network is up
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with pytest.raises(CheckpointError) as err:
        resolve_cosmos(CV)
    msg = str(err.value)
    assert_one_line(msg)
    assert "download of nvidia/Cosmos-0.1-Tokenizer-CV8x8x8/encoder.jit failed" in msg
    assert "Connection refused" in msg and "more detail" not in msg
    assert calls == ["encoder.jit"]  # gave up after the first failure


def test_unreachable_hub_fails_fast_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import huggingface_hub

    def refuse(address, timeout=None):
        assert timeout is not None and timeout <= 5
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("download attempted")))
    t0 = time.monotonic()
    with pytest.raises(CheckpointError) as err:
        resolve_cosmos(CV)
    assert time.monotonic() - t0 < 2.0
    assert_one_line(str(err.value))
    assert "cannot reach huggingface.co:443 (Name or service not known)" in str(err.value)


def test_download_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    snap = make_folder(tmp_path / "downloaded")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(ck, "_hub_unreachable", lambda: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo_id, filename, **k: str(snap / filename))
    assert resolve_cosmos(CV) == snap


def test_is_offline_reads_env_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ck.is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not ck.is_offline()


# ----------------------------------------------------------------------------------------------------
# DAC
# ----------------------------------------------------------------------------------------------------
def test_dac_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "home" / ".cache" / "descript" / "dac" / DAC_WEIGHTS_NAME
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"x")
    assert resolve_dac() == cache
    env = tmp_path / "env" / "dac" / DAC_WEIGHTS_NAME
    env.parent.mkdir(parents=True)
    env.write_bytes(b"x")
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(tmp_path / "env"))
    assert resolve_dac() == env
    explicit = tmp_path / "my.pth"
    explicit.write_bytes(b"x")
    assert resolve_dac(explicit) == explicit
    assert resolve_dac(env.parent) == env  # a folder holding the weights
    assert resolve_dac(tmp_path / "env") == env  # a checkpoint root holding dac/
    with pytest.raises(CheckpointError, match="missing.pth: DAC weights not found"):
        resolve_dac(tmp_path / "missing.pth")  # an explicit wrong path is an error, not a fall-through


def test_dac_missing_offline_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dac.utils

    monkeypatch.setattr(dac.utils, "download", lambda **k: (_ for _ in ()).throw(AssertionError("called")))
    with pytest.raises(CheckpointError) as err:
        resolve_dac(tmp_path / "nope.pth")
    assert_one_line(str(err.value))
    assert str(tmp_path / "nope.pth") in str(err.value) and DAC_WEIGHTS_NAME in str(err.value)
    with pytest.raises(CheckpointError) as err:
        resolve_dac()
    msg = str(err.value)
    assert_one_line(msg)
    for needle in (DAC_WEIGHTS_NAME, "AVTOK_CHECKPOINTS", "HF_HUB_OFFLINE",
                   "python -m dac download"):
        assert needle in msg, needle


def test_dac_unreachable_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import dac.utils

    monkeypatch.setattr(ck, "is_offline", lambda: False)
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: (_ for _ in ()).throw(socket.gaierror(-2, "Name or service not known")))
    monkeypatch.setattr(dac.utils, "download", lambda **k: (_ for _ in ()).throw(AssertionError("called")))
    with pytest.raises(CheckpointError, match="cannot reach github.com:443"):
        resolve_dac()


def test_dac_download_errors_and_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dac.utils

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(ck, "is_offline", lambda: False)
    monkeypatch.setattr(ck, "_unreachable", lambda url, timeout=3.0: None)

    def fail(**kwargs):
        assert kwargs == {"model_type": "44khz", "model_bitrate": "8kbps"}
        raise ValueError("Could not download model. Received response code 503\nsecond line")

    monkeypatch.setattr(dac.utils, "download", fail)
    with pytest.raises(CheckpointError) as err:
        resolve_dac()
    assert_one_line(str(err.value))
    assert "response code 503" in str(err.value)
    got = tmp_path / "dl.pth"
    got.write_bytes(b"x")
    monkeypatch.setattr(dac.utils, "download", lambda **k: got)
    assert resolve_dac() == got
    with pytest.raises(CheckpointError, match="download not allowed"):
        resolve_dac(allow_download=False)


# ----------------------------------------------------------------------------------------------------
# overview
# ----------------------------------------------------------------------------------------------------
def test_missing_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("download attempted")))
    root = tmp_path / "ckpt"
    make_folder(root / CV.repo_name)
    missing = missing_checkpoints(ALL_SETTINGS, root)
    assert set(missing) == {s.name for s in ALL_SETTINGS if s != CV} | {"dac"}
    assert all("\n" not in reason for reason in missing.values())
    (root / "dac").mkdir()
    (root / "dac" / DAC_WEIGHTS_NAME).write_bytes(b"x")
    monkeypatch.setenv("AVTOK_CHECKPOINTS", str(root))
    assert "dac" not in missing_checkpoints([CV], None)
    assert missing_checkpoints([CV], None, include_dac=False) == {}


def test_tiny_checkpoints_resolve(tiny_checkpoints: Path) -> None:
    for setting in ALL_SETTINGS:
        assert resolve_cosmos(setting, tiny_checkpoints) == tiny_checkpoints / setting.repo_name
    assert missing_checkpoints(ALL_SETTINGS, tiny_checkpoints, dac_weights=tiny_checkpoints) == {}


def test_require_weights_names_every_missing_piece(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as e:
        ck.require_weights(DV, None, None, need_dac=True, allow_download=True)  # HF_HUB_OFFLINE=1: no download
    msg = str(e.value)
    assert_one_line(msg)
    assert msg.startswith("2 weight files missing for this run: (1) DV4x8x8 checkpoint not found")
    assert "(2) DAC weights not found" in msg and "--checkpoints DIR" in msg and "--dac-weights PATH" in msg
    with pytest.raises(CheckpointError) as e:  # DAC not needed: only Cosmos
        ck.require_weights(DV, None, None, need_dac=False)
    assert str(e.value).startswith("DV4x8x8 checkpoint not found") and "DAC" not in str(e.value)


def test_require_weights_returns_both_when_present(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ck" / DV.repo_name)
    dac = tmp_path / "ck" / "dac" / DAC_WEIGHTS_NAME
    dac.parent.mkdir(parents=True)
    dac.write_bytes(b"x")
    assert ck.require_weights(DV, tmp_path / "ck", dac, allow_download=False) == (folder, dac)


def test_describe_weight_file_flags_wrong_sizes(tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "encoder.jit"
    f.write_bytes(b"\0" * 4321)
    text = ck.describe_weight_file(f, "DV8x16x16/encoder.jit")
    assert text.startswith(f"{f}: 4.3 KB, sha256 {hashlib.sha256(f.read_bytes()).hexdigest()[:12]}")
    assert "NOT the published file's size (~91.0 MB)" in text
    assert "NOT" not in ck.describe_weight_file(f, "unknown-key")
    # a file of the published size (sparse, no disk cost) is not flagged
    big = tmp_path / "big.jit"
    with open(big, "wb") as fh:
        fh.truncate(int(ck.PUBLISHED_MB["DV8x16x16/encoder.jit"] * 1e6) + 12345)
    assert "NOT" not in ck.describe_weight_file(big, "DV8x16x16/encoder.jit")
    assert set(ck.PUBLISHED_MB) == {f"{s.name}/{n}" for s in ALL_SETTINGS for n in ck.COSMOS_FILES} | {"dac"}


def test_lpips_backbone_fetch_follows_the_download_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from avtok_ui import lpips_net

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("AVTOK_LPIPS_BACKBONE", raising=False)
    calls: list[tuple[str, str, str]] = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        Path(dst).write_bytes(b"trunk")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    # offline (the test session sets HF_HUB_OFFLINE=1) or not allowed: no download, the "unavailable" line
    path, why = lpips_net.fetch_backbone("alex", allow_download=True)
    assert path is None and calls == []
    assert why.startswith("unavailable: alexnet-owt-7be5be79.pth not found") and "HF_HUB_OFFLINE" in why
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    path, why = lpips_net.fetch_backbone("vgg", allow_download=False)
    assert path is None and calls == [] and "download not allowed" in why
    # allowed (and the host reachable): torchvision's file, hash-checked, into the torch hub cache
    monkeypatch.setattr(ck, "_unreachable", lambda url, timeout=3.0: None)
    path, why = lpips_net.fetch_backbone("vgg", allow_download=True)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    assert (path, why) == (hub / "vgg16-397923af.pth", "")
    assert calls == [("https://download.pytorch.org/models/vgg16-397923af.pth", str(hub / "vgg16-397923af.pth"),
                      "397923af")]
    assert lpips_net.resolve_backbone("vgg") == (hub / "vgg16-397923af.pth", "")  # where LPIPS looks
    assert lpips_net.fetch_backbone("vgg", allow_download=True) == (path, "") and len(calls) == 1  # present: no refetch
    # unreachable host: a fast, one-line reason
    monkeypatch.setattr(ck, "_unreachable", lambda url, timeout=3.0: "cannot reach download.pytorch.org:443")
    path, why = lpips_net.fetch_backbone("alex", allow_download=True)
    assert path is None and "cannot reach download.pytorch.org" in why and len(calls) == 1
