"""The Gradio Blocks app: a thin layer over :mod:`avtok_ui.service` (which wraps the engine).

Layout: source + trim (left) and tokenizer setting + predicted tokens + Run/Sweep/Cancel (right) on top;
below, tabs for the result (players side by side, metrics with their conventions, token readouts,
per-frame plots, downloads), the frame inspector, audio, the comparison of runs, and the API.

Every user-facing failure is one line (:class:`~avtok_ui.errors.AvtokError`); anything unexpected is logged
on the server and shown as a one-line "internal error", never as a stack trace.
"""

from __future__ import annotations

import html
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from . import __version__, plots
from .backends.registry import ALL_BACKEND_SETTINGS, families, parse_setting, settings_of_family
from .errors import AvtokError, Cancelled, one_line
from .readouts import CONVENTIONS as READOUT_CONVENTIONS
from .service import RunRequest, Service, nearest_window, summary_row, valid_windows
from .settings import DAC_CODEBOOKS, DAC_WEIGHTS_NAME, DEFAULT_WINDOW
from .uploads import check_tokens, validator

log = logging.getLogger("avtok_ui.app")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "assets" / "bigbuckbunny.mp4"
EXAMPLE_CREDIT = ("Example: *Big Buck Bunny* (excerpt), © Blender Foundation, "
                  "[CC-BY 3.0](https://creativecommons.org/licenses/by/3.0/) — peach.blender.org")

FAMILIES = families()  # "Cosmos 0.1" first, then the diffusers VAEs in registry order
ORIGINAL = "Original"  # the frame inspector's left side when it shows the source frame
RUN_QUEUE = "avtok-run"  # concurrency id shared by every event that runs models

CSS = """
.gradio-container {max-width: 1680px !important; margin: 0 auto;}
#avtok-title h1 {margin-bottom: 0;}
#avtok-title p {margin-top: 2px; color: var(--body-text-color-subdued);}
#avtok-status {min-height: 2.6em;}
#avtok-status .avtok-error {color: var(--error-text-color, #b91c1c); font-weight: 600;}
#avtok-estimate {font-size: 0.95em;}
.avtok-small {font-size: 0.85em; color: var(--body-text-color-subdued);}
.avtok-warn {border-left: 4px solid #d97706; background: rgba(217, 119, 6, 0.07); padding: 6px 12px !important;
  border-radius: 4px;}
.avtok-ok {color: var(--body-text-color-subdued); font-size: 0.9em;}
footer {display: none !important;}
#avtok-rq .mark-symbol path {stroke-width: 4px;}
.avtok-legend {display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center; font-size: 0.9em;
  padding: 0 4px;}
.avtok-legend-item {display: inline-flex; align-items: center; gap: 6px;}
.avtok-swatch {display: inline-block; width: 11px; height: 11px; border-radius: 50%;}
"""


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------
def _setting_name(family: str | None, setting: str | None) -> str:
    """The setting picked in the page (any backend); the family's first setting when none is picked."""
    if setting:
        return parse_setting(setting).name
    options = settings_of_family(family or "") or list(ALL_BACKEND_SETTINGS)
    return options[0].name


def setting_choices(family: str) -> list[tuple[str, str]]:
    """``(label, name)`` radio choices of one family: the name plus its factors and latent channels."""
    out = []
    for s in settings_of_family(family):
        per = "1 id" if s.discrete else f"{s.latent_channels} ch"
        label = s.name if s.backend != "diffusers" else f"{s.name} ({per})"
        out.append((label, s.name))
    return out


def _link(text: str, url: str) -> str:
    return f"[{text}]({url})"


def backend_markdown(b: dict[str, Any]) -> str:
    """What the page says about one setting (a :meth:`Service.backends` entry): loader, Hub id, factors,
    latent channels, licence name + link, and whether its weights are here."""
    kind = "discrete FSQ ids" if b["discrete"] else f"continuous, {b['latent_channels']} latent channels"
    loader = f"`{b['class']}`" if b["backend"] == "diffusers" else "TorchScript encoder + decoder"
    weights = ("weights found" if b["usable"] else
               f"<span class='avtok-error'>weights missing</span>: put them in `{b['folder']}` "
               f"(from {_link(b['hub_id'], b['hub_url'])})")
    return (f"**{b['name']}** ({html.escape(b['family'])}) — {b['temporal']}×{b['spatial']}×{b['spatial']} "
            f"(time × height × width), {kind}; {loader} from {_link(b['hub_id'], b['hub_url'])}  \n"
            f"Licence: {_link(html.escape(b['licence']), b['licence_url'])} · {weights}")


def backends_table(backends: list[dict[str, Any]]) -> str:
    """Every setting of every backend: factors, channels, weights found or not, licence name + link."""
    rows = ["| family | setting | t×h×w | latent ch | weights | licence |", "|---|---|---|---|---|---|"]
    for b in backends:
        ch = "1 id (DV)" if b["discrete"] else str(b["latent_channels"])
        found = "found" if b["usable"] else f"missing ({_link(b['hub_id'], b['hub_url'])})"
        rows.append(f"| {html.escape(b['family'])} | {b['name']} | {b['temporal']}×{b['spatial']}×{b['spatial']} | "
                    f"{ch} | {found} | {_link(html.escape(b['licence']), b['licence_url'])} |")
    return "\n".join(rows)


def _cap_value(cap: Any) -> int | None:
    if cap in (None, "", "native"):
        return None
    try:
        v = int(float(str(cap).strip().removesuffix("px")))
    except ValueError:
        raise AvtokError(f"resolution cap must be a number of pixels or 'native', got {cap!r}") from None
    return v if v > 0 else None


def _num(v: Any, default: float = 0.0) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def _user_error(err: BaseException) -> str:
    """The one-line message shown for ``err`` (unexpected errors are logged with their traceback)."""
    if isinstance(err, AvtokError):
        return one_line(err)
    if isinstance(err, ValueError):  # bad values in an input that slipped past its checks: the input's fault
        log.warning("bad input: %s", one_line(err))
        return one_line(err)
    log.exception("internal error")
    return f"internal error ({type(err).__name__}: {one_line(err)[:200]}); the app keeps running"


def _status(msg: str, kind: str = "info") -> str:
    if kind == "error":
        return f'<span class="avtok-error">⚠ {html.escape(msg)}</span>'
    return msg


def _fmt_int(v: Any) -> str:
    return f"{int(v):,}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "n/a"


def _fmt(v: Any, nd: int = 2, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    return f"{v:,.{nd}f}{unit}"


def _fmt_bytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "n/a"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:,.2f} {unit}"
    return f"{int(n)} bytes"


def source_markdown(info: dict[str, Any], est_note: str | None = None) -> str:
    a = info.get("audio")
    audio = ("**none** — video tokens only" if not a else
             f"{a['codec']} {a['sample_rate'] / 1000:g} kHz, {a['channels']} ch ({a['layout'] or 'unknown layout'})")
    rot = f", rotation {info['rotation']}°" if info.get("rotation") else ""
    return (
        f"**{html.escape(info['name'])}** — {info['width']}×{info['height']}{rot}, "
        f"{info['fps_float']:.3g} fps, {info['duration_s']:.2f} s ({info['n_frames']:,} frames), "
        f"{info['codec']} {info['pix_fmt']}, {_fmt_bytes(info['file_size'])}  \n"
        f"Audio: {audio}"
    )


def estimate_markdown(est: dict[str, Any]) -> str:
    g = est["latent_grid"]
    ev = est["evaluated"]
    approx = "≈ " if est.get("frames_estimated") else ""
    audio = (f"{_fmt_int(est['audio_tokens'])} audio ({est['audio_codebooks']} codebooks × "
             f"{_fmt_int(est['audio_code_frames'])} code frames)") if est["audio_codebooks"] else (
        est.get("audio_note") or "audio off")
    return (
        f"**Predicted for {est['setting']}:** {approx}**{_fmt_int(est['total_tokens'])} tokens** = "
        f"{_fmt_int(est['visual_tokens'])} visual ({g['t']} × {g['h']} × {g['w']} latent grid) + {audio}.  \n"
        f"{approx}{_fmt(est['tokens_per_second'], 0)} tokens/s · payload {_fmt_bytes(est['payload_bytes'])} · "
        f"{_fmt(est['compression_vs_rgb24'], 0)}× smaller than raw RGB24 · evaluated at "
        f"{ev['width']}×{ev['height']}, {approx}{ev['n_frames']:,} frames, {ev['duration_s']:.2f} s"
    )


def metrics_rows(report: dict[str, Any]) -> list[list[str]]:
    vm = report.get("video_metrics") or {}
    am = report.get("audio_metrics")
    conv = vm.get("conventions", {})
    rows: list[list[str]] = []
    if vm:
        psnr = "∞ (lossless)" if vm.get("lossless") else _fmt(vm.get("psnr"), 2, " dB")
        rows.append(["PSNR", psnr, conv.get("psnr", "")])
        extra = f" ({vm['n_lossless_frames']} lossless frames left out)" if vm.get("n_lossless_frames") else ""
        rows.append(["PSNR, mean of frames", _fmt(vm.get("psnr_mean_per_frame"), 2, " dB") + extra,
                     conv.get("psnr_mean_per_frame", "")])
        rows.append(["SSIM", _fmt(vm.get("ssim"), 4), conv.get("ssim", "")])
        if vm.get("lpips") is not None:
            rows.append(["LPIPS", _fmt(vm.get("lpips"), 4), conv.get("lpips", "")])
        else:
            rows.append(["LPIPS", "n/a", vm.get("lpips_unavailable") or "unavailable"])
    if am:
        ac = am.get("conventions", {})
        rows.append(["Audio SI-SDR", _fmt(am.get("si_sdr_db"), 2, " dB"),
                     (am.get("note") + "; " if am.get("note") else "") + ac.get("si_sdr_db", "")])
        rows.append(["Audio mel distance", _fmt(am.get("mel_distance"), 3), ac.get("mel_distance", "")])
    ev = report.get("evaluated", {})
    src = report.get("source", {})
    resized = f" (resized from {src.get('width')}×{src.get('height')})" if ev.get("resized") else ""
    rows.append(["Evaluated", f"{ev.get('width')}×{ev.get('height')}, {ev.get('n_frames')} frames, "
                 f"{_fmt(ev.get('duration_s'), 2, ' s')}",
                 f"start {ev.get('start_s', 0):g} s{resized}; " + conv.get("scored_on", "")
                 + ("; audio: " + am["scored_on"] if am and am.get("scored_on") else "")])
    return rows


def readout_rows(report: dict[str, Any]) -> list[list[str]]:
    r = report.get("readouts", {})
    g = r.get("latent_grid", {})
    t = report.get("timings_s", {})
    ev, src = report.get("evaluated") or {}, report.get("source") or {}
    part = ""
    if (ev.get("duration_s") or 0) < (src.get("duration_s") or 0) - 1e-3:
        part = (f" (its bytes pro-rated to the {_fmt(ev.get('duration_s'), 2)} s of "
                f"{_fmt(src.get('duration_s'), 2)} s evaluated)")
    rows = [
        ["Visual tokens", f"{_fmt_int(r.get('visual_tokens'))} ({g.get('t')} × {g.get('h')} × {g.get('w')} latent grid, "
                          f"{_fmt_int(r.get('visual_tokens_per_latent_frame'))} per latent frame)"],
        ["Audio tokens", f"{_fmt_int(r.get('audio_tokens'))} ({r.get('audio_codebooks')} codebooks × "
                         f"{_fmt_int(r.get('audio_code_frames'))} code frames)"],
        ["Total tokens", f"{_fmt_int(r.get('total_tokens'))} (audio share {100 * (r.get('audio_share') or 0):.1f} %)"],
        ["Tokens per second", f"{_fmt(r.get('tokens_per_second'), 1)} ({_fmt(r.get('visual_tokens_per_second'), 1)} "
                              f"visual + {_fmt(r.get('audio_tokens_per_second'), 1)} audio)"],
        ["Bytes per visual token", f"{r.get('bytes_per_visual_token')} "
                                   f"({_fmt(r.get('visual_bits_of_information_per_token'), 2)} bits of information)"],
        ["Token file", f"{_fmt_int(r.get('token_file_bytes'))} bytes (payload {_fmt_int(r.get('payload_bytes'))})"],
        ["Bits per source pixel", _fmt(r.get("bits_per_source_pixel"), 5)],
        ["Compression", f"{_fmt(r.get('compression_vs_rgb24'), 0)}× vs raw RGB24"
                        + (f", {_fmt(r.get('compression_vs_source_file'), 2)}× vs the source file" + part
                           if r.get("compression_vs_source_file") else "")],
        ["One hour at this rate", f"{_fmt((r.get('hour_projection') or {}).get('tokens', 0) / 1e6, 2)} M tokens, "
                                  f"{_fmt_bytes((r.get('hour_projection') or {}).get('bytes'))}"],
        ["Run time", f"{_fmt(t.get('total'), 1)} s ({_fmt(t.get('model_calls'), 1)} s in model calls) on "
                     f"{report.get('device')} {report.get('dtype')}"],
    ]
    return rows


def conventions_markdown(report: dict[str, Any], original_note: str) -> str:
    conv = (report.get("video_metrics") or {}).get("conventions", {})
    lines = ["**How to read these numbers**"]
    for key in ("psnr", "ssim", "lpips", "lossless", "scored_on", "resolution", "across_videos"):
        if conv.get(key):
            lines.append(f"- *{key}*: {conv[key]}")
    for key, text in READOUT_CONVENTIONS.items():
        lines.append(f"- *{key.replace('_', ' ')}*: {text}")
    lines.append(f"- *players*: left = {original_note}; right = the reconstruction muxed as H.264 (crf 18) + AAC "
                 "(what you hear and see there went through one more lossy encode than what was scored)")
    return "\n".join(lines)


def per_frame_frames(report: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, str]:
    pf = report.get("per_frame") or {}
    psnr = pf.get("psnr") or []
    n = len(psnr)
    frame = np.arange(n)
    df_p = pd.DataFrame({"frame": frame, "PSNR (dB)": [np.nan if v is None else v for v in psnr]})
    df_s = pd.DataFrame({"frame": frame, "SSIM": pf.get("ssim") or [np.nan] * n})
    lp = pf.get("lpips")
    df_l = pd.DataFrame({"frame": frame, "LPIPS": lp}) if lp else None
    reason = "" if lp else ((report.get("video_metrics") or {}).get("lpips_unavailable") or "LPIPS unavailable")
    return df_p, df_s, df_l, reason


def worst_frame(report: dict[str, Any], metric: str = "psnr") -> int:
    pf = report.get("per_frame") or {}
    vals = pf.get(metric) or []
    if not vals:
        return 0
    if metric == "psnr":
        arr = np.array([np.inf if v is None else v for v in vals], dtype=float)
        return int(np.argmin(arr))
    arr = np.array([np.nan if v is None else v for v in vals], dtype=float)
    return int(np.nanargmin(arr)) if metric == "ssim" else int(np.nanargmax(arr))


def comparison_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["run", "clip", "family", "setting", "latent ch", "values/pixel", "bits/pixel", "PSNR dB", "SSIM",
            "LPIPS", "resolution", "frames", "window", "codebooks", "visual tokens", "audio tokens", "tokens/s",
            "token file bytes", "file bits/pixel", "SI-SDR dB", "mel dist", "time s", "device"]
    return pd.DataFrame(history, columns=cols) if history else pd.DataFrame(columns=cols)


#: one fixed colour per family (the chart's series), the same in every session and after any sweep order
FAMILY_COLORS = dict(zip(FAMILIES, ["#4f46e5", "#ea580c", "#dc2626", "#16a34a", "#9333ea", "#db2777", "#0891b2",
                                    "#db2777", "#525252"], strict=False))



def family_legend() -> str:
    """The chart's title and legend as HTML (Gradio's own bottom legend is clipped by the plot's box): one
    swatch per family, in the fixed colours of :data:`FAMILY_COLORS`."""
    items = "".join(f"<span class='avtok-legend-item'><span class='avtok-swatch' style='background:{c}'></span>"
                    f"{html.escape(f)}</span>" for f, c in FAMILY_COLORS.items())
    return (f"<div class='avtok-legend'><span><b>Rate–quality across runs</b> · one colour per family:</span>"
            f"{items}</div>")


#: axis label -> (comparison-table column, plot column). The plot's data always holds every column, so that
#: changing an axis only changes which columns the chart reads.
RQ_X = {"bits per source pixel": ("bits/pixel", "bits_per_px"),
        "log2 bits per source pixel": ("bits/pixel", "log2_bits_per_px"),  # DV and CV rates differ ~100x
        "latent values per pixel": ("values/pixel", "values_per_px"),
        "tokens per second": ("tokens/s", "tokens_per_s"), "token file bytes": ("token file bytes", "file_bytes")}
RQ_X0 = "bits per source pixel"
RQ_Y = {"PSNR (dB)": ("PSNR dB", "psnr_db"), "SSIM": ("SSIM", "ssim"), "LPIPS": ("LPIPS", "lpips"),
        "audio SI-SDR (dB)": ("SI-SDR dB", "si_sdr_db")}


def rate_quality_frame(history: list[dict[str, Any]], x_label: str, y_label: str) -> tuple[pd.DataFrame, str, str]:
    """Points of the rate-quality chart (one row per run, ``family`` = the series) and the names of its x and
    y columns."""
    xc = RQ_X.get(x_label, RQ_X[RQ_X0])[1]
    yc = RQ_Y.get(y_label, RQ_Y["PSNR (dB)"])[1]
    axes = list(RQ_X.values()) + list(RQ_Y.values())
    rows = []
    for h in history:
        row: dict[str, Any] = {"family": h.get("family") or "Cosmos 0.1", "setting": h.get("setting"),
                               "clip": h.get("clip"), "run": str(h.get("run"))}
        for key, col in axes:
            v = h.get(key)
            num = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
            if col.startswith("log2_"):
                num = math.log2(num) if num > 0 else np.nan
            row[col] = num
        rows.append(row)
    cols = [c for _, c in axes] + ["family", "setting", "clip", "run"]
    return pd.DataFrame(rows, columns=cols), xc, yc


# ----------------------------------------------------------------------------------------------------
# the app
# ----------------------------------------------------------------------------------------------------
def build_app(service: Service | None = None) -> gr.Blocks:
    """Build the Blocks app over ``service`` (a new :class:`Service` from the environment by default)."""
    svc = service or Service()
    devices = svc.devices()

    def availability() -> dict[str, Any]:
        miss = svc.missing(True)
        return {"usable": set(svc.usable_settings()), "audio": svc.audio_available(), "missing": miss}

    def run_hint(setting: str, usable: set[str]) -> str | None:
        """Why Run is disabled for ``setting`` (None when it can run)."""
        if setting in usable:
            return None
        if not usable:
            return "no tokenizer checkpoints found: runs are disabled (see above how to provide them)"
        return (f"{setting}: weights missing, Run is disabled for it (predictions still work; where to get them "
                f"is above); {len(usable)} other setting(s) usable")

    def banner_markdown(av: dict[str, Any]) -> str:
        miss = av["missing"]
        n_all = len(ALL_BACKEND_SETTINGS)
        if not miss:
            return (f"<span class='avtok-ok'>Weights: all {n_all} tokenizer settings ({len(FAMILIES)} families) "
                    "and the DAC codec were found.</span>")
        if svc.config.allow_download:
            return ("Some weights are not on this machine (" + ", ".join(miss) + "); they will be downloaded "
                    "from the Hugging Face Hub on first use (AVTOK_ALLOW_DOWNLOAD=1).")
        opened = "" if av["usable"] else " open"
        root = os.environ.get("AVTOK_CHECKPOINTS") or "(not set)"
        layout = html.escape(
            "$AVTOK_CHECKPOINTS/Cosmos-0.1-Tokenizer-<SETTING>/encoder.jit\n"
            "$AVTOK_CHECKPOINTS/Cosmos-0.1-Tokenizer-<SETTING>/decoder.jit    # SETTING = CV4x8x8 ... DV8x16x16\n"
            "$AVTOK_CHECKPOINTS/<diffusers repo name>/vae/config.json\n"
            "$AVTOK_CHECKPOINTS/<diffusers repo name>/vae/diffusion_pytorch_model.safetensors\n"
            f"$AVTOK_CHECKPOINTS/dac/{DAC_WEIGHTS_NAME}\n\n"
            "# e.g.\n"
            "hf download nvidia/Cosmos-0.1-Tokenizer-DV8x16x16 encoder.jit decoder.jit \\\n"
            "   --local-dir $AVTOK_CHECKPOINTS/Cosmos-0.1-Tokenizer-DV8x16x16\n"
            "hf download Wan-AI/Wan2.1-T2V-1.3B-Diffusers --include 'vae/*' \\\n"
            "   --local-dir $AVTOK_CHECKPOINTS/Wan2.1-T2V-1.3B-Diffusers\n"
            "python -m dac download      # DAC: saves to ~/.cache/descript/dac/")
        by_name = {b["name"]: b for b in svc.backends()}
        missing_settings = [k for k in miss if k in by_name]
        missing_fams = list(dict.fromkeys(by_name[k]["family"] for k in missing_settings))
        audio = "audio on" if av["audio"] else "audio off: DAC weights missing"
        lines = [
            f"**Missing weights:** {len(missing_settings)} of {n_all} tokenizer settings"
            + (f" ({', '.join(html.escape(f) for f in missing_fams)})" if missing_fams else "")
            + (" and the DAC codec" if "dac" in miss else "")
            + f" — runs that need them are disabled ({len(av['usable'])} of {n_all} settings usable; {audio}). "
            "Token predictions work without weights.",
            "",
            f"<details{opened}><summary><b>Where to get them, licences, how to install</b> "
            f"(AVTOK_CHECKPOINTS = {html.escape(root)})</summary><ul>",
        ]
        for k in missing_settings:
            b = by_name[k]
            lines.append(f"<li><b>{html.escape(k)}</b> ({html.escape(b['family'])}): "
                         f"<a href='{b['hub_url']}' target='_blank'>{html.escape(b['hub_id'])}</a> → "
                         f"<code>{html.escape(b['folder'])}/</code>; licence "
                         f"<a href='{b['licence_url']}' target='_blank'>{html.escape(b['licence'])}</a></li>")
        lines.append(
            "</ul><p>Lay the files out like this, then restart the app with <code>AVTOK_CHECKPOINTS</code> set (or "
            "start it with <code>AVTOK_ALLOW_DOWNLOAD=1</code> to fetch them from the Hugging Face Hub on first "
            f"use):</p><pre>{layout}</pre><p>Where each one was looked for:</p><ul>")
        lines += [f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in miss.items()]
        lines.append("</ul></details>")
        return "\n".join(lines)

    av0 = availability()
    cosmos = settings_of_family(FAMILIES[0])
    first = next((s for s in [*reversed(cosmos), *ALL_BACKEND_SETTINGS] if s.name in av0["usable"]),
                 parse_setting("DV8x16x16"))
    can_run0 = first.name in av0["usable"]
    setting0 = first
    backends0 = {b["name"]: b for b in svc.backends()}

    with gr.Blocks(title="avtok — what do video tokens keep?", delete_cache=(1800, 7200)) as demo:
        last_run = gr.State(None)
        history = gr.State([])
        records = gr.State({})  # comparison-table run number (str) -> run record, for the frame inspector

        gr.Markdown(
            "# avtok — what do video tokens keep?\n"
            "Turn a video into visual tokens — NVIDIA **Cosmos** or a diffusers video VAE (Wan, HunyuanVideo, "
            "CogVideoX, LTX-Video, Cosmos 1.0) — + **DAC** audio tokens, rebuild it from the tokens alone, and see "
            "what survived.",
            elem_id="avtok-title",
        )
        banner = gr.Markdown(banner_markdown(av0), elem_id="avtok-banner",
                             elem_classes=["avtok-warn"] if av0["missing"] and not svc.config.allow_download else [])

        with gr.Row(equal_height=False):
            # ---------------------------------------------------------------- source
            with gr.Column(scale=5, min_width=360):
                gr.Markdown("### 1 · Source")
                src_video = gr.Video(label="Video (.mp4)", sources=["upload"], format=None, height=300,
                                     elem_id="avtok-source")
                example_btn = gr.Button("▶ Use the example clip (Big Buck Bunny, 5 s, 1280×720, 5.1 audio)",
                                        size="sm", elem_id="avtok-example")
                src_info = gr.Markdown("Upload an .mp4 or pick the example.", elem_id="avtok-source-info")
                with gr.Row():
                    start_in = gr.Number(label="Trim start (s)", value=0, minimum=0, precision=2,
                                         elem_id="avtok-start")
                    dur_in = gr.Number(label="Duration (s, 0 = to the end)", value=0, minimum=0, precision=2,
                                       elem_id="avtok-duration")
                    cap_in = gr.Number(label="Resolution cap (longest side px, 0 = native)", value=0, minimum=0,
                                       precision=0, step=32, elem_id="avtok-cap")
                limits = svc.config
                gr.Markdown(
                    f"Limits: {limits.max_upload_mb:g} MB upload, "
                    + (f"{limits.max_duration_s:g} s per run, " if limits.max_duration_s else "")
                    + (f"longest side {limits.max_side} px. " if limits.max_side else "")
                    + EXAMPLE_CREDIT,
                    elem_classes=["avtok-small"],
                )
            # ---------------------------------------------------------------- setting
            with gr.Column(scale=5, min_width=360):
                gr.Markdown("### 2 · Tokenizer")
                family_in = gr.Radio(FAMILIES, value=first.family, label="Tokenizer family", elem_id="avtok-family")
                setting_in = gr.Radio(setting_choices(first.family), value=first.name,
                                      label="Setting (compression time × height × width)", elem_id="avtok-setting")
                backend_md = gr.Markdown(backend_markdown(backends0[first.name]), elem_id="avtok-backend",
                                         elem_classes=["avtok-small"])
                with gr.Row():
                    window_in = gr.Dropdown(valid_windows(setting0), value=DEFAULT_WINDOW,
                                            label="Temporal window (frames, 1 + tf·k)", elem_id="avtok-window",
                                            info="each window is tokenized independently (causal restart)")
                    cb_in = gr.Slider(0, DAC_CODEBOOKS, value=DAC_CODEBOOKS if av0["audio"] else 0, step=1,
                                      label="DAC codebooks (0 = audio off)", interactive=av0["audio"],
                                      elem_id="avtok-codebooks",
                                      info=None if av0["audio"] else "DAC weights missing: audio off")
                with gr.Row():
                    device_in = gr.Radio(devices, value=devices[0], label="Device", elem_id="avtok-device")
                    lpips_in = gr.Radio(["auto", "vgg", "alex", "off"], value=svc.config.default_lpips,
                                        label="LPIPS backbone", elem_id="avtok-lpips")
                estimate_md = gr.Markdown("Predicted token count appears here once a video is loaded.",
                                          elem_id="avtok-estimate")
                with gr.Accordion("Sweep: settings to run on the same clip (any families)", open=False,
                                  elem_id="avtok-sweep-box"):
                    sweep_in = gr.CheckboxGroup(
                        [s.name for s in ALL_BACKEND_SETTINGS],
                        value=[s.name for s in ALL_BACKEND_SETTINGS if s.name in av0["usable"]],
                        label="Settings (default: every usable one)", elem_id="avtok-sweep-settings")
                    with gr.Accordion("All tokenizers: weights and licences", open=False):
                        backends_md = gr.Markdown(backends_table(list(backends0.values())),
                                                  elem_id="avtok-backends")
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", interactive=can_run0, elem_id="avtok-run")
                    sweep_btn = gr.Button("Sweep selected settings", interactive=bool(av0["usable"]),
                                          elem_id="avtok-sweep")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="avtok-cancel")
                status = gr.Markdown(_status(run_hint(first.name, av0["usable"]) or "Ready.",
                                             "info" if can_run0 else "error"),
                    elem_id="avtok-status", container=True, padding=True)

        # -------------------------------------------------------------------- results
        with gr.Tabs(elem_id="avtok-tabs"):
            with gr.Tab("Result", id="result"):
                result_md = gr.Markdown("Run a setting to see the original and its reconstruction side by side.",
                                        elem_id="avtok-result-head")
                with gr.Row(equal_height=True):
                    orig_player = gr.Video(label="Original", interactive=False, height=360,
                                           elem_id="avtok-original")
                    recon_player = gr.Video(label="Reconstruction (from tokens only)", interactive=False,
                                            height=360, elem_id="avtok-reconstruction")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=6):
                        metrics_df = gr.Dataframe(headers=["metric", "value", "convention"], label="Metrics",
                                                  interactive=False, wrap=True, elem_id="avtok-metrics", max_height=720,
                                                  column_widths=["20%", "22%", "58%"])
                    with gr.Column(scale=5):
                        readouts_df = gr.Dataframe(headers=["readout", "value"], label="Token readouts",
                                                   interactive=False, wrap=True, elem_id="avtok-readouts", max_height=720,
                                                   column_widths=["32%", "68%"])
                with gr.Accordion("Conventions (what exactly was measured)", open=False):
                    conventions_md = gr.Markdown("")
                with gr.Row():
                    psnr_plot = gr.LinePlot(x="frame", y="PSNR (dB)", label="PSNR per frame", height=220,
                                            elem_id="avtok-psnr-plot")
                    ssim_plot = gr.LinePlot(x="frame", y="SSIM", label="SSIM per frame", height=220)
                    lpips_plot = gr.LinePlot(x="frame", y="LPIPS", label="LPIPS per frame", height=220)
                lpips_note = gr.Markdown("")
                with gr.Row():
                    dl_tokens = gr.DownloadButton("Token file (.safetensors)", interactive=False, size="md",
                                                  elem_id="avtok-dl-tokens")
                    dl_video = gr.DownloadButton("Reconstructed video (.mp4)", interactive=False, size="md",
                                                 elem_id="avtok-dl-video")
                    dl_json = gr.DownloadButton("Metrics (.json)", interactive=False, size="md",
                                                elem_id="avtok-dl-json")
            with gr.Tab("Frame inspector", id="inspector"):
                with gr.Row():
                    left_in = gr.Dropdown([ORIGINAL], value=ORIGINAL, label="Left: the original or any run",
                                          elem_id="avtok-left", scale=1)
                    right_in = gr.Dropdown([], value=None, label="Right: a run (any backend, same clip)",
                                           elem_id="avtok-right", scale=1)
                with gr.Row():
                    frame_in = gr.Slider(0, 1, value=0, step=1, label="Frame", scale=5, elem_id="avtok-frame")
                    with gr.Column(scale=2, min_width=160):
                        worst_psnr_btn = gr.Button("Worst frame by PSNR", size="sm")
                        worst_lpips_btn = gr.Button("Worst frame by LPIPS", size="sm")
                    scale_in = gr.Dropdown([16, 32, 64, 128, 255], value=64, label="Heatmap full scale (grey levels)",
                                           scale=2)
                frame_md = gr.Markdown("After a run, the worst frame (lowest PSNR) is shown here.", elem_id="avtok-frame-info")
                with gr.Row(equal_height=True):
                    wipe = gr.ImageSlider(label="Original ↔ reconstruction (drag the divider; lossless PNG)",
                                          format="png", type="numpy", interactive=False, max_height=560,
                                          elem_id="avtok-wipe")
                    heat = gr.Image(label="|original − reconstruction| (mean over RGB)", format="png",
                                    type="numpy", interactive=False, height=560, elem_id="avtok-heatmap")
            with gr.Tab("Audio", id="audio"):
                audio_md = gr.Markdown("Audio players and spectrograms appear after a run with audio.")
                with gr.Row():
                    orig_audio = gr.Audio(label="Original (DAC input: mono 44.1 kHz)", interactive=False,
                                          type="filepath")
                    recon_audio = gr.Audio(label="Reconstruction (DAC output)", interactive=False, type="filepath")
                with gr.Row():
                    orig_audio_img = gr.Image(label="Original: waveform + spectrogram", interactive=False,
                                              format="png")
                    recon_audio_img = gr.Image(label="Reconstruction: waveform + spectrogram (same dB scale)",
                                               interactive=False, format="png")
            with gr.Tab("Compare runs", id="compare"):
                gr.Markdown("Every run of this session is a row; **Sweep selected settings** fills it with the "
                            "ticked settings (any families) on the same clip. Compare rows of the same clip only. "
                            "*values/pixel* = latent values per source pixel, *bits/pixel* = stored visual-token bits "
                            "per source pixel (bf16 latents: 16 bits per value; DV: 16 bits per id): the rates that "
                            "compare tokenizers with different channel counts. *file bits/pixel* counts the whole "
                            "token file (audio included). The chart has one colour per family.")
                compare_df = gr.Dataframe(comparison_frame([]), label="Runs", interactive=False, wrap=False,
                                          elem_id="avtok-compare", max_height=360)
                with gr.Row():
                    rq_x = gr.Radio(list(RQ_X), value=RQ_X0, label="Rate (x axis)")
                    rq_y = gr.Radio(list(RQ_Y), value="PSNR (dB)", label="Quality (y axis)")
                    clear_btn = gr.Button("Clear table", size="sm")
                rq_df0, rq_xc, rq_yc = rate_quality_frame([], RQ_X0, "PSNR (dB)")
                gr.HTML(family_legend(), elem_id="avtok-rq-legend")
                # no label: Gradio sizes the chart to the whole block, so a label would push the x axis out of it
                rq_plot = gr.ScatterPlot(rq_df0, x=rq_xc, y=rq_yc, color="family", x_title=RQ_X0,
                                         y_title="PSNR (dB)", label="Rate–quality across runs", show_label=False,
                                         height=380, tooltip="all", color_map=FAMILY_COLORS, colors_in_legend=[],
                                         elem_id="avtok-rq")
            with gr.Tab("API", id="api"):
                gr.Markdown(API_DOC)

        # -------------------------------------------------------------------- hidden API components
        with gr.Column(visible=False):
            api_video = gr.File(label="video", file_types=["video", ".mp4", ".mov", ".mkv", ".webm"],
                                type="filepath")
            api_recon = gr.File(label="reconstruction", type="filepath")
            api_tokens_in = gr.File(label="tokens", file_types=[".safetensors"], type="filepath")
            api_setting = gr.Textbox(label="setting", value="DV8x16x16")
            api_settings = gr.Textbox(label="settings", value="")
            api_window = gr.Number(label="window", value=DEFAULT_WINDOW, precision=0)
            api_cb = gr.Number(label="codebooks", value=DAC_CODEBOOKS, precision=0)
            api_device = gr.Textbox(label="device", value="auto")
            api_start = gr.Number(label="start_s", value=0)
            api_dur = gr.Number(label="duration_s", value=0)
            api_side = gr.Number(label="max_side", value=0, precision=0)
            api_lpips = gr.Textbox(label="lpips", value="auto")
            api_json = gr.JSON(label="report")
            api_file_tokens = gr.File(label="tokens")
            api_file_video = gr.File(label="reconstructed_video")
            api_file_metrics = gr.File(label="metrics_json")
            api_btns = [gr.Button(visible=False) for _ in range(7)]

        # ==================================================================== handlers
        def ui_load(family: str, setting: str) -> dict[Any, Any]:
            """Weights may have been added since start: re-check on every page load."""
            av = availability()
            name = _setting_name(family, setting)
            hint = run_hint(name, av["usable"])
            bk = svc.backends()
            return {
                backend_md: backend_markdown(next(b for b in bk if b["name"] == name)),
                backends_md: backends_table(bk),
                sweep_in: gr.CheckboxGroup(value=[s.name for s in ALL_BACKEND_SETTINGS if s.name in av["usable"]]),
                banner: gr.Markdown(banner_markdown(av), elem_classes=["avtok-warn"]
                                    if av["missing"] and not svc.config.allow_download else []),
                cb_in: gr.Slider(value=DAC_CODEBOOKS if av["audio"] else 0, interactive=av["audio"],
                                 info=None if av["audio"] else "DAC weights missing: audio off"),
                run_btn: gr.Button(interactive=hint is None),
                sweep_btn: gr.Button(interactive=bool(av["usable"])),
                status: _status(hint, "error") if hint else "Ready.",
            }

        demo.load(ui_load, [family_in, setting_in],
                  [banner, cb_in, run_btn, sweep_btn, status, backend_md, backends_md, sweep_in],
                  api_visibility="private", show_progress="hidden")

        def ui_estimate(src: str | None, family: str, setting: str, window: Any, cb: Any, start: Any, dur: Any,
                     cap: Any) -> str:
            if not src:
                return "Predicted token count appears here once a video is loaded."
            try:
                est = svc.estimate(src, _setting_name(family, setting), int(_num(window, DEFAULT_WINDOW)),
                                   int(_num(cb)), _num(start), _num(dur) or None, _cap_value(cap))
            except Exception as err:  # noqa: BLE001 -- shown, never raised
                return _status(_user_error(err), "error")
            return estimate_markdown(est)

        est_inputs = [src_video, family_in, setting_in, window_in, cb_in, start_in, dur_in, cap_in]

        def ui_source(src: str | None, family: str, setting: str, window: Any, cb: Any, start: Any, dur: Any,
                      cap: Any) -> tuple[str, str, str]:
            if not src:
                return "Upload an .mp4 or pick the example.", ui_estimate(None, family, setting, window, cb, start, dur,
                                                                          cap), "Ready."
            try:
                info = svc.probe(src)
            except Exception as err:  # noqa: BLE001
                msg = _user_error(err)
                return _status(msg, "error"), "", _status(msg, "error")
            note = "Ready." if info.audio is not None else "Ready — this video has no audio track: video tokens only."
            hint = run_hint(_setting_name(family, setting), set(svc.usable_settings()))
            if hint:
                note = _status(hint, "error")
            return (source_markdown(info.to_dict()), ui_estimate(src, family, setting, window, cb, start, dur, cap), note)

        src_video.change(ui_source, est_inputs, [src_info, estimate_md, status], api_visibility="private",
                         show_progress="minimal")
        example_btn.click(lambda: str(EXAMPLE), None, src_video, api_visibility="private")

        def ui_family(family: str, setting: str | None) -> Any:
            """A new family: its settings; keep the current one if it belongs, else its first usable one."""
            options = settings_of_family(family)
            if any(s.name == setting for s in options):
                return gr.skip()
            usable = set(svc.usable_settings())
            pick = next((s for s in options if s.name in usable), options[0] if options else None)
            return gr.Radio(choices=setting_choices(family), value=pick.name if pick else None)

        def ui_setting(setting: str | None, window: Any, current: str | None) -> tuple[Any, Any, Any, Any]:
            if not setting:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            vs = parse_setting(setting)
            w = nearest_window(vs, int(_num(window, DEFAULT_WINDOW)))
            hint = run_hint(vs.name, set(svc.usable_settings()))
            if hint:
                new_status = _status(hint, "error")
            else:
                new_status = "Ready." if "Run is disabled" in (current or "") else gr.skip()
            info = next(b for b in svc.backends() if b["name"] == vs.name)
            return (gr.Dropdown(choices=valid_windows(vs), value=w), gr.Button(interactive=hint is None), new_status,
                    backend_markdown(info))

        family_in.change(ui_family, [family_in, setting_in], setting_in, api_visibility="private",
                         show_progress="hidden")
        setting_in.change(ui_setting, [setting_in, window_in, status], [window_in, run_btn, status, backend_md],
                          api_visibility="private", show_progress="hidden")
        for comp in (window_in, cb_in, start_in, dur_in, cap_in, setting_in):
            comp.change(ui_estimate, est_inputs, estimate_md, api_visibility="private", show_progress="hidden",
                        trigger_mode="always_last")

        # ---------------- run / sweep -------------------------------------------------------------
        def request_from(src: str | None, family: str, setting: str, window: Any, cb: Any, device: str, start: Any,
                         dur: Any, cap: Any, lp: str) -> RunRequest:
            if not src:
                raise AvtokError("no video: upload an .mp4 or pick the example")
            return RunRequest(source=src, setting=_setting_name(family, setting), window=int(_num(window, DEFAULT_WINDOW)),
                              codebooks=int(_num(cb)), device=device, start_s=_num(start),
                              duration_s=_num(dur) or None, max_side=_cap_value(cap), lpips=lp or "auto")

        def frame_view(record: dict[str, Any], index: int, vmax: float,
                       left: dict[str, Any] | None = None) -> tuple[Any, Any, str]:
            """Frame ``index``: the original (or ``left``'s reconstruction) beside ``record``'s reconstruction."""
            rep = record["report"]
            if left is None:
                a, b, note = svc.frame_pair(record, index)
                names = ("original", rep.get("setting"))
            else:
                a, b, note = svc.run_frames(left, record, index)
                names = (left["report"].get("setting"), rep.get("setting"))
            st = plots.frame_error_stats(a, b)
            bits = [f"**Frame {index}** of {len((rep.get('per_frame') or {}).get('psnr') or [])}"]
            fps = (rep.get("source") or {}).get("fps_float")
            if fps:
                bits.append(f"t ≈ {(rep.get('evaluated', {}).get('start_s') or 0) + index / fps:.2f} s")
            for rec in ([left] if left is not None else []) + [record]:
                pf = rec["report"].get("per_frame") or {}
                vals = []
                for key, label, nd in (("psnr", "PSNR", 2), ("ssim", "SSIM", 4), ("lpips", "LPIPS", 4)):
                    v = (pf.get(key) or [])[index] if index < len(pf.get(key) or []) else "n/a"
                    if v != "n/a":
                        vals.append(f"{label} {'∞' if v is None else _fmt(v, nd)}")
                who = f"{rec['report'].get('setting')}: " if left is not None else ""
                bits.append(who + ", ".join(vals))
            between = "between the two" if left is not None else ""
            bits.append(f"mean |error| {between} {st['mean_abs']:.1f}, max {st['max_abs']:.0f} grey levels".replace("  ", " "))
            worst = worst_frame(rep)
            text = " · ".join(bits) + f"  \n<span class='avtok-small'>Worst frame of {rep.get('setting')} by PSNR: " \
                   f"{worst}. Original = source frame after trim/resize; {note}.</span>"
            heat_img = plots.error_heatmap(a, b, float(vmax))
            return (gr.ImageSlider(value=(a, b), label=f"{names[0]} ↔ {names[1]} (drag the divider; lossless PNG)"),
                    gr.Image(value=heat_img, label=f"|{names[0]} − {names[1]}| (mean over RGB)"), text)

        def run_choices(recs: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
            return [(f"#{k} {r['report'].get('setting')} · {r.get('source_name')}", k) for k, r in recs.items()]

        def result_updates(record: dict[str, Any], hist: list[dict[str, Any]], vmax: float,
                           recs: dict[str, dict[str, Any]]) -> dict[Any, Any]:
            rep = record["report"]
            key = str(hist[-1]["run"])
            recs = {**recs, key: record}
            choices = run_choices(recs)
            paths = record["paths"]
            df_p, df_s, df_l, lp_reason = per_frame_frames(rep)
            vm = rep.get("video_metrics") or {}
            r = rep.get("readouts", {})
            n = int((rep.get("evaluated") or {}).get("n_frames") or len(df_p))
            worst = worst_frame(rep)
            notes = "".join(f"  \n*{html.escape(x)}*" for x in record.get("notes", []))
            head = (f"**{rep.get('setting')}** on **{html.escape(record['source_name'])}** — "
                    f"{_fmt_int(r.get('total_tokens'))} tokens ({_fmt_bytes(r.get('token_file_bytes'))}), "
                    f"PSNR {'∞' if vm.get('lossless') else _fmt(vm.get('psnr'), 2, ' dB')}, "
                    f"SSIM {_fmt(vm.get('ssim'), 4)}, LPIPS {_fmt(vm.get('lpips'), 4)} · "
                    f"{_fmt(record.get('elapsed_s'), 1)} s{notes}")
            out: dict[Any, Any] = {
                last_run: record,
                records: recs,
                left_in: gr.Dropdown(choices=[ORIGINAL, *choices], value=ORIGINAL),
                right_in: gr.Dropdown(choices=choices, value=key),
                result_md: head,
                orig_player: gr.Video(value=record["original_video"],
                                      label=f"Original — {record['original_note']}"),
                recon_player: gr.Video(value=paths["video"],
                                       label=f"Reconstruction — {rep.get('setting')} tokens → decoder → H.264 + AAC"),
                metrics_df: pd.DataFrame(metrics_rows(rep), columns=["metric", "value", "convention"]),
                readouts_df: pd.DataFrame(readout_rows(rep), columns=["readout", "value"]),
                conventions_md: conventions_markdown(rep, record["original_note"]),
                psnr_plot: df_p,
                ssim_plot: df_s,
                lpips_plot: gr.LinePlot(value=df_l, visible=True) if df_l is not None else gr.LinePlot(visible=False),
                lpips_note: "" if df_l is not None else f"<span class='avtok-small'>LPIPS per frame: n/a — "
                                                         f"{html.escape(lp_reason)}</span>",
                dl_tokens: gr.DownloadButton(value=paths["tokens"], interactive=True),
                dl_video: gr.DownloadButton(value=paths["video"], interactive=True),
                dl_json: gr.DownloadButton(value=paths.get("metrics_json"), interactive=bool(paths.get("metrics_json"))),
                frame_in: gr.Slider(minimum=0, maximum=max(1, n - 1), value=worst, step=1,
                                    label=f"Frame (0 – {n - 1}; worst by PSNR = {worst})"),
                compare_df: comparison_frame(hist),
                history: hist,
            }
            try:
                out[wipe], out[heat], out[frame_md] = frame_view(record, worst, vmax)
            except Exception as err:  # noqa: BLE001
                out[frame_md] = _status(_user_error(err), "error")
            am = rep.get("audio_metrics")
            if paths.get("audio_wav"):
                o_img, r_img = plots.audio_panels(paths.get("extracted_wav"), paths.get("audio_wav"))
                out.update({
                    orig_audio: paths.get("extracted_wav"), recon_audio: paths["audio_wav"],
                    orig_audio_img: o_img, recon_audio_img: r_img,
                    audio_md: (f"**Audio** ({r.get('audio_codebooks')} DAC codebooks, "
                               f"{_fmt_int(r.get('audio_tokens'))} tokens): SI-SDR {_fmt((am or {}).get('si_sdr_db'), 2, ' dB')}, "
                               f"mel distance {_fmt((am or {}).get('mel_distance'), 3)} — scored on "
                               f"{(am or {}).get('scored_on', 'DAC input vs DAC output')}. Players play the WAVs "
                               "(before AAC)."),
                })
            else:
                why = ("the source has no audio track" if not record["info"].get("audio")
                       else "audio was off (0 codebooks)")
                out.update({orig_audio: None, recon_audio: None, orig_audio_img: None, recon_audio_img: None,
                            audio_md: f"No audio tokens in this run: {why}."})
            return out

        result_outputs = [result_md, status, last_run, records, left_in, right_in, history, orig_player, recon_player, metrics_df, readouts_df,
                          conventions_md, psnr_plot, ssim_plot, lpips_plot, lpips_note, dl_tokens, dl_video, dl_json, frame_in,
                          wipe, heat, frame_md, orig_audio, recon_audio, orig_audio_img, recon_audio_img, audio_md,
                          compare_df, rq_plot]

        def progress_fn(progress: gr.Progress) -> Callable[[float, str], None]:
            return lambda frac, desc: progress(min(1.0, max(0.0, frac)), desc=desc)

        def ui_run(src, family, setting, window, cb, device, start, dur, cap, lp, hist, vmax, x_lab, y_lab, recs,
                   sweep_sel, request: gr.Request, progress=gr.Progress()):  # noqa: B008 -- Gradio's injection idiom
            session = getattr(request, "session_hash", None) or "anon"
            cancel = svc.cancel_event(session)
            try:
                req = request_from(src, family, setting, window, cb, device, start, dur, cap, lp)
                outcome = svc.run(req, progress=progress_fn(progress), cancel=cancel)
                record = outcome.record()
                hist = list(hist or []) + [summary_row(record) | {"run": len(hist or []) + 1}]
                out = result_updates(record, hist, vmax, recs or {})
                out[rq_plot] = ui_rq_update(hist, x_lab, y_lab)
                out[status] = f"Done: {record['report'].get('setting')} in {record['elapsed_s']:.1f} s."
                return out
            except Cancelled:
                return {status: _status("Cancelled: nothing was kept from that run.", "error")}
            except Exception as err:  # noqa: BLE001
                msg = _user_error(err)
                gr.Warning(msg)
                return {status: _status(msg, "error")}
            finally:
                svc.release_cancel(session, cancel)

        def ui_sweep(src, family, setting, window, cb, device, start, dur, cap, lp, hist, vmax, x_lab, y_lab, recs,
                     sweep_sel, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            session = getattr(request, "session_hash", None) or "anon"
            cancel = svc.cancel_event(session)
            hist = list(hist or [])
            recs = dict(recs or {})
            done = 0
            try:
                req = request_from(src, family, setting, window, cb, device, start, dur, cap, lp)
                picked = set(sweep_sel or [])
                names = [s.name for s in ALL_BACKEND_SETTINGS if s.name in picked]  # registry order
                if not names:
                    raise AvtokError("no settings selected to sweep: tick at least one under 'Sweep'")
                usable = set(svc.usable_settings())
                absent = [n for n in names if n not in usable]
                if absent:
                    raise AvtokError(f"weights missing for {', '.join(absent)}: untick them or provide the weights "
                                     "(where to get them is at the top of the page)")
                for outcome in svc.sweep(req, names, progress=progress_fn(progress), cancel=cancel):
                    done += 1
                    record = outcome.record()
                    hist = hist + [summary_row(record) | {"run": len(hist) + 1}]
                    out = result_updates(record, hist, vmax, recs)
                    recs = out[records]
                    out[rq_plot] = ui_rq_update(hist, x_lab, y_lab)
                    out[status] = (f"Sweep: {done}/{len(names)} done ({record['report'].get('setting')})"
                                   + (" — finished." if done == len(names) else " …"))
                    yield out
            except Cancelled:
                yield {status: _status(f"Sweep cancelled after {done} setting(s).", "error")}
            except Exception as err:  # noqa: BLE001
                msg = _user_error(err)
                gr.Warning(msg)
                yield {status: _status(f"Sweep stopped after {done} setting(s): {msg}", "error")}
            finally:
                svc.release_cancel(session, cancel)

        run_inputs = [src_video, family_in, setting_in, window_in, cb_in, device_in, start_in, dur_in, cap_in, lpips_in,
                      history, scale_in, rq_x, rq_y, records, sweep_in]
        source_ok = validator(len(run_inputs), {0: svc.probe})  # an unreadable upload never joins the queue
        run_evt = run_btn.click(ui_run, run_inputs, result_outputs, api_visibility="private", scroll_to_output=True,
                                concurrency_id=RUN_QUEUE, concurrency_limit=svc.config.concurrent_runs,
                                show_progress="full", show_progress_on=[status], validator=source_ok)
        sweep_evt = sweep_btn.click(ui_sweep, run_inputs, result_outputs, api_visibility="private",
                                    concurrency_id=RUN_QUEUE, concurrency_limit=svc.config.concurrent_runs,
                                    show_progress="full", show_progress_on=[status], validator=source_ok)

        def ui_cancel(request: gr.Request) -> str:
            session = getattr(request, "session_hash", None) or "anon"
            running = svc.cancel(session)
            return _status("Cancelled." if running else "Nothing to cancel.", "error" if running else "info")

        cancel_btn.click(ui_cancel, None, status, api_visibility="private", concurrency_limit=None, queue=False,
                         cancels=[run_evt, sweep_evt])

        # ---------------- inspector ----------------------------------------------------------------
        def ui_inspect(recs: dict[str, Any] | None, left: str | None, right: str | None, index: Any,
                       vmax: Any) -> tuple[Any, Any, Any]:
            recs = recs or {}
            record = recs.get(str(right)) if right else None
            if not record:
                return gr.skip(), gr.skip(), "Run a setting first."
            other = recs.get(str(left)) if left and left != ORIGINAL else None
            try:
                return frame_view(record, int(_num(index)), float(_num(vmax, 64)), other)
            except Exception as err:  # noqa: BLE001
                return gr.skip(), gr.skip(), _status(_user_error(err), "error")

        def jump_worst(recs: dict[str, Any] | None, right: str | None, metric: str) -> Any:
            record = (recs or {}).get(str(right)) if right else None
            if not record:
                return gr.skip()
            rep = record["report"]
            if metric == "lpips" and not (rep.get("per_frame") or {}).get("lpips"):
                gr.Info("LPIPS was not measured in this run")
                return gr.skip()
            return worst_frame(rep, metric)

        insp = dict(api_visibility="private", concurrency_limit=4, trigger_mode="always_last")
        insp_in = [records, left_in, right_in, frame_in, scale_in]
        insp_out = [wipe, heat, frame_md]
        frame_in.release(ui_inspect, insp_in, insp_out, **insp)
        scale_in.change(ui_inspect, insp_in, insp_out, **insp)
        left_in.input(ui_inspect, insp_in, insp_out, **insp)
        def ui_right(recs: dict[str, Any] | None, right: str | None, index: Any) -> Any:
            """Another run on the right: the frame slider spans its frames (the frame kept when it exists)."""
            record = (recs or {}).get(str(right)) if right else None
            if not record:
                return gr.skip()
            rep = record["report"]
            n = int((rep.get("evaluated") or {}).get("n_frames") or 1)
            worst = worst_frame(rep)
            i = int(_num(index))
            return gr.Slider(minimum=0, maximum=max(1, n - 1), value=i if 0 <= i < n else worst,
                             label=f"Frame (0 – {n - 1}; worst by PSNR = {worst})")

        right_in.input(ui_right, [records, right_in, frame_in], frame_in, api_visibility="private").then(
            ui_inspect, insp_in, insp_out, **insp)
        worst_psnr_btn.click(lambda recs, r: jump_worst(recs, r, "psnr"), [records, right_in], frame_in,
                             api_visibility="private").then(ui_inspect, insp_in, insp_out, **insp)
        worst_lpips_btn.click(lambda recs, r: jump_worst(recs, r, "lpips"), [records, right_in], frame_in,
                              api_visibility="private").then(ui_inspect, insp_in, insp_out, **insp)

        # ---------------- comparison ---------------------------------------------------------------
        def ui_rq_update(hist: list[dict[str, Any]], x_lab: str, y_lab: str) -> Any:
            df, xc, yc = rate_quality_frame(hist or [], x_lab, y_lab)
            return gr.ScatterPlot(value=df, x=xc, y=yc, color="family", x_title=x_lab, y_title=y_lab,
                                  color_map=FAMILY_COLORS, colors_in_legend=[])

        rq_x.change(ui_rq_update, [history, rq_x, rq_y], rq_plot, api_visibility="private")
        rq_y.change(ui_rq_update, [history, rq_x, rq_y], rq_plot, api_visibility="private")
        clear_btn.click(lambda x, y: ([], {}, comparison_frame([]), ui_rq_update([], x, y),
                                      gr.Dropdown(choices=[ORIGINAL], value=ORIGINAL), gr.Dropdown(choices=[], value=None)),
                        [rq_x, rq_y], [history, records, compare_df, rq_plot, left_in, right_in],
                        api_visibility="private")

        # ---------------- API endpoints ------------------------------------------------------------
        _register_api(svc, api_btns, api_video, api_recon, api_tokens_in, api_setting, api_settings, api_window,
                      api_cb, api_device, api_start, api_dur, api_side, api_lpips, api_json, api_file_tokens,
                      api_file_video, api_file_metrics)

    demo.avtok_service = svc  # type: ignore[attr-defined]
    return demo


# ----------------------------------------------------------------------------------------------------
# API
# ----------------------------------------------------------------------------------------------------
API_DOC = """
### Programmatic access (`gradio_client`)

| endpoint | inputs | outputs |
|---|---|---|
| `/info` | — | JSON: settings and families of every backend (with licence name + link, usable or where to get it), which checkpoints are missing, devices, limits, model cache |
| `/probe` | `video` (file) | JSON: size, fps, duration, frames, audio format |
| `/estimate` | `video`, `setting`, `window`, `codebooks`, `start_s`, `duration_s`, `max_side` | JSON: predicted token counts |
| `/tokenize` | `video`, `setting`, `window`, `codebooks`, `device`, `start_s`, `duration_s`, `max_side`, `lpips` | token file, reconstructed mp4, metrics JSON file, report JSON |
| `/sweep` | `video`, `settings` (comma list of any backends' names, any case; empty = all usable), `window`, `codebooks`, `device`, `start_s`, `duration_s`, `max_side`, `lpips` | JSON: one comparison row + report per setting |
| `/compare` | `original`, `reconstruction` (files), `lpips` | JSON: PSNR/SSIM/LPIPS (+ audio) of any pair |
| `/reconstruct` | `tokens` (.safetensors) | reconstructed mp4 from the tokens alone |

```python
from gradio_client import Client, handle_file
c = Client("http://127.0.0.1:7860/")
tokens, video, metrics, report = c.predict(handle_file("clip.mp4"), "DV8x16x16", 17, 9, "auto", 0, 2, 640, "vgg",
                                           api_name="/tokenize")
print(report["video_metrics"]["psnr"], report["readouts"]["total_tokens"])
```
`duration_s` / `max_side` = 0 mean "to the end" / "native". Errors come back as one line (`gradio_client`
raises `AppError` with it; an unreadable upload is refused before the queue with `ValidationError`). See `docs/SPACE.md` for the full reference.
"""


def public_json(obj: Any) -> Any:
    """JSON for API clients: no server paths (a ``path`` key becomes ``file`` = the base name; gradio_client
    would otherwise take any dict with a ``path`` for a file to download) and no non-finite floats."""
    from .metrics import json_safe

    def walk(o: Any) -> Any:
        if isinstance(o, dict):
            out = {k: walk(v) for k, v in o.items() if k != "path"}
            if "path" in o:
                out["file"] = Path(o["path"]).name if o["path"] else None
            return out
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    clean = walk(json_safe(obj))
    if isinstance(clean, dict) and isinstance(clean.get("outputs"), dict):
        clean["outputs"] = {k: Path(v).name for k, v in clean["outputs"].items() if isinstance(v, str)}
    if isinstance(clean, dict) and isinstance(clean.get("config"), dict):
        for k in ("checkpoint_dir", "dac_weights"):
            if clean["config"].get(k):
                clean["config"][k] = "(server side)"
    return clean


def _api_error(err: BaseException) -> gr.Error:
    return gr.Error(html.escape(_user_error(err)), print_exception=False)


def _register_api(svc: Service, btns: list[gr.Button], video: gr.File, recon: gr.File, tokens_in: gr.File,
                  setting: gr.Textbox, settings: gr.Textbox, window: gr.Number, cb: gr.Number, device: gr.Textbox,
                  start: gr.Number, dur: gr.Number, side: gr.Number, lpips: gr.Textbox, js: gr.JSON,
                  f_tokens: gr.File, f_video: gr.File, f_metrics: gr.File) -> None:
    def info() -> dict[str, Any]:
        """Settings, missing checkpoints, devices, limits and the model cache."""
        return public_json(svc.info())

    def probe(video: str) -> dict[str, Any]:
        """Facts about a video (size, fps, duration, frames, audio), after the app's limits are checked."""
        try:
            return public_json(svc.probe(video).to_dict())
        except Exception as err:  # noqa: BLE001
            raise _api_error(err) from None

    def estimate(video: str, setting: str, window: float, codebooks: float, start_s: float, duration_s: float,
                 max_side: float) -> dict[str, Any]:
        """Predicted token counts for a setting on this video (closed form; nothing is run)."""
        try:
            return public_json(svc.estimate(video, setting, int(_num(window, DEFAULT_WINDOW)), int(_num(codebooks)),
                                          _num(start_s), _num(duration_s) or None, int(_num(max_side)) or None))
        except Exception as err:  # noqa: BLE001
            raise _api_error(err) from None

    def tokenize(video: str, setting: str, window: float, codebooks: float, device: str, start_s: float,
                 duration_s: float, max_side: float, lpips: str, request: gr.Request,
                 progress=gr.Progress()):  # noqa: B008
        """Tokenize, reconstruct and score one clip. Returns the token file, the reconstructed mp4, the metrics
        JSON file and the report."""
        session = getattr(request, "session_hash", None) or "api"
        cancel = svc.cancel_event(session)
        try:
            req = RunRequest(source=video, setting=setting or "DV8x16x16", window=int(_num(window, DEFAULT_WINDOW)),
                             codebooks=int(_num(codebooks, DAC_CODEBOOKS)), device=device or None,
                             start_s=_num(start_s), duration_s=_num(duration_s) or None,
                             max_side=int(_num(max_side)) or None, lpips=lpips or "auto")
            out = svc.run(req, progress=lambda f, d: progress(f, desc=d), cancel=cancel)
        except Exception as err:  # noqa: BLE001
            raise _api_error(err) from None
        finally:
            svc.release_cancel(session, cancel)
        rec = out.record()
        return out.paths["tokens"], out.paths["video"], out.paths.get("metrics_json"), public_json(rec["report"])

    def sweep(video: str, settings: str, window: float, codebooks: float, device: str, start_s: float,
              duration_s: float, max_side: float, lpips: str, request: gr.Request,
              progress=gr.Progress()):  # noqa: B008
        """Run several settings (comma-separated; empty = all usable) on the same clip."""
        session = getattr(request, "session_hash", None) or "api"
        cancel = svc.cancel_event(session)
        try:
            names = [parse_setting(s).name for s in (settings or "").split(",") if s.strip()] or None
            req = RunRequest(source=video, setting=(names or ["DV8x16x16"])[0],
                             window=int(_num(window, DEFAULT_WINDOW)), codebooks=int(_num(codebooks, DAC_CODEBOOKS)),
                             device=device or None, start_s=_num(start_s), duration_s=_num(duration_s) or None,
                             max_side=int(_num(max_side)) or None, lpips=lpips or "auto")
            runs = []
            for o in svc.sweep(req, names, progress=lambda f, d: progress(f, desc=d), cancel=cancel):
                rec = o.record()
                runs.append({"row": summary_row(rec), "report": public_json(rec["report"])})
        except Exception as err:  # noqa: BLE001
            raise _api_error(err) from None
        finally:
            svc.release_cancel(session, cancel)
        return {"rows": [r["row"] for r in runs], "runs": runs}

    def compare(original: str, reconstruction: str, lpips: str) -> dict[str, Any]:
        """Score any reconstruction against its original (same frame count and size)."""
        from .compare import compare_videos

        try:
            svc.probe(original)
            svc.probe(reconstruction)
            rep = compare_videos(original, reconstruction, lpips=str(lpips or "auto").strip().lower(),
                                 allow_download=svc.config.allow_download)
        except Exception as err:  # noqa: BLE001
            raise _api_error(err) from None
        return public_json(rep)

    def reconstruct(tokens: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """Rebuild the video (and audio) from a token file alone."""
        from .pipeline import reconstruct as engine_reconstruct
        from .service import normalize_device
        from .tokens import load_tokens

        try:
            tf = load_tokens(tokens, visual=False)
            has_audio = tf.audio_codes is not None and tf.meta.audio is not None
            models = svc.models_for(tf.setting, normalize_device(None), has_audio)
            run_dir = svc.runs.new(f"reconstruct-{tf.setting.name}")
            try:
                res = engine_reconstruct(tokens, run_dir, Path(tokens).name.removesuffix(".safetensors") or "tokens",
                                         models=models, progress=lambda s, d, t: progress(d / t if t else 0, desc=s))
            except BaseException:
                svc.runs.discard(run_dir)
                raise
            svc.runs.finish(run_dir)
        except Exception as err:  # noqa: BLE001
            if isinstance(err, ValueError) and not isinstance(err, AvtokError):  # bad values: name the file
                err = AvtokError(f"{Path(str(tokens)).name}: {one_line(err)}")
            raise _api_error(err) from None
        return str(res.video)

    run = dict(concurrency_id=RUN_QUEUE, concurrency_limit=svc.config.concurrent_runs)
    btns[0].click(info, None, js, api_name="info", concurrency_limit=None)
    btns[1].click(probe, video, js, api_name="probe", concurrency_limit=None)
    btns[2].click(estimate, [video, setting, window, cb, start, dur, side], js, api_name="estimate",
                  concurrency_limit=None)
    # uploads are checked before they join the run queue (a bad file is refused whatever the queue holds)
    btns[3].click(tokenize, [video, setting, window, cb, device, start, dur, side, lpips],
                  [f_tokens, f_video, f_metrics, js], api_name="tokenize", validator=validator(9, {0: svc.probe}),
                  **run)
    btns[4].click(sweep, [video, settings, window, cb, device, start, dur, side, lpips], js, api_name="sweep",
                  validator=validator(9, {0: svc.probe}), **run)
    btns[5].click(compare, [video, recon, lpips], js, api_name="compare",
                  validator=validator(3, {0: svc.probe, 1: svc.probe}), **run)
    btns[6].click(reconstruct, tokens_in, f_video, api_name="reconstruct", validator=validator(1, {0: check_tokens}),
                  **run)


def launch_kwargs(service: Service) -> dict[str, Any]:
    """Arguments for ``Blocks.launch`` that belong to the app (theme, css, limits, allowed paths)."""
    return {
        "max_file_size": f"{int(service.config.max_upload_mb)}mb" if service.config.max_upload_mb > 0 else None,
        "allowed_paths": [str(EXAMPLE.parent), str(service.runs.root)],
        "theme": gr.themes.Soft(primary_hue="indigo"),
        "css": CSS,
        "footer_links": ["api"],
    }


__all__ = ["build_app", "launch_kwargs", "EXAMPLE", "API_DOC", "__version__"]
