"""The repository stands alone and installs quietly: no references to files outside it, docs that list the
modules as they are, requirements a Space can use for LPIPS, a bootstrap that never imports torch before numpy
is there, and a clean checkout after the README's own commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def _tracked() -> list[Path]:
    r = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / p for p in r.stdout.splitlines() if (ROOT / p).is_file()]


def _text_files() -> list[Path]:
    return [p for p in _tracked() if p.suffix in {".py", ".md", ".sh", ".toml", ".txt", ""} and p != Path(__file__)]


def test_no_references_outside_the_repository():
    # files that only exist on the machine the project was built on, and absolute machine paths
    pattern = re.compile(r"TRAPS\.md|METRIC_CONVENTIONS\.md|COSMOS_JIT\.md|ORIGINAL_TOOL\.md|DESIGN\.md|"
                         r"\.\./shared|/work/|/home/\w|shared/\w+\.md")
    bad = [f"{p.relative_to(ROOT)}:{i}: {ln.strip()}" for p in _text_files()
           for i, ln in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(ln)]
    assert not bad, "\n".join(bad)


def test_readme_sections_cited_elsewhere_exist():
    headings = {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", (ROOT / "README.md").read_text(), re.M)}
    cited = [(p, m.group(1)) for p in _text_files()
             for m in re.finditer(r'README (?:section )?"([^"]+)"', p.read_text(errors="replace"))]
    bad = [f"{p.relative_to(ROOT)}: {name}" for p, name in cited
           if not any(h == name or h.startswith(name + " ") for h in headings)]
    assert not bad, bad


def test_architecture_lists_every_module():
    arch = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    rows = set(re.findall(r"^\| `([\w/]+\.py)`", arch, re.M))
    rows |= {m for line in re.findall(r"^\| (`[^|]+)\|", arch, re.M) for m in re.findall(r"`([\w/]+\.py)`", line)}
    pkg = ROOT / "avtok_ui"
    modules = {p.name for p in pkg.glob("*.py") if p.name != "__init__.py"}
    # sub-packages may be listed module by module (``engine/stages.py``) or as a whole (``backends/``)
    wholes = set(re.findall(r"^\| `(\w+)/`", arch, re.M))
    modules |= {str(p.relative_to(pkg)) for p in pkg.glob("*/*.py")
                if p.parent.name not in wholes and p.name != "__init__.py"}
    assert modules - rows == set(), f"modules missing from docs/ARCHITECTURE.md: {sorted(modules - rows)}"
    assert rows - modules - {"app.py"} == set(), f"listed but absent: {sorted(rows - modules - {'app.py'})}"
    tokens_row = next(ln for ln in arch.splitlines() if ln.startswith("| `tokens.py`"))
    assert "readout" not in tokens_row  # readouts live in readouts.py


def test_requirements_carry_lpips_and_bootstrap_installs_the_same_pin_without_deps():
    import gen_requirements

    reqs = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    lpips = [r for r in reqs if r.startswith("lpips")]
    assert lpips == ["lpips==0.1.4"], reqs  # what a Space installs: LPIPS works there out of the box
    deps = gen_requirements.dependencies(ROOT / "pyproject.toml")
    text = (ROOT / "pyproject.toml").read_text()
    assert gen_requirements._array(text, "project", "dependencies") + gen_requirements._array(
        text, "project.optional-dependencies", "lpips") == deps  # Python 3.10's parser agrees with tomllib
    boot = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "lpips==" not in boot.replace('"lpips==[^"]*"', "")  # the pin comes from pyproject.toml only
    assert re.search(r'install --no-deps "\$\{LPIPS_SPEC', boot)


def test_bootstrap_installs_numpy_with_torch_before_importing_torch():
    lines = (ROOT / "scripts" / "bootstrap.sh").read_text().splitlines()
    code = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    first_import = next(i for i, ln in enumerate(code) if re.search(r"-c \"import torch", ln))
    torch_install = next(i for i, ln in enumerate(code) if "install" in ln and "TORCH_SPEC" in ln)
    assert torch_install < first_import
    assert "NUMPY_SPEC" in code[torch_install], code[torch_install]  # same pip step: no "Failed to initialize NumPy"


def test_extracted_audio_beside_the_bundled_clip_is_ignored():
    r = subprocess.run(["git", "check-ignore", "-q", "assets/bigbuckbunny_audio.wav"], cwd=ROOT)
    assert r.returncode == 0
    r = subprocess.run(["git", "check-ignore", "-q", "assets/bigbuckbunny.mp4"], cwd=ROOT)
    assert r.returncode == 1  # the clip itself stays tracked
