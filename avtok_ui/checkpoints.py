"""Locating model weights: Cosmos ``encoder.jit``/``decoder.jit`` folders and the DAC 44.1 kHz weights.

Search order for a Cosmos setting (first complete folder wins):

1. an explicit folder (``--checkpoints DIR``): the folder itself, or a parent holding ``<repo name>/``;
2. ``$AVTOK_CHECKPOINTS/<repo name>/`` (e.g. ``$AVTOK_CHECKPOINTS/Cosmos-0.1-Tokenizer-DV8x16x16/``);
3. the Hugging Face cache, for ``nvidia/Cosmos-0.1-Tokenizer-XX`` and the legacy ``nvidia/Cosmos-Tokenizer-XX``;
4. a Hub download (``hf_hub_download``), unless ``allow_download=False`` or ``HF_HUB_OFFLINE`` is set.

DAC: an explicit file (or a folder holding it), ``$AVTOK_CHECKPOINTS/dac/``, DAC's own cache
``~/.cache/descript/dac/``, then ``dac.utils.download`` (skipped when offline).

Every failure is a :class:`CheckpointError` whose message is one line: which files were looked for where,
and how to provide them. Network errors become that error (no tracebacks, no long hangs:
``HF_HUB_OFFLINE=1`` disables every download). This module knows nothing about tensors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .settings import DAC_WEIGHTS_NAME, VisualSetting

__all__ = [
    "COSMOS_FILES",
    "ENV_CHECKPOINTS",
    "resolve_cosmos",
    "resolve_diffusers",
    "DIFFUSERS_FILES",
    "resolve_dac",
    "missing_checkpoints",
    "require_weights",
    "describe_weight_file",
    "PUBLISHED_MB",
    "is_offline",
    "download_blocked",
    "download_command",
]

COSMOS_FILES: tuple[str, str] = ("encoder.jit", "decoder.jit")
ENV_CHECKPOINTS = "AVTOK_CHECKPOINTS"
DAC_SUBDIR = "dac"
#: Where ``dac.utils.download`` fetches the 44.1 kHz 8 kbps weights from (checked for reachability first).
DAC_URL = "https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.1/weights.pth"


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (read now, not at import) asks for no network access."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    if value in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE) and value not in {"0", "OFF", "NO", "FALSE"}
    except Exception:  # noqa: BLE001 -- huggingface_hub missing or changed: only the env var counts
        return False


def download_command(setting: VisualSetting) -> str:
    """Shell command that puts the setting's files where :func:`resolve_cosmos` finds them."""
    return (f"hf download {setting.hub_id} {' '.join(COSMOS_FILES)} "
            f"--local-dir ${ENV_CHECKPOINTS}/{setting.repo_name}")


def _env_root() -> Path | None:
    value = os.environ.get(ENV_CHECKPOINTS, "").strip()
    return Path(value).expanduser() if value else None


def _complete(folder: Path, files: tuple[str, ...] = COSMOS_FILES) -> bool:
    return all((folder / f).is_file() for f in files)


def _describe(folder: Path, files: tuple[str, ...] = COSMOS_FILES) -> str:
    """Why ``folder`` is not a usable checkpoint folder (short)."""
    if not folder.exists():
        return f"{folder} (does not exist)"
    if not folder.is_dir():
        return f"{folder} (not a folder)"
    present = [f for f in files if (folder / f).is_file()]
    if present:
        missing = [f for f in files if f not in present]
        return f"{folder} (has {', '.join(present)} but not {', '.join(missing)})"
    return f"{folder} (no {' / '.join(files)})"


def _candidates(setting: VisualSetting, root: Path) -> list[Path]:
    """Folders under ``root`` that may hold the setting's files: root itself, ``root/<repo name>``, and the
    legacy name ``root/Cosmos-Tokenizer-XX``."""
    legacy = setting.legacy_hub_id.split("/", 1)[1]
    return [root, root / setting.repo_name, root / legacy]


def _hf_cache_dir() -> str | None:
    """The HF hub cache as configured *now* (env read at call time), or None for the library default."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.environ[var]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _from_hf_cache(repo_id: str, files: tuple[str, ...] = COSMOS_FILES) -> Path | None:
    """Snapshot folder holding all ``files`` (paths inside the repo, e.g. ``vae/config.json``) for
    ``repo_id`` in the HF cache, or None (never touches the net)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found: list[Path] = []
    for name in files:
        try:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=_hf_cache_dir())
        except Exception:  # noqa: BLE001 -- a malformed cache is just a miss
            return None
        if not isinstance(hit, str):  # None (unknown) or the "known not to exist" sentinel
            return None
        found.append(Path(hit))
    if any(f.parent != found[0].parent for f in found):  # different snapshots: not a consistent set
        return None
    return found[0].parent


def _hf_cache_label() -> str:
    cache = _hf_cache_dir()
    if cache is None:
        try:
            from huggingface_hub import constants

            cache = constants.HF_HUB_CACHE
        except Exception:  # noqa: BLE001
            cache = "~/.cache/huggingface/hub"
    return str(cache)


def _short(exc: BaseException) -> str:
    """One short line from an exception (first non-empty line, bounded)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]  # a network error's first line says it
    text = f"{type(exc).__name__}: {lines[0] if lines else type(exc).__name__}"
    return text if len(text) <= 200 else text[:197] + "..."


#: Seconds the reachability check waits for a TCP connection to the Hub (or the proxy).
CONNECT_TIMEOUT_S = 3.0


def _hub_unreachable(timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when a TCP connection to the Hub endpoint (or the configured HTTPS proxy) opens within
    ``timeout`` seconds, else a short reason. huggingface_hub itself retries a failing request for about
    25 s (and logs every retry); this check makes "no network" a fast, quiet failure."""
    return _unreachable(os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co", timeout)


def _unreachable(endpoint: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when a TCP connection to ``endpoint``'s host (or the HTTPS proxy) opens in time, else why not."""
    import socket
    from urllib.parse import urlsplit

    proxy = next((os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
                  if os.environ.get(v, "").strip()), "")
    url = urlsplit(proxy if "://" in proxy else f"http://{proxy}") if proxy else urlsplit(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"cannot reach {host}:{port} ({e.strerror or type(e).__name__})"


def _download_files(repo_id: str, files: tuple[str, ...]) -> tuple[Path | None, str]:
    """Fetch ``files`` (paths inside the repo) from the Hub. Returns ``(folder of the files, "")`` or
    ``(None, reason)``; never raises."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None, "download unavailable (huggingface_hub is not installed)"
    unreachable = _hub_unreachable()
    if unreachable:
        return None, f"download of {repo_id} failed: {unreachable}"
    paths: list[Path] = []
    for name in files:
        try:
            paths.append(Path(hf_hub_download(repo_id, name, cache_dir=_hf_cache_dir())))
        except Exception as e:  # noqa: BLE001 -- network, auth, gated repo, disk: all become one line
            hint = ""
            kind = type(e).__name__
            if "Gated" in kind or "401" in str(e) or "403" in str(e):
                hint = " (accept the model licence on huggingface.co and run `hf auth login`)"
            return None, f"download of {repo_id}/{name} failed: {_short(e)}{hint}"
    if any(p.parent != paths[0].parent for p in paths):
        return None, f"download of {repo_id} gave an incomplete snapshot"
    return paths[0].parent, ""


def _download(setting: VisualSetting) -> tuple[Path | None, str]:
    """Try the Hub for a Cosmos setting. Returns ``(folder, "")`` or ``(None, reason)``; never raises."""
    folder, reason = _download_files(setting.hub_id, COSMOS_FILES)
    if folder is not None and not _complete(folder):
        return None, f"download of {setting.hub_id} gave an incomplete snapshot"
    return folder, reason


def download_blocked(allow_download: bool) -> str | None:
    """Why no download may be tried (for the "looked at" list), or None when one may. The one rule for every
    weight file (Cosmos, DAC, diffusers VAEs, the LPIPS trunk): allowed by the caller and ``HF_HUB_OFFLINE``
    not set."""
    if not allow_download:
        return "download not allowed"
    if is_offline():
        return "download skipped (HF_HUB_OFFLINE is set)"
    return None


def _explicit_root(checkpoint_dir: str | Path | None, files: tuple[str, ...]) -> Path | None:
    """The folder given with ``--checkpoints`` (a weight file in it stands for its folder), or None when none
    was given. A folder that does not exist is an error: a mistyped explicit folder must not be silently
    replaced by ``$AVTOK_CHECKPOINTS`` or the cache."""
    if checkpoint_dir is None or not str(checkpoint_dir).strip():
        return None
    root = Path(checkpoint_dir).expanduser()
    if root.is_file() and root.name in files:
        root = root.parent
    if not root.exists():
        raise CheckpointError(f"{root}: checkpoint folder does not exist (--checkpoints)")
    return root


def resolve_cosmos(
    setting: VisualSetting,
    checkpoint_dir: str | Path | None = None,
    *,
    allow_download: bool = True,
) -> Path:
    """Folder holding ``encoder.jit`` and ``decoder.jit`` for ``setting`` (search order: module docstring).

    Raises :class:`CheckpointError` (one line) naming every place looked at and how to provide the files.
    """
    looked: list[str] = []
    root = _explicit_root(checkpoint_dir, COSMOS_FILES)
    if root is not None:
        for folder in _candidates(setting, root):
            if _complete(folder):
                return folder
        where = _describe(root) if not root.is_dir() else (
            f"{_describe(root)} and {_describe(root / setting.repo_name)}")
        looked.append(f"{where} (--checkpoints)")
    env_root = _env_root()
    if env_root is not None:
        for folder in _candidates(setting, env_root)[1:]:
            if _complete(folder):
                return folder
        looked.append(f"{_describe(env_root / setting.repo_name)} (${ENV_CHECKPOINTS})")
    else:
        looked.append(f"${ENV_CHECKPOINTS}/{setting.repo_name} (${ENV_CHECKPOINTS} is not set)")
    for repo_id in (setting.hub_id, setting.legacy_hub_id):
        folder = _from_hf_cache(repo_id)
        if folder is not None and _complete(folder):
            return folder
    looked.append(f"the Hugging Face cache {_hf_cache_label()} ({setting.hub_id}, {setting.legacy_hub_id})")
    blocked = download_blocked(allow_download)
    if blocked:
        looked.append(blocked)
    else:
        folder, reason = _download(setting)
        if folder is not None:
            return folder
        looked.append(reason)
    export = "" if env_root is not None else f"export {ENV_CHECKPOINTS}=$HOME/avtok-checkpoints; "
    raise CheckpointError(
        f"{setting.name} checkpoint not found: looked for {' and '.join(COSMOS_FILES)} in "
        f"{'; '.join(looked)}. Get them with `{export}{download_command(setting)}` (older huggingface_hub: "
        f"`huggingface-cli download {setting.hub_id} --local-dir ${ENV_CHECKPOINTS}/{setting.repo_name}`) "
        f"and keep {ENV_CHECKPOINTS} set, or pass --checkpoints DIR with DIR/{setting.repo_name}/ in it"
    )


# ----------------------------------------------------------------------------------------------------
# diffusers VAEs (avtok_ui.backends): <hub id>/vae/{config.json, diffusion_pytorch_model.safetensors}
# ----------------------------------------------------------------------------------------------------
DIFFUSERS_FILES: tuple[str, str] = ("config.json", "diffusion_pytorch_model.safetensors")


def diffusers_download_command(setting: Any) -> str:
    """Shell command that puts a diffusers VAE where :func:`resolve_diffusers` finds it."""
    sub = setting.subfolder
    return (f"hf download {setting.hub_id} {' '.join(f'{sub}/{f}' for f in DIFFUSERS_FILES)} "
            f"--local-dir ${ENV_CHECKPOINTS}/{setting.repo_name}")


def resolve_diffusers(setting: Any, checkpoint_dir: str | Path | None = None, *,
                      allow_download: bool = True) -> Path:
    """Folder holding ``config.json`` and ``diffusion_pytorch_model.safetensors`` of a diffusers VAE
    setting (:class:`avtok_ui.backends.specs.DiffusersSetting`).

    Order, as for Cosmos: ``checkpoint_dir`` (the VAE folder itself, ``DIR/vae``, ``DIR/<repo name>/vae``
    or ``DIR/<repo name>``); ``$AVTOK_CHECKPOINTS/<repo name>/vae/`` (or ``.../<repo name>/``); the HF
    cache (``<hub id>``, subfolder ``vae``); a Hub download when allowed. Raises :class:`CheckpointError`
    (one line) naming every place looked at.
    """
    files, sub, repo = DIFFUSERS_FILES, setting.subfolder, setting.repo_name
    looked: list[str] = []
    root = _explicit_root(checkpoint_dir, files)
    if root is not None:
        for folder in (root, root / sub, root / repo / sub, root / repo):
            if _complete(folder, files):
                return folder
        looked.append(f"{_describe(root, files)} and {_describe(root / repo / sub, files)} (--checkpoints)")
    env_root = _env_root()
    if env_root is not None:
        for folder in (env_root / repo / sub, env_root / repo):
            if _complete(folder, files):
                return folder
        looked.append(f"{_describe(env_root / repo / sub, files)} (${ENV_CHECKPOINTS})")
    else:
        looked.append(f"${ENV_CHECKPOINTS}/{repo}/{sub} (${ENV_CHECKPOINTS} is not set)")
    in_repo = tuple(f"{sub}/{f}" for f in files)
    folder = _from_hf_cache(setting.hub_id, in_repo)
    if folder is not None and _complete(folder, files):
        return folder
    looked.append(f"the Hugging Face cache {_hf_cache_label()} ({setting.hub_id}, subfolder {sub})")
    blocked = download_blocked(allow_download)
    if blocked:
        looked.append(blocked)
    else:
        folder, reason = _download_files(setting.hub_id, in_repo)
        if folder is not None and _complete(folder, files):
            return folder
        looked.append(reason or f"download of {setting.hub_id} gave an incomplete snapshot")
    export = "" if env_root is not None else f"export {ENV_CHECKPOINTS}=$HOME/avtok-checkpoints; "
    raise CheckpointError(
        f"{setting.name} checkpoint not found: looked for {sub}/{' and '.join(files)} in {'; '.join(looked)}. "
        f"Get them with `{export}{diffusers_download_command(setting)}` and keep {ENV_CHECKPOINTS} set, or pass "
        f"--checkpoints DIR with DIR/{repo}/{sub}/ in it (licence: {setting.licence}, {setting.licence_url})"
    )


# ----------------------------------------------------------------------------------------------------
# DAC
# ----------------------------------------------------------------------------------------------------
def _dac_cache_file() -> Path:
    """DAC's own download location (``dac.utils.download``): ``~/.cache/descript/dac/<weights>``."""
    return Path.home() / ".cache" / "descript" / "dac" / DAC_WEIGHTS_NAME


def resolve_dac(path: str | Path | None = None, *, allow_download: bool = True) -> Path:
    """The DAC 44.1 kHz 8 kbps weights file (``weights_44khz_8kbps_0.0.1.pth``).

    Order: ``path`` (a file, a folder holding the weights file, or a checkpoint root holding
    ``dac/<weights>``), ``$AVTOK_CHECKPOINTS/dac/``,
    ``~/.cache/descript/dac/``, then ``dac.utils.download`` (when allowed and not ``HF_HUB_OFFLINE``).
    Raises :class:`CheckpointError` (one line) otherwise.
    """
    looked: list[str] = []
    if path is not None and str(path).strip():
        p = Path(path).expanduser()
        if p.is_file():
            return p
        for candidate in (p / DAC_WEIGHTS_NAME, p / DAC_SUBDIR / DAC_WEIGHTS_NAME):
            if p.is_dir() and candidate.is_file():
                return candidate
        # an explicit path that is wrong must not be silently replaced by another copy
        raise CheckpointError(
            f"{p}: DAC weights not found ({'no ' + DAC_WEIGHTS_NAME + ' in it' if p.is_dir() else 'does not exist'})"
            f" (--dac-weights): give the path of {DAC_WEIGHTS_NAME} or leave it unset to use "
            f"${ENV_CHECKPOINTS}/{DAC_SUBDIR}/{DAC_WEIGHTS_NAME} or DAC's cache")
    env_root = _env_root()
    if env_root is not None:
        candidate = env_root / DAC_SUBDIR / DAC_WEIGHTS_NAME
        if candidate.is_file():
            return candidate
        looked.append(f"{candidate} (${ENV_CHECKPOINTS})")
    else:
        looked.append(f"${ENV_CHECKPOINTS}/{DAC_SUBDIR}/{DAC_WEIGHTS_NAME} (${ENV_CHECKPOINTS} is not set)")
    cache = _dac_cache_file()
    if cache.is_file():
        return cache
    looked.append(f"{cache} (DAC's cache)")
    blocked = download_blocked(allow_download)
    if blocked:
        looked.append(blocked)
    else:
        unreachable = _unreachable(DAC_URL)
        try:
            if unreachable:  # dac.utils.download uses requests without a timeout: don't let it hang
                raise ConnectionError(unreachable)
            import dac.utils

            got = Path(dac.utils.download(model_type="44khz", model_bitrate="8kbps"))
            if got.is_file():
                return got
            looked.append(f"download gave no file at {got}")
        except Exception as e:  # noqa: BLE001 -- network/SSL/HTTP errors and DAC's asserts
            looked.append(f"download failed: {_short(e)}")
    raise CheckpointError(
        f"DAC weights not found: looked for {DAC_WEIGHTS_NAME} in {'; '.join(looked)}. Get them with "
        f"`python -m dac download` (saves to ~/.cache/descript/dac/), or put the file in "
        f"${ENV_CHECKPOINTS}/{DAC_SUBDIR}/, or pass --dac-weights PATH"
    )


def resolve_visual(setting: Any, checkpoint_dir: str | Path | None = None, *, allow_download: bool = True) -> Path:
    """The weights folder of any visual setting: Cosmos 0.1 (``encoder.jit``/``decoder.jit``) or a diffusers
    VAE (``config.json`` + safetensors)."""
    if isinstance(setting, VisualSetting):
        return resolve_cosmos(setting, checkpoint_dir, allow_download=allow_download)
    return resolve_diffusers(setting, checkpoint_dir, allow_download=allow_download)


def require_weights(
    setting: Any,
    checkpoint_dir: str | Path | None = None,
    dac_weights: str | Path | None = None,
    *,
    need_dac: bool = True,
    allow_download: bool = True,
) -> tuple[Path, Path | None]:
    """Locate every weight file one run needs -- the visual tokenizer's folder (Cosmos 0.1 or a diffusers
    VAE: :func:`resolve_visual`) and, when ``need_dac``, the DAC file --
    and report *all* missing pieces in one :class:`CheckpointError` (one line, each piece numbered with the
    flag that provides it) instead of failing on the first. Returns ``(cosmos_folder, dac_file or None)``."""
    problems: list[str] = []
    folder: Path | None = None
    dac_file: Path | None = None
    try:
        folder = resolve_visual(setting, checkpoint_dir, allow_download=allow_download)
    except CheckpointError as e:
        problems.append(f"{e} (--checkpoints DIR)" if "--checkpoints" not in str(e) else str(e))
    if need_dac:
        try:
            dac_file = resolve_dac(dac_weights, allow_download=allow_download)
        except CheckpointError as e:
            problems.append(f"{e} (--dac-weights PATH)" if "--dac-weights" not in str(e) else str(e))
    if len(problems) == 1:
        raise CheckpointError(problems[0])
    if problems:
        raise CheckpointError(f"{len(problems)} weight files missing for this run: "
                              + " ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)))
    assert folder is not None
    return folder, dac_file


# ----------------------------------------------------------------------------------------------------
# overview for the app / `avtok settings`
# ----------------------------------------------------------------------------------------------------
#: Approximate sizes (MB = 1e6 bytes) of the published files, as the Hub lists them (61-133 MB): the Cosmos
#: JIT files hold bf16 weights, 2 bytes per parameter; the released DAC file holds 76.7 M fp32 parameters.
#: A file far off these sizes (e.g. a random-weight test stand-in of a few hundred KB) is not the published one.
PUBLISHED_MB: dict[str, float] = {
    "CV4x8x8/encoder.jit": 60.6, "CV4x8x8/decoder.jit": 87.8,
    "CV8x8x8/encoder.jit": 92.6, "CV8x8x8/decoder.jit": 132.4,
    "CV8x16x16/encoder.jit": 91.0, "CV8x16x16/decoder.jit": 130.8,
    "DV4x8x8/encoder.jit": 85.4, "DV4x8x8/decoder.jit": 124.0,
    "DV8x8x8/encoder.jit": 85.8, "DV8x8x8/decoder.jit": 125.4,
    "DV8x16x16/encoder.jit": 91.0, "DV8x16x16/decoder.jit": 130.8,
    "dac": 306.8,
}
#: Relative size difference beyond which a file is reported as "not the published size".
SIZE_TOLERANCE = 0.03


def _human_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def sha256_prefix(path: str | Path, n: int = 12, chunk: int = 1 << 20) -> str:
    """First ``n`` hex digits of the file's SHA-256 (streamed, 1 MiB at a time)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:n]


def describe_weight_file(path: str | Path, key: str) -> str:
    """``"<path>: 91.0 MB, sha256 1a2b3c4d5e6f"`` plus, when the size is off the published file's
    (:data:`PUBLISHED_MB` ``[key]``, e.g. ``"DV8x16x16/encoder.jit"`` or ``"dac"``), a plain warning."""
    p = Path(path)
    size = p.stat().st_size
    text = f"{p}: {_human_size(size)}, sha256 {sha256_prefix(p)}"
    want = PUBLISHED_MB.get(key)
    if want is not None and abs(size / 1e6 - want) > SIZE_TOLERANCE * want:
        text += (f" -- NOT the published file's size (~{want:.1f} MB): a stand-in or another model, "
                 "not the released weights")
    return text


def missing_checkpoints(
    settings: Iterable[Any],
    checkpoint_dir: str | Path | None = None,
    *,
    dac_weights: str | Path | None = None,
    include_dac: bool = True,
) -> dict[str, str]:
    """What cannot be found locally (no download): ``{setting.name: reason}`` and, when ``include_dac``,
    ``{"dac": reason}``. Each reason is one line. Settings that are found are absent from the result."""
    missing: dict[str, str] = {}
    for setting in settings:
        resolve = resolve_diffusers if getattr(setting, "backend", "") == "diffusers" else resolve_cosmos
        try:
            resolve(setting, checkpoint_dir, allow_download=False)
        except CheckpointError as e:
            missing[setting.name] = str(e)
    if include_dac:
        try:
            resolve_dac(dac_weights, allow_download=False)
        except CheckpointError as e:
            missing["dac"] = str(e)
    return missing
