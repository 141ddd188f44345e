"""`TokenDataset` validates every sample with the one token-file check (issue 11): a shard built directly with
`ShardWriter` from `avtok tokenize --tokens-only` files reads back as the files themselves; the same shard with
one sample's bytes corrupted raises one line naming the shard, the key and the problem."""

from __future__ import annotations

import io
import json
import struct
import tarfile
from pathlib import Path

import pytest
import torch
from _synth import make_video
from safetensors.torch import load_file

from avtok_ui.cli import main
from avtok_ui.dataset import TokenDataset
from avtok_ui.dataset.reader import decode_sample
from avtok_ui.dataset.shards import ShardWriter
from avtok_ui.errors import TokenFileError
from avtok_ui.settings import DAC_WEIGHTS_NAME
from avtok_ui.tokencheck import validate_bytes

#: key -> (setting, clip options): a CV sample without audio and a DV sample with audio
SAMPLES = {"cv_clip": ("CV4x8x8", {"n_frames": 12, "audio": False}), "dv_clip": ("DV8x16x16", {"n_frames": 20})}


@pytest.fixture(scope="module")
def token_files(tiny_checkpoints, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("reader")
    out = {}
    for key, (setting, kw) in SAMPLES.items():
        clip = make_video(d / f"{key}.mp4", width=64, height=48, **kw)
        rc = main(["tokenize", str(clip), "-o", str(d), "-n", key, "-s", setting, "--tokens-only", "-q",
                   "--device", "cpu", "--checkpoints", str(tiny_checkpoints),
                   "--dac-weights", str(tiny_checkpoints / "dac" / DAC_WEIGHTS_NAME), "--offline"])
        assert rc == 0
        out[key] = d / f"{key}.safetensors"
    return out


def _shard(out: Path, members: dict[str, bytes]) -> Path:
    w = ShardWriter(out, shard_size=1 << 30)
    for key, data in members.items():
        w.add(key, {"safetensors": data, "json": json.dumps({"key": key}).encode()})
    assert w.close() == "shard-000000.tar"
    return out


def _bad_id(data: bytes, latent: int) -> bytes:
    """The token file with the first visual id of latent frame ``latent`` set to 65535 (outside the vocabulary)."""
    e = validate_bytes(data, "x.safetensors").entries["visual"]
    per_latent = e.shape[2] * e.shape[3]
    at = e.start + 2 * per_latent * latent
    return data[:at] + struct.pack("<H", 65535) + data[at + 2:]


def test_good_shard_reads_back_as_the_token_files(token_files, tmp_path):
    out = _shard(tmp_path / "good", {k: p.read_bytes() for k, p in token_files.items()})
    samples = {s["key"]: s for s in TokenDataset(out)}
    assert sorted(samples) == sorted(SAMPLES)
    for key, path in token_files.items():
        ref, got = load_file(path), samples[key]
        for name, want in ref.items():
            assert got[name].dtype == want.dtype and torch.equal(got[name], want), (key, name)
        assert got["meta"]["setting"] == SAMPLES[key][0] and got["record"] == {"key": key}
    assert samples["cv_clip"]["audio_codes"] is None and samples["cv_clip"]["visual"].dtype == torch.bfloat16
    assert samples["dv_clip"]["audio_codes"].dtype == torch.uint16


def test_corrupt_sample_in_a_shard_names_shard_key_and_problem(token_files, tmp_path):
    good = _shard(tmp_path / "src", {k: p.read_bytes() for k, p in token_files.items()})
    # rewrite the shard with dv_clip's token file corrupted (one visual id past the vocabulary)
    bad = tmp_path / "bad" / "shards" / "shard-000000.tar"
    bad.parent.mkdir(parents=True)
    with tarfile.open(good / "shards" / "shard-000000.tar") as src, tarfile.open(bad, "w", format=tarfile.USTAR_FORMAT) as dst:
        for m in src:
            data = src.extractfile(m).read()
            if m.name == "dv_clip.safetensors":
                data = _bad_id(data, latent=2)
                assert len(data) == m.size
            dst.addfile(m, io.BytesIO(data))
    want = ("shard-000000.tar: dv_clip.safetensors: visual id 65535 at latent frame 2 is outside the DV8x16x16 "
            "vocabulary [0, 64000)")
    seen = []
    with pytest.raises(TokenFileError) as err:
        for s in TokenDataset(bad.parents[1]):
            seen.append(s["key"])
    assert str(err.value) == want and seen == ["cv_clip"]  # the good sample before it was read
    # the same check without a shard names the member alone; validate=False skips it (for trusted shards)
    data = _bad_id(token_files["dv_clip"].read_bytes(), latent=2)
    with pytest.raises(TokenFileError, match=r"^dv_clip\.safetensors: visual id 65535 at latent frame 2 "):
        decode_sample("dv_clip", data)
    unchecked = {s["key"]: s for s in TokenDataset(bad.parents[1], validate=False)}
    assert int(unchecked["dv_clip"]["visual"].to(torch.int32).max()) == 65535
    # container damage (a truncated member) is caught the same way, before safetensors parses anything
    cut = token_files["cv_clip"].read_bytes()[:-10]
    with pytest.raises(TokenFileError, match=r"^shard-000007\.tar: cv_clip\.safetensors: file is truncated"):
        decode_sample("cv_clip", cut, shard="/x/shard-000007.tar")
