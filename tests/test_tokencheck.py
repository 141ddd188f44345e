"""Token files are input too: crafted files through ``avtok reconstruct`` / ``avtok info`` give one specific
line ``error: <file>: <problem>``, exit 1 and no outputs; every field of a good file corrupted in turn never
reconstructs."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from _synth import make_video
from safetensors import safe_open
from safetensors.torch import save_file

from avtok_ui.cli import main
from avtok_ui.errors import TokenFileError
from avtok_ui.settings import DAC_WEIGHTS_NAME
from avtok_ui.tokencheck import validate
from avtok_ui.tokens import load_tokens

Tensors = dict[str, torch.Tensor]
Meta = dict[str, str]


@pytest.fixture(scope="module")
def good(tiny_checkpoints, tmp_path_factory) -> dict[str, Path]:
    """Real token files from the tiny models: DV8x16x16 with audio (64x48, 30 frames = windows 17+13, 6 latents
    of 3x4) and CV4x8x8 without audio."""
    d = tmp_path_factory.mktemp("good")
    clip = make_video(d / "clip.mp4", width=64, height=48, n_frames=30, fps=25, audio=True)
    out = {}
    for setting, extra in (("DV8x16x16", []), ("CV4x8x8", ["--no-audio"])):
        rc = main(["tokenize", str(clip), "-o", str(d / setting), "-n", setting, "-s", setting, "--no-metrics",
                   "-q", "--device", "cpu", "--checkpoints", str(tiny_checkpoints),
                   "--dac-weights", str(tiny_checkpoints / "dac" / DAC_WEIGHTS_NAME), "--offline", *extra])
        assert rc == 0
        out[setting] = d / setting / f"{setting}.safetensors"
    return out


def _read(path: Path) -> tuple[Tensors, Meta]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def craft(src: Path, dst: Path, edit: Callable[[Tensors, Meta], None]) -> Path:
    """Copy a token file through safetensors with ``edit(tensors, metadata)`` applied (a valid container)."""
    tensors, meta = _read(src)
    edit(tensors, meta)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dst), metadata=meta)
    return dst


def set_meta(meta: Meta, key: str, value) -> None:
    meta[key] = json.dumps(value)


def edit_meta(meta: Meta, key: str, sub: str, value) -> None:
    d = json.loads(meta[key])
    d[sub] = value
    meta[key] = json.dumps(d)


def _u16(values: torch.Tensor) -> torch.Tensor:
    return values.to(torch.int32).to(torch.uint16)


def expect_rejected(path: Path, needle: str, tmp_path: Path, capsys) -> str:
    """reconstruct and info both exit 1 with one line naming the file and the problem; nothing is written."""
    out = tmp_path / "recon"
    assert main(["reconstruct", str(path), "-o", str(out), "-q", "--device", "cpu", "--offline"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path.name}: "), err
    assert needle in err and "\n" not in err and "internal error" not in err, err
    assert not out.exists() or not any(out.iterdir())
    assert main(["info", str(path)]) == 1
    cap = capsys.readouterr()
    assert cap.err.strip() == err and "valid" not in cap.out
    with pytest.raises(TokenFileError):
        load_tokens(path, visual=False)
    return err


# one crafted file per row of the issue, plus more -----------------------------------------------------------
def _bigger_grid(t: Tensors, m: Meta) -> None:  # [1,6,3,4] stored, [1,6,6,8] in the file, metadata unchanged
    t["visual"] = t["visual"].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def _bigger_grid_and_latent_shape(t: Tensors, m: Meta) -> None:
    _bigger_grid(t, m)
    set_meta(m, "latent_shape", list(t["visual"].shape))


def _window_latents(t: Tensors, m: Meta) -> None:
    t["window_latents"] = torch.tensor([3, 300], dtype=torch.int64)


def _offsets_not_monotonic(t: Tensors, m: Meta) -> None:
    off = t["audio_latent_offsets"].clone()
    off[2], off[3] = off[3] + 5, off[2]
    t["audio_latent_offsets"] = off


def _offsets_past_end(t: Tensors, m: Meta) -> None:
    off = t["audio_latent_offsets"].clone()
    off[-1] += 200
    t["audio_latent_offsets"] = off


def _dv_id_too_big(t: Tensors, m: Meta) -> None:
    v = t["visual"].to(torch.int32)
    v[0, 4, 1, 2] = 64000
    t["visual"] = _u16(v)


def _visual_rank(t: Tensors, m: Meta) -> None:
    t["visual"] = t["visual"][0]
    set_meta(m, "latent_shape", list(t["visual"].shape))


def _code_too_big(t: Tensors, m: Meta) -> None:
    c = t["audio_codes"].to(torch.int32)
    c[3, 7] = 1024
    t["audio_codes"] = _u16(c)


def _huge_frame(t: Tensors, m: Meta) -> None:
    edit_meta(m, "padding", "width", 60000)
    edit_meta(m, "padding", "height", 60000)
    edit_meta(m, "source", "width", 60000)
    edit_meta(m, "source", "height", 60000)


def _bad_setting(t: Tensors, m: Meta) -> None:
    set_meta(m, "setting", "XV9x9x9")


def _cv_setting_on_dv_ids(t: Tensors, m: Meta) -> None:
    set_meta(m, "setting", "CV8x16x16")


def _window_12(t: Tensors, m: Meta) -> None:
    set_meta(m, "window", 12)


def _missing_offsets(t: Tensors, m: Meta) -> None:
    del t["audio_latent_offsets"]


def _extra_tensor(t: Tensors, m: Meta) -> None:
    t["payload"] = torch.zeros(4)


def _visual_int32(t: Tensors, m: Meta) -> None:
    t["visual"] = t["visual"].to(torch.int32)


def _spans_reversed(t: Tensors, m: Meta) -> None:
    t["latent_source_frames"] = t["latent_source_frames"].flip(0).contiguous()


def _pts_short(t: Tensors, m: Meta) -> None:
    t["frame_pts"] = t["frame_pts"][:-1].clone()


def _windows_swapped(t: Tensors, m: Meta) -> None:
    t["window_frames"] = t["window_frames"].flip(0).contiguous()


def _codebooks_meta(t: Tensors, m: Meta) -> None:
    edit_meta(m, "audio", "codebooks", 4)


def _padding_string(t: Tensors, m: Meta) -> None:
    set_meta(m, "padding", "64x48")


def _version_2(t: Tensors, m: Meta) -> None:
    m["format_version"] = "2"


def _clip_frames(t: Tensors, m: Meta) -> None:
    edit_meta(m, "clip", "n_frames", 31)


def _fps_zero(t: Tensors, m: Meta) -> None:
    edit_meta(m, "source", "fps", "0/1")


CASES = [
    (_bigger_grid, "visual tensor [1, 6, 6, 8] differs from the metadata's latent_shape [1, 6, 3, 4]"),
    (_bigger_grid_and_latent_shape, "visual latent grid 6x8 does not match 64x48 frames at DV8x16x16 (expected 3x4)"),
    (_window_latents, "window_latents[1] = 300, but a window of 13 frames gives 3 latents"),
    (_offsets_not_monotonic, "audio_latent_offsets are not monotonic"),
    (_offsets_past_end, "audio_latent_offsets run from 0 to"),
    (_dv_id_too_big, "visual id 64000 at latent frame 4 is outside the DV8x16x16 vocabulary [0, 64000)"),
    (_visual_rank, "visual has rank 3 [6, 3, 4], expected [1, t, h, w]"),
    (_code_too_big, "audio code 1024 (codebook 3, frame 7) is outside [0, 1024)"),
    (_huge_frame, "source width = 60000 is implausible"),
    (_bad_setting, "metadata cannot parse setting 'XV9x9x9'"),
    (_cv_setting_on_dv_ids, "visual is U16, expected BF16"),
    (_window_12, "window 12 is not valid for DV8x16x16"),
    (_missing_offsets, "audio_codes and audio_latent_offsets must come together"),
    (_extra_tensor, "unexpected tensor 'payload'"),
    (_visual_int32, "visual is I32, expected U16"),
    (_spans_reversed, "latent_source_frames do not cover frames 0..29 in order: latent 0 has [26, 30), expected [0, 1)"),
    (_pts_short, "metadata says 30 frames but frame_pts has 29"),
    (_windows_swapped, "window_frames [13, 17] is not 30 frames in windows of 17 ([17, 13])"),
    (_codebooks_meta, "metadata says 4 codebooks but audio_codes has 9"),
    (_padding_string, "metadata field 'padding' has the wrong type (str)"),
    (_version_2, "token file format version 2 is not supported"),
    (_clip_frames, "metadata says 31 frames but frame_pts has 30"),
    (_fps_zero, "source fps = 0/1 is implausible"),
]


@pytest.mark.parametrize("edit, needle", CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_crafted_file_is_rejected_with_its_own_line(good, tmp_path, capsys, edit, needle):
    bad = craft(good["DV8x16x16"], tmp_path / "bad.safetensors", edit)
    expect_rejected(bad, needle, tmp_path, capsys)


def test_cv_latents_must_be_finite(good, tmp_path, capsys):
    def nan(t: Tensors, m: Meta) -> None:
        v = t["visual"].clone()
        v[0, 5, 1, 2, 7] = float("nan")
        t["visual"] = v

    bad = craft(good["CV4x8x8"], tmp_path / "nan.safetensors", nan)
    expect_rejected(bad, "visual latents are not finite (NaN or inf at latent frame 5)", tmp_path, capsys)


# container-level damage ---------------------------------------------------------------------------------------
def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _write_header(path: Path, header: dict, data: bytes | None, total: int | None = None) -> Path:
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        if data is not None:
            f.write(data)
    if total is not None:
        import os

        os.truncate(path, total)  # sparse: no blocks allocated for the hole
    return path


def test_truncated_and_padded_files(good, tmp_path, capsys):
    raw = good["DV8x16x16"].read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:-10])
    expect_rejected(cut, "file is truncated: its tensors need", tmp_path, capsys)
    more = tmp_path / "more.safetensors"
    more.write_bytes(raw + b"\0" * 16)
    expect_rejected(more, "16 unexpected bytes after the last tensor", tmp_path, capsys)


def test_200_gb_sparse_file_with_a_consistent_header(good, tmp_path, capsys):
    """The header claims a 200 GB visual tensor (the metadata agrees) and the file is that long (sparse): rejected
    from the small tables, without mapping or reading the 200 GB."""
    header, data = _header(good["DV8x16x16"])
    meta = header["__metadata__"]
    vis = header["visual"]
    t_big = 200 * 10**9 // (2 * 3 * 4)
    vis["shape"] = [1, t_big, 3, 4]
    vis["data_offsets"][1] = vis["data_offsets"][0] + 2 * math.prod(vis["shape"])
    meta["latent_shape"] = json.dumps(vis["shape"])
    small = data[:vis["data_offsets"][0]]
    path = tmp_path / "huge.safetensors"
    try:
        _write_header(path, header, small, total=None)
        total = path.stat().st_size + 2 * math.prod(vis["shape"])
        _write_header(path, header, small, total=total)
        assert path.stat().st_size > 200 * 10**9 and path.stat().st_blocks * 512 < 10**7
        err = expect_rejected(path, "latent_source_frames [6, 2], expected [8333333333, 2]", tmp_path, capsys)
        assert "mmap" not in err
    finally:
        path.unlink(missing_ok=True)


def test_header_claiming_more_bytes_than_the_file(good, tmp_path, capsys):
    header, data = _header(good["DV8x16x16"])
    header["visual"]["shape"][1] = 10**11
    path = _write_header(tmp_path / "liar.safetensors", header, data)
    expect_rejected(path, "tensor 'visual': U16 [1, 100000000000, 3, 4] needs", tmp_path, capsys)


# the good files ---------------------------------------------------------------------------------------------
def test_good_files_are_valid_and_info_says_so(good, capsys):
    for path in good.values():
        checked = validate(path)
        assert checked.setting.name == path.stem
        assert main(["info", str(path)]) == 0
        assert "  valid: " in capsys.readouterr().out
        assert main(["info", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["valid"] is True


def test_value_scan_streams_in_chunks(good, monkeypatch):
    """The visual scan reads SCAN_CHUNK bytes at a time (one reused buffer): with a 64-byte chunk a DV file of
    6 latents x 12 ids (144 bytes) takes 3 reads, and an id in the last chunk is still found."""
    import avtok_ui.tokencheck as tc

    monkeypatch.setattr(tc, "SCAN_CHUNK", 64)
    e = validate(good["DV8x16x16"], scan_values=False).entries["visual"]
    chunks = [(first, raw.size) for first, raw in tc.iter_raw_chunks(good["DV8x16x16"], e, 64)]
    assert chunks == [(0, 32), (32, 32), (64, 8)]


# property: every field corrupted in turn ---------------------------------------------------------------------
def _tensor_corruptions(name: str) -> list[tuple[str, Callable[[Tensors, Meta], None]]]:
    def drop(t, m):
        del t[name]

    def as_f32(t, m):
        t[name] = t[name].to(torch.float32)

    def extra_dim(t, m):
        t[name] = t[name].unsqueeze(0)

    def shorter(t, m):
        t[name] = t[name].narrow(-1 if name == "visual" else 0, 0, t[name].shape[-1 if name == "visual" else 0] - 1)

    def longer(t, m):
        x = t[name]
        t[name] = torch.cat([x, x.narrow(0, 0, 1)], 0) if name != "visual" else torch.cat([x, x[:, :1]], 1)

    def maxed(t, m):
        x = t[name]
        if x.dtype == torch.uint16:
            t[name] = torch.full_like(x.to(torch.int32), 65535).to(torch.uint16)
        elif x.dtype == torch.bfloat16:
            t[name] = torch.full_like(x, float("inf"))
        else:
            t[name] = torch.full_like(x, 2**40)

    def negated(t, m):
        x = t[name]
        t[name] = (-x.to(torch.int64) - 1) if x.dtype == torch.int64 else x.to(torch.int32).neg().to(torch.int64)

    # negated frame_pts stay plausible timestamps: their order is not enforced (kept as decoded)
    fs = (drop, as_f32, extra_dim, shorter, longer, maxed) + (() if name == "frame_pts" else (negated,))
    return [(f"{name}:{f.__name__}", f) for f in fs]


META_FIELDS = {
    "format": None, "format_version": None, "setting": None, "window": None, "latent_shape": None,
    "padding": ("width", "height"),
    "source": ("file", "width", "height", "fps", "time_base", "n_frames", "duration_s"),
    "clip": ("n_frames", "width", "height", "duration_s", "pts_origin"),
    "audio": ("codebooks", "n_code_frames", "n_samples", "sample_rate", "hop", "codebook_size"),
}
BAD_VALUES = [None, -1, 10**12, "x", [1], 0.5]


def _meta_corruptions() -> list[tuple[str, Callable[[Tensors, Meta], None]]]:
    out = []
    for key, subs in META_FIELDS.items():
        def drop(t, m, key=key):
            del m[key]

        if key != "clip":  # no clip record = the whole source, untrimmed: valid
            out.append((f"{key}:drop", drop))
        if key not in ("format", "format_version"):
            for v in BAD_VALUES[1:]:
                def bad(t, m, key=key, v=v):
                    m[key] = json.dumps(v)

                out.append((f"{key}={v!r}", bad))
        for sub in subs or ():
            for v in BAD_VALUES:
                if key == "clip" and v is None:
                    continue  # clip fields are optional: None means "not recorded"
                if key == "clip" and sub == "pts_origin" and v in (-1, 10**12):
                    continue  # any integer is a valid pts origin
                if v == 0.5 and (key, sub) in {("source", "fps"), ("source", "time_base"), ("source", "duration_s"),
                                               ("clip", "duration_s")}:
                    continue  # a valid value (0.5 fps, a 0.5 s clip)
                if (key, sub) == ("source", "file") and isinstance(v, str):
                    continue  # any name is a valid name

                def bad_sub(t, m, key=key, sub=sub, v=v):
                    edit_meta(m, key, sub, v)

                out.append((f"{key}.{sub}={v!r}", bad_sub))
    return out


def _all_corruptions():
    names = ("visual", "latent_source_frames", "window_frames", "window_latents", "frame_pts", "audio_codes",
             "audio_latent_offsets")
    return [c for n in names for c in _tensor_corruptions(n)] + _meta_corruptions()


def test_every_field_corrupted_in_turn_never_reconstructs(good, checkpoints_env, tmp_path, capsys):
    src = good["DV8x16x16"]
    accepted = []
    for k, (label, edit) in enumerate(_all_corruptions()):
        out = tmp_path / f"recon{k}"
        try:
            bad = craft(src, tmp_path / "p.safetensors", edit)
        except Exception:  # noqa: BLE001 - the edit itself is impossible for this field (e.g. an empty narrow)
            continue
        rc = main(["reconstruct", str(bad), "-o", str(out), "-q", "--device", "cpu", "--offline"])
        err = capsys.readouterr().err.strip()
        written = sorted(p.name for p in out.iterdir()) if out.exists() else []
        if rc == 0 or written or not err.startswith("error: p.safetensors: ") or "internal error" in err:
            accepted.append((label, rc, written, err))
    assert [a[:2] for a in accepted] == [], accepted


def test_value_error_past_the_checks_names_the_file(good, tmp_path, capsys, monkeypatch):
    """A ValueError from bad input deep in the engine is a one-line user error naming the file, not an internal
    error (AVTOK_DEBUG=1 still shows the traceback)."""
    import avtok_ui.pipeline as pipeline

    def bad_values(*args, **kwargs):
        raise ValueError("got 7 frames but 8 pts")

    monkeypatch.setattr(pipeline, "reconstruct", bad_values)
    path = good["DV8x16x16"]
    assert main(["reconstruct", str(path), "-o", str(tmp_path / "r"), "-q", "--offline"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {path.name}: got 7 frames but 8 pts"
    monkeypatch.setenv("AVTOK_DEBUG", "1")
    with pytest.raises(ValueError, match="8 pts"):
        main(["reconstruct", str(path), "-o", str(tmp_path / "r"), "-q", "--offline"])


# the same checks on a token file in memory (a dataset shard's member) -----------------------------------------
def _message(check: Callable[[], object]) -> str | None:
    try:
        check()
    except TokenFileError as err:
        return str(err)
    return None


def test_bytes_in_memory_get_the_same_checks_and_lines(good, tmp_path):
    """validate_bytes(data, name) == validate(file named name) for good files, every crafted and corrupted
    file above, and container damage (truncated, trailing bytes, a video, a tiny file)."""
    from avtok_ui.tokencheck import validate_bytes

    for path in good.values():
        on_disk, in_memory = validate(path), validate_bytes(path.read_bytes(), path.name)
        assert in_memory.meta == on_disk.meta and in_memory.entries == on_disk.entries
        assert in_memory.setting.name == on_disk.setting.name == path.stem
        assert set(in_memory.tables) == set(on_disk.tables)
        assert all((in_memory.tables[k] == on_disk.tables[k]).all() for k in on_disk.tables)
    src = good["DV8x16x16"]
    raw = src.read_bytes()
    edits = [(e.__name__, e) for e, _ in CASES] + _all_corruptions()
    seen = 0
    for k, (label, edit) in enumerate(edits):
        try:
            bad = craft(src, tmp_path / f"k{k}.safetensors", edit)
        except Exception:  # noqa: BLE001 - the edit itself is impossible for this field
            continue
        want = _message(lambda bad=bad: validate(bad))
        got = _message(lambda bad=bad: validate_bytes(bad.read_bytes(), bad.name))
        assert got == want, label
        seen += want is not None
    assert seen > 100
    (tmp_path / "m.mp4").write_bytes(make_video(tmp_path / "v.mp4", n_frames=2).read_bytes())
    for name, data in [("cut.safetensors", raw[:-3]), ("pad.safetensors", raw + b"\0"), ("tiny.safetensors", raw[:5]),
                       ("m.mp4", (tmp_path / "m.mp4").read_bytes())]:
        (tmp_path / name).write_bytes(data)
        want = _message(lambda name=name: validate(tmp_path / name))
        assert want is not None and _message(lambda data=data, name=name: validate_bytes(data, name)) == want, name
