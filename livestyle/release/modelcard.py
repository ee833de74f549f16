"""Model card per style, as JSON (for tools) and Markdown (for people).

Follows the sections of Mitchell et al. 2019, "Model Cards for Model Reporting":
model details, intended use, training data, metrics, limitations, plus the
painting's credit and license, which a style filter owes to its painter.

Every stage JSON may lack keys (an older stage, a skipped runtime): the card renders
what is present and says "not recorded" for the rest; it never raises on a missing
optional key. Known shapes get tables; anything else is shown as flattened
key/value rows so a new field is never silently dropped. Figures from the cost model
and device profiles are labelled "estimate" everywhere they appear: they are not
measurements on a phone.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from livestyle import markdown
from livestyle.release.artifacts import StyleArtifacts

NOT_RECORDED = "not recorded"
# a key path mentioning one of these holds a modelled figure, not a measured one
_ESTIMATE_RE = re.compile(r"estimat|profile|device|cost|a1\d|ane\b|neural.?engine", re.I)

INTENDED_USE = (
    "Real-time artistic stylisation of camera video and photos on phones (Core ML on "
    "iOS 16+, neuralnetwork .mlmodel on iOS 14+, TFLite, ONNX elsewhere), for creative "
    "and entertainment use."
)
LIMITATIONS = [
    "One fixed input size per model (Core ML cannot combine flexible shapes with the "
    "built-in resize); other sizes need a re-export.",
    "Feed-forward style transfer: frames are stylised independently, so video can "
    "flicker; see the preview flicker figure.",
    "Trained on natural photos; faces, text and very dark or saturated scenes may "
    "come out distorted.",
    "Core ML runs in fp16 on the GPU and Neural Engine; verify PSNR is measured off "
    "device, on Linux, with livestyle's own evaluation of the Core ML program.",
    "Device timings marked 'estimate' come from a cost model calibrated on one "
    "published figure, not from measurements on the device.",
    "Not for identifying people or for any decision about them; outputs are "
    "artistic, not faithful.",
]
FORMAT_NOTES = {
    "mlpackage": "Core ML mlprogram (iOS 16+, fp16): image input 'image' at model size, "
    "image output 'stylized' at display size (bilinear upscale inside the model)",
    "mlmodel": "Core ML neuralnetwork (iOS 14+): same inputs and outputs as the mlpackage",
    "tflite": "TFLite: input NHWC float32 RGB 0..255 (1,H,W,3), output the same at model size",
    "onnx": "ONNX: input NHWC float32 RGB 0..255 (1,H,W,3), output the same at model size",
}


# ---------------------------------------------------------------- helpers


def _get(d: Any, *keys, default=None):
    """d[k1][k2]... or default when any level is missing or not a mapping."""
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return default
        d = d[k]
    return d


def flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as sorted (dotted.key, leaf) rows; lists of scalars stay whole."""
    if isinstance(d, Mapping):
        rows = []
        for k in sorted(d, key=str):
            rows += flatten(d[k], f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(d, list) and d and all(isinstance(v, Mapping) for v in d):
        rows = []
        for i, v in enumerate(d):
            rows += flatten(v, f"{prefix}[{i}]")
        return rows
    return [(prefix, d)]


def fmt(v: Any) -> str:
    """A value for a table cell: 3 significant decimals for floats, '-' for None."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.4e}"
    if isinstance(v, int) and abs(v) >= 10000:
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        # per-run timing lists would swamp a table: show the first few and the count
        shown = ", ".join(fmt(x) for x in v[:4])
        return (shown + f", ... ({len(v)} values)" if len(v) > 6 else ", ".join(fmt(x) for x in v)) if v else "-"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return markdown.table(header, [[fmt(c) for c in row] for row in rows]) + "\n"


def _bytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


# ---------------------------------------------------------------- extraction


def psnr_by_format(verify: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-format verify results {fmt: {psnr_db, passed, ...}} from the shapes verify.json may take.

    Accepted: {"formats": {fmt: {...}}}, {"psnr": {fmt: x}}, or top-level {fmt: {"psnr...": x}}.
    """
    out: dict[str, dict[str, Any]] = {}
    formats = _get(verify, "formats") or _get(verify, "results")
    if isinstance(formats, Mapping):
        for f, v in formats.items():
            out[str(f)] = dict(v) if isinstance(v, Mapping) else {"psnr_db": v}
    elif isinstance(_get(verify, "psnr"), Mapping):
        out = {str(f): {"psnr_db": v} for f, v in verify["psnr"].items()}
    else:
        for f, v in (verify or {}).items():
            if isinstance(v, Mapping) and any(str(k).lower().startswith("psnr") for k in v):
                out[str(f)] = dict(v)
    return dict(sorted(out.items()))


def _psnr_value(entry: Mapping[str, Any]) -> Any:
    for k in ("psnr_db", "psnr", "psnr_min", "min_psnr_db", "psnr_mean", "mean_psnr_db"):
        if k in entry:
            return entry[k]
    for k, v in entry.items():
        if str(k).lower().startswith("psnr") and not isinstance(v, (Mapping, list)):
            return v
    return None


def split_bench(bench: Mapping[str, Any]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Bench rows split into (measured, estimated) by whether the key path names a model/profile."""
    measured, estimated = [], []
    for key, value in flatten(bench or {}):
        (estimated if _ESTIMATE_RE.search(key) else measured).append((key, value))
    return measured, estimated


def a12_estimate(bench: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Rows of the bench whose key path mentions the A12 (the reference device)."""
    return [(k, v) for k, v in flatten(bench or {}) if re.search(r"a12", k, re.I)]


# ---------------------------------------------------------------- the card


def build_card(art: StyleArtifacts, model_sizes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The model card of one style as a JSON-able dict (stage JSONs embedded as found)."""
    cfg = dict(art.config or {})
    train = art.load_json("train")
    verify = art.load_json("verify")
    bench = art.load_json("bench")
    export = art.load_json("export")
    preview = art.load_json("preview")
    quality = art.load_json("quality")
    measured, estimated = split_bench(bench)
    return {
        "style": art.name,
        "painting": {
            "image": cfg.get("image"),
            "credit": cfg.get("credit") or None,
            "license": cfg.get("license") or None,
        },
        "architecture": {
            "method": "feed-forward transformer network with perceptual losses (Johnson et al. 2016)",
            "network": cfg.get("network") or {},
            "parameters": train.get("params"),
        },
        "loss_network": cfg.get("loss") or {},
        "training": {
            "config": cfg.get("train") or {},
            "steps": train.get("steps"),
            "backend": train.get("backend"),
            "final_losses": train.get("final") or {},
            "heldout_losses": train.get("heldout") or {},
        },
        "data": dict(art.data or {}),
        "formats": {f: {"file": f"{art.name}/{p.name}", "bytes": (model_sizes or {}).get(f), "notes": FORMAT_NOTES[f]} for f, p in art.models.items()},
        "export": export,
        "verify": {"by_format": psnr_by_format(verify), "raw": verify},
        "bench": {
            "measured": dict(measured),
            "estimates": dict(estimated),
            "a12_estimate": dict(a12_estimate(bench)),
            "note": "'estimates' come from a cost model against device profiles, not from device measurements",
        },
        "preview": preview,
        "quality": {k: quality[k] for k in ("photos", "mean", "flicker_ratio", "settings") if k in quality},
        "intended_use": INTENDED_USE,
        "limitations": LIMITATIONS,
    }


def _pivot_tables(rows: list[tuple[str, Any]], kind: str) -> str:
    """Flattened rows as tables: "group.row.col" keys pivot into one table per group
    (e.g. runtimes x {median_ms, p90_ms}); shorter keys go in a figure/value table."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    plain: list[list[Any]] = []
    for key, value in rows:
        parts = key.split(".")
        if len(parts) >= 3:
            groups.setdefault(".".join(parts[:-2]), {}).setdefault(parts[-2], {})[parts[-1]] = value
        else:
            plain.append([key, value])
    out = []
    for group, table in groups.items():
        cols = sorted({c for r in table.values() for c in r})
        out.append(_table([f"{group} ({kind})", *cols], [[r, *(vals.get(c) for c in cols)] for r, vals in table.items()]))
    if plain:
        out.append(_table(["figure", kind], plain))
    return "\n".join(out)


def render_bench_markdown(style: str | None, bench: Mapping[str, Any], level: int = 2) -> str:
    """Bench tables for one style: measured figures, then estimates labelled as such."""
    h = "#" * level
    measured, estimated = split_bench(bench)
    out = [f"{h} {style}\n\n"] if style else []
    if not bench:
        return "".join(out) + f"Benchmarks: {NOT_RECORDED}.\n"
    return "".join(out) + _speed_body(dict(measured), dict(estimated))


def render_benchmarks(version: str, benches: Mapping[str, Mapping[str, Any]]) -> str:
    """BENCHMARKS.md of a release: one figure x style table to compare styles, then
    each style's tables. Estimated figures carry "(estimate)" in their row name."""
    rows: dict[str, dict[str, Any]] = {}
    for style, bench in benches.items():
        measured, estimated = split_bench(bench)
        for key, value in measured:
            rows.setdefault(key, {})[style] = value
        for key, value in estimated:
            rows.setdefault(f"{key} (estimate)", {})[style] = value
    styles = list(benches)
    out = [f"# livestyle {version}: benchmarks\n\n"]
    if rows:
        # measured first, estimates after, so the two never interleave
        order = sorted(rows, key=lambda k: (k.endswith("(estimate)"), k))
        out.append("## All styles\n\n" + _table(["figure", *styles], [[k, *(rows[k].get(s) for s in styles)] for k in order]) + "\n")
    out += [render_bench_markdown(style, bench, level=2) + "\n" for style, bench in benches.items()]
    return "".join(out)


def _speed_body(measured: Mapping[str, Any], estimates: Mapping[str, Any]) -> str:
    out = []
    if measured:
        out.append("Measured on the build machine:\n\n" + _pivot_tables(list(measured.items()), "measured") + "\n")
    if estimates:
        out.append("**Estimates** from the cost model and device profiles, not measured on a device:\n\n"
                   + _pivot_tables(list(estimates.items()), "estimate") + "\n")
    return "".join(out)


def render_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown: the same facts as the JSON, for the release page and users."""
    s = card.get("style", "?")
    lines: list[str] = [f"# {s}: livestyle model card\n"]

    p = card.get("painting") or {}
    lines.append("\n## Painting\n\n")
    lines.append(_table(["", ""], [["image", p.get("image") or NOT_RECORDED], ["credit", p.get("credit") or NOT_RECORDED], ["license", p.get("license") or NOT_RECORDED]]))

    arch = card.get("architecture") or {}
    lines.append("\n## Model\n\n" + f"{arch.get('method', '')}.\n\n")
    rows = [[k, v] for k, v in flatten(arch.get("network") or {})]
    rows.append(["parameters", arch.get("parameters") if arch.get("parameters") is not None else NOT_RECORDED])
    lines.append(_table(["network", "value"], rows))

    loss = card.get("loss_network") or {}
    lines.append("\n## Loss network\n\n")
    lines.append(_table(["loss", "value"], [[k, v] for k, v in flatten(loss)]) if loss else f"{NOT_RECORDED.capitalize()}.\n")

    tr = card.get("training") or {}
    lines.append("\n## Training\n\n")
    rows = [[f"config.{k}", v] for k, v in flatten(tr.get("config") or {})]
    for key in ("steps", "backend"):
        if tr.get(key) is not None:
            rows.append([key, tr[key]])
    rows += [[f"final.{k}", v] for k, v in flatten(tr.get("final_losses") or {})]
    rows += [[f"heldout.{k}", v] for k, v in flatten(tr.get("heldout_losses") or {})]
    lines.append(_table(["training", "value"], rows) if rows else f"{NOT_RECORDED.capitalize()}.\n")

    data = card.get("data") or {}
    lines.append("\n## Training data\n\n")
    lines.append(_table(["data", "value"], [[k, v] for k, v in flatten(data)]) if data else f"{NOT_RECORDED.capitalize()}.\n")

    lines.append("\n## Files\n\n")
    lines.append(_table(["format", "file", "size", "notes"], [[f, e.get("file"), _bytes(e.get("bytes")), e.get("notes")] for f, e in (card.get("formats") or {}).items()]))

    v = card.get("verify") or {}
    by_fmt = v.get("by_format") or {}
    lines.append("\n## Verification (exported model vs. Keras, held-out frames)\n\n")
    if by_fmt:
        lines.append(_table(["format", "PSNR (dB)", "passed"], [[f, _psnr_value(e), e.get("passed", e.get("ok"))] for f, e in by_fmt.items()]))
        rest = [[k, val] for k, val in flatten({k: x for k, x in (v.get("raw") or {}).items() if k not in ("formats", "results", "psnr", *by_fmt)})]
        if rest:
            lines.append("\n" + _table(["verify", "value"], rest))
    elif v.get("raw"):
        lines.append(_table(["verify", "value"], [[k, val] for k, val in flatten(v["raw"])]))
    else:
        lines.append(f"{NOT_RECORDED.capitalize()}.\n")

    b = card.get("bench") or {}
    lines.append("\n## Speed\n\n")
    a12 = b.get("a12_estimate") or {}
    if a12:
        lines.append("A12 iPhone, the reference device (**estimate** from the cost model; not measured on a device): "
                     + "; ".join(f"{k} = {fmt(val)}" for k, val in a12.items()) + ".\n\n")
    body = _speed_body(b.get("measured") or {}, b.get("estimates") or {})
    lines.append(body or f"{NOT_RECORDED.capitalize()}.\n")

    pv = card.get("preview") or {}
    if pv:
        lines.append("\n## Preview\n\n" + _table(["preview", "value"], [[k, val] for k, val in flatten(pv)]))

    q = card.get("quality") or {}
    if q.get("mean"):
        mean, photo = q["mean"], q["mean"].get("photo") or {}
        lines.append(f"\n## Quality ({q.get('photos', '?')} held-out photos; distances, 0 = best; quality/sheet.png shows them)\n\n")
        lines.append("Texture and colour against the painting, content against the photo, under measures training does not "
                     "optimise (livestyle.measure.quality); the unstylized photo is the baseline.\n\n")
        keys = [k for k in ("texture", "colour", "content", "lossnet_content", "lossnet_style") if k in mean]
        lines.append(_table(["measure", "ours", "photo"], [[k, mean[k], photo.get(k, NOT_RECORDED)] for k in keys]))

    lines.append("\n## Intended use\n\n" + f"{card.get('intended_use', INTENDED_USE)}\n")
    lines.append("\n## Limitations\n\n" + "".join(f"- {x}\n" for x in card.get("limitations", LIMITATIONS)))
    return "".join(lines)
