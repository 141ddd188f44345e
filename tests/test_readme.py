"""The README's examples run as written (with tiny checkpoints)."""

from __future__ import annotations

import re
from pathlib import Path

from _synth import make_video

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(title: str, lang: str) -> str:
    text = README.read_text()
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)
    assert blocks, f"no {lang} block under '## {title}'"
    return blocks[0]


def test_library_example_runs(checkpoints_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "clip.mp4", n_frames=20, audio=True)
    code = _section_code("Library", "python")
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the README's own example
    tf = ns["tf"]
    assert tf.visual.shape[0] == 1 and tf.audio_codes.shape[0] == 9
    assert (tmp_path / "recon" / "clip_reconstructed.mp4").exists()


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "bash scripts/app.sh" in text and "bash scripts/test.sh" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
