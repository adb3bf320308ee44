"""The profile's report: profile.json (everything), profile.csv (one row per configuration) and
profile.html, one self-contained page (inline SVG drawn here, no script or network) that opens offline.

Plots: the target's call cost against its number of input tokens in decode steps, per backend;
speedup against k per drafter; the accepted-length histogram of each drafter's best k; the time
split of every configuration.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path

CSV_COLS = (
    "backend",
    "draft",
    "relation",
    "policy",
    "k",
    "tokens_per_s",
    "speedup",
    "spread",
    "decode_speedup",
    "ttft_ms",
    "tpot_ms",
    "acceptance_rate",
    "mean_accepted",
    "tau_decode",
    "ideal_speedup",
    "efficiency",
    "ideal_speedup_loop",
    "efficiency_loop",
    "mbsu",
    "target_calls",
    "drafted",
    "accepted",
    "draft_ms",
    "verify_ms",
    "other_ms",
    "other_share",
    "peak_rss_mb",
    "generations",
    "error",
)
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def json_safe(o):
    """JSON-safe: NaN and infinities as null, tuple keys never reach here."""
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    return o


def write_report(report: dict, out: Path, force: bool = False) -> None:
    """Write the three files into ``out`` atomically (a directory renamed into place when complete)."""
    from ..bundle import atomic_directory

    with atomic_directory(out, force=force) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private
        (tmp / "profile.json").write_text(json.dumps(json_safe(report), indent=1, default=str), encoding="utf-8")
        (tmp / "profile.csv").write_text(to_csv(report), encoding="utf-8")
        (tmp / "profile.html").write_text(to_html(report), encoding="utf-8")


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(("configuration",) + CSV_COLS)
    for name, m in report["configs"].items():
        w.writerow(
            [name]
            + ["" if m.get(c) is None else (f"{m[c]:.6g}" if isinstance(m[c], float) else m[c]) for c in CSV_COLS]
        )
    return buf.getvalue()


# ----------------------------------------------------------------------------- SVG


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for step in (1, 1.2, 1.6, 2, 2.4, 3, 4, 6, 8, 10):  # a quarter of each is a round tick
        if step * mag >= v:
            return step * mag
    return 10 * mag


def line_chart(
    title: str,
    series: list[tuple[str, list[tuple[float, float]]]],
    x_label: str,
    y_label: str,
    refs: list[tuple[str, list[tuple[float, float]]]] = (),
    y_min: float = 0.0,
) -> str:
    """An SVG line chart: each series a polyline with markers and a legend entry; refs dashed grey."""
    w, h, left, right, top, bottom = 560, 320, 56, 150, 34, 44
    pts = [p for _, s in list(series) + list(refs) for p in s]
    if not pts:
        return f'<p class="empty">{_e(title)}: nothing measured.</p>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    if x1 <= x0:  # one x value: centre it
        x0, x1 = x0 - 1, x1 + 1
    y1 = _nice_max(max(p[1] for p in pts))
    pw, ph = w - left - right, h - top - bottom

    def X(x):
        return left + (x - x0) / (x1 - x0) * pw

    def Y(y):
        return top + ph - (y - y_min) / (y1 - y_min) * ph

    out = [
        f'<svg class="chart" role="img" aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {w} {h}" width="{w}" height="{h}">',
        f'<text x="{w / 2 - right / 2:.0f}" y="18" class="title" text-anchor="middle">{_e(title)}</text>',
    ]
    for i in range(5):
        y = y_min + (y1 - y_min) * i / 4
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{Y(y):.1f}" y2="{Y(y):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{Y(y) + 4:.1f}" text-anchor="end" class="tick">{y:.3g}</text>'
        )
    xs = sorted({p[0] for _, s in series for p in s}) or sorted({p[0] for p in pts})
    for x in xs:
        out.append(f'<text x="{X(x):.1f}" y="{top + ph + 16}" text-anchor="middle" class="tick">{x:g}</text>')
    out.append(
        f'<text x="{left + pw / 2:.0f}" y="{h - 6}" text-anchor="middle" class="axis">{_e(x_label)}</text>'
        f'<text transform="translate(14 {top + ph / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'class="axis">{_e(y_label)}</text>'
    )
    for name, s in refs:
        d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in s)
        out.append(f'<polyline points="{d}" class="ref"><title>{_e(name)}</title></polyline>')
    legend_y = top + 4
    for i, (name, s) in enumerate(series):
        col = COLORS[i % len(COLORS)]
        d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in s)
        out.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="2"/>')
        for x, y in s:
            out.append(
                f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3.5" fill="{col}">'
                f"<title>{_e(name)}: {x:g} → {y:.3f}</title></circle>"
            )
        out.append(
            f'<rect x="{w - right + 10}" y="{legend_y + 18 * i - 8}" width="12" height="3" fill="{col}"/>'
            f'<text x="{w - right + 26}" y="{legend_y + 18 * i}" class="legend">{_e(name)}</text>'
        )
    for j, (name, _) in enumerate(refs):
        y = legend_y + 18 * (len(series) + j)
        out.append(
            f'<line x1="{w - right + 10}" x2="{w - right + 22}" y1="{y - 4}" y2="{y - 4}" class="ref"/>'
            f'<text x="{w - right + 26}" y="{y}" class="legend">{_e(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, bars: list[tuple[str, list[float]]], parts: list[str], x_label: str) -> str:
    """Horizontal stacked bars: one row per label, one segment per part (with a legend)."""
    if not bars:
        return f'<p class="empty">{_e(title)}: nothing measured.</p>'
    row, left, right, top = 22, 200, 30, 50
    w = 640
    h = top + row * len(bars) + 40
    vmax = _nice_max(max(sum(v) for _, v in bars) or 1.0)
    pw = w - left - right
    out = [
        f'<svg class="chart" role="img" aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {w} {h}" width="{w}" height="{h}">',
        f'<text x="{w / 2:.0f}" y="18" class="title" text-anchor="middle">{_e(title)}</text>',
    ]
    for j, p in enumerate(parts):
        out.append(
            f'<rect x="{left + 110 * j}" y="28" width="10" height="10" fill="{COLORS[j % len(COLORS)]}"/>'
            f'<text x="{left + 110 * j + 14}" y="37" class="legend">{_e(p)}</text>'
        )
    for i, (label, vals) in enumerate(bars):
        y = top + row * i
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" class="tick">{_e(label)}</text>')
        x = left
        for j, v in enumerate(vals):
            bw = max(0.0, v / vmax * pw)
            out.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{bw:.1f}" height="{row - 6}" '
                f'fill="{COLORS[j % len(COLORS)]}"><title>{_e(label)}: {_e(parts[j])} {v:.3g}</title></rect>'
            )
            x += bw
    y = top + row * len(bars) + 14
    for i in range(5):
        v = vmax * i / 4
        out.append(f'<text x="{left + pw * i / 4:.1f}" y="{y}" text-anchor="middle" class="tick">{v:.3g}</text>')
    out.append(f'<text x="{left + pw / 2:.0f}" y="{y + 20}" text-anchor="middle" class="axis">{_e(x_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(title: str, counts: list[int]) -> str:
    """Vertical bars: how many rounds accepted 0, 1, 2, ... drafted tokens (as a share of rounds)."""
    total = sum(counts)
    if not total:
        return f'<p class="empty">{_e(title)}: no rounds.</p>'
    w, h, left, top, bottom = 300, 200, 40, 30, 36
    pw, ph = w - left - 10, h - top - bottom
    bw = pw / len(counts)
    vmax = _nice_max(max(counts) / total)
    out = [
        f'<svg class="chart hist" role="img" aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {w} {h}" width="{w}" height="{h}">',
        f'<text x="{w / 2:.0f}" y="16" class="title" text-anchor="middle">{_e(title)}</text>',
    ]
    for i, c in enumerate(counts):
        share = c / total
        bh = share / vmax * ph
        x = left + i * bw
        out.append(
            f'<rect x="{x + 2:.1f}" y="{top + ph - bh:.1f}" width="{bw - 4:.1f}" height="{bh:.1f}" '
            f'fill="{COLORS[0]}"><title>accepted {i}: {c} rounds ({100 * share:.0f}%)</title></rect>'
            f'<text x="{x + bw / 2:.1f}" y="{top + ph + 14}" text-anchor="middle" class="tick">{i}</text>'
        )
    for i in range(3):
        v = vmax * i / 2
        out.append(
            f'<text x="{left - 4}" y="{top + ph - ph * i / 2 + 4:.1f}" text-anchor="end" '
            f'class="tick">{100 * v:.0f}%</text>'
        )
    out.append(
        f'<text x="{left + pw / 2:.0f}" y="{h - 4}" text-anchor="middle" class="axis">drafted tokens '
        f"accepted per round</text></svg>"
    )
    return "".join(out)


# ----------------------------------------------------------------------------- page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.rec{background:#eef6ee;border:1px solid #9c9;padding:10px 14px;border-radius:6px;margin:14px 0}
.rec.none{background:#f6f0e6;border-color:#d9b97a}.partial{background:#fdecea;border:1px solid #e99;padding:8px 12px}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f4f4f4;position:sticky;top:0}
tr.best td{background:#eef6ee;font-weight:600}.charts{display:flex;flex-wrap:wrap;gap:18px}
svg.chart{background:#fff;border:1px solid #e4e4e4;border-radius:4px}
svg .title{font-size:13px;font-weight:600}svg .tick{font-size:11px;fill:#444}svg .axis{font-size:12px;fill:#222}
svg .legend{font-size:11.5px}svg .grid{stroke:#eee}svg .ref{stroke:#999;stroke-dasharray:4 3;fill:none}
.notes li{color:#444}.scroll{overflow-x:auto}.empty{color:#888}
"""


def _fmt(v, key: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if key in ("acceptance_rate", "other_share", "spread"):
            return f"{100 * v:.1f}%"
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) >= 1 else f"{v:.3f}"
    return _e(v)


def _curve_section(report: dict) -> str:
    series, ms_rows = [], []
    for backend, c in report["costs"].items():
        t = c.get("target")
        if not t or not t.get("steps"):
            continue
        series.append((f"{backend} (ctx {c['context']})", [(int(n), v) for n, v in t["steps"].items()]))
        ms_rows.append((backend, t))
    n_max = max((p[0] for _, s in series for p in s), default=8)
    refs = [("one decode step", [(1, 1.0), (n_max, 1.0)]), ("n decode steps", [(1, 1.0), (n_max, float(n_max))])]
    parts = [
        '<h2 id="curve">Target call cost against input tokens</h2>',
        "<p>One target call over n tokens, in decode steps: T(n) / T(1), at the prompts' context. A "
        "speculative round verifies k drafted tokens in one call of k + 1; the flatter this curve, the "
        "more a drafter can gain.</p>",
        line_chart("T(n) / T(1) per backend", series, "tokens per call (n)", "decode steps", refs if series else []),
    ]
    if ms_rows:
        ns = sorted({int(n) for _, t in ms_rows for n in t["T_ms"]})
        parts.append(
            '<table id="curve-table"><tr><th>backend</th>'
            + "".join(f"<th>T({n}) ms</th>" for n in ns)
            + "</tr>"
            + "".join(
                f"<tr><td>{_e(b)}</td>" + "".join(f"<td>{t['T_ms'].get(str(n), 0):.2f}</td>" for n in ns) + "</tr>"
                for b, t in ms_rows
            )
            + "</table>"
        )
        drows = [(b, d, x) for b, c in report["costs"].items() for d, x in c["drafters"].items()]
        if drows:
            parts.append(
                "<table><tr><th>drafter</th><th>T_draft ms</th><th>in decode steps</th>"
                "<th>prompt read (tokens: ms)</th></tr>"
                + "".join(
                    f"<tr><td>{_e(b)} / {_e(d)}</td><td>{x['T_draft_ms']:.3f}</td>"
                    f"<td>{_fmt(x.get('steps'))}</td><td>"
                    + _e(", ".join(f"{n}: {v:.1f}" for n, v in (x.get("T_draft_read_ms") or {}).items()))
                    + "</td></tr>"
                    for b, d, x in drows
                )
                + "</table>"
            )
    return "".join(parts)


def _speedup_section(report: dict) -> str:
    series, adaptive = {}, []
    for m in report["configs"].values():
        if m.get("policy") != "draft" or m.get("speedup") is None:
            continue
        label = f"{m['backend']} / {m['draft']}"
        if m.get("k") is None:
            adaptive.append(f"{_e(label)}: {m['speedup']:.2f}×")
        else:
            series.setdefault(label, []).append((m["k"], m["speedup"]))
    lines = [(lab, sorted(s)) for lab, s in series.items()]
    ks = [p[0] for _, s in lines for p in s]
    pad = 1 if ks and min(ks) == max(ks) else 0  # one k: the reference spans the centred axis
    refs = [("plain decoding", [(min(ks) - pad, 1.0), (max(ks) + pad, 1.0)])] if ks else []
    out = [
        '<h2 id="speedup">Speedup against k</h2>',
        "<p>tokens/s over the same backend's plain decoding, each drafter at each fixed k (median of the "
        "prompts' medians).</p>",
        line_chart("speedup vs k per drafter", lines, "draft length k", "speedup (×)", refs),
    ]
    if adaptive:
        out.append("<p>Adaptive k: " + "; ".join(adaptive) + ".</p>")
    return "".join(out)


def _hist_section(report: dict) -> str:
    best: dict[str, tuple[str, dict]] = {}
    for name, m in report["configs"].items():
        if m.get("policy") == "draft" and m.get("k") and m.get("speedup") is not None and m.get("accepted_hist"):
            key = f"{m['backend']} / {m['draft']}"
            if key not in best or m["speedup"] > best[key][1]["speedup"]:
                best[key] = (name, m)
    charts = [histogram(f"{name}", m["accepted_hist"]) for name, m in best.values()]
    return (
        '<h2 id="hist">Accepted length</h2><p>Drafted tokens the target accepted per round, for each '
        "drafter at its fastest k.</p>"
        + ('<div class="charts">' + "".join(charts) + "</div>" if charts else '<p class="empty">No drafter ran.</p>')
    )


def _split_section(report: dict) -> str:
    bars = []
    for name, m in report["configs"].items():
        # draft_ms etc. are means per generation; n_new sums one (median) generation per prompt
        if m.get("verify_ms") is None or not m.get("n_new") or not m.get("prompts_measured"):
            continue
        tokens = m["n_new"] / m["prompts_measured"]
        bars.append(
            (name, [(m.get("draft_ms") or 0.0) / tokens, m["verify_ms"] / tokens, (m.get("other_ms") or 0.0) / tokens])
        )
    return (
        '<h2 id="split">Time split</h2><p>Milliseconds per generated token: drafting, target calls '
        "(prefill included), and the rest (sampling, acceptance, KV-cache bookkeeping, text).</p>"
        + bar_chart("ms per token", bars, ["draft", "target (verify)", "other"], "ms per generated token")
    )


def _configs_table(report: dict) -> str:
    cols = (
        "tokens_per_s",
        "speedup",
        "spread",
        "decode_speedup",
        "ttft_ms",
        "tpot_ms",
        "acceptance_rate",
        "mean_accepted",
        "ideal_speedup",
        "efficiency",
        "ideal_speedup_loop",
        "efficiency_loop",
        "mbsu",
        "other_share",
        "peak_rss_mb",
    )
    rec = (report.get("recommendation") or {}).get("config")
    rows = []
    for name, m in report["configs"].items():
        if m.get("error"):
            rows.append(f'<tr><td>{_e(name)}</td><td colspan="{len(cols)}">error: {_e(m["error"])}</td></tr>')
            continue
        cls = ' class="best"' if name == rec else ""
        rows.append(f"<tr{cls}><td>{_e(name)}</td>" + "".join(f"<td>{_fmt(m.get(c), c)}</td>" for c in cols) + "</tr>")
    return (
        '<h2 id="configs">Every configuration</h2><div class="scroll"><table id="configs-table"><tr>'
        "<th>configuration</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>" + "".join(rows) + "</table></div>"
        "<p class=meta>speedup: tokens/s (prefill included) over the same backend's plain decoding; spread: "
        "(max − min) / median of the repeats' tokens/s; ideal_speedup: τ·T(1) / (T(k+1) + k·T_draft) from "
        "the measured per-call costs; efficiency: decode speedup / ideal; efficiency_loop: against every "
        "call a perfect loop must make (fixed k); peak RSS: the profiling process's, every pipeline "
        "loaded.</p>"
    )


def to_html(report: dict) -> str:
    dev = report["device"]
    rec = report.get("recommendation")
    title = f"edgespec profile — {dev['cpu']}"
    head = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">device {_e(dev["ov_device"])}, instruction sets {_e(", ".join(dev["isa"]) or "none")}; '
        f"bundle {_e(report['bundle']['path'])}; {report['run']['prompts']} prompts, "
        f"{report['run']['max_new_tokens']} new tokens, {report['run']['repeats']} repeats; "
        f"{_e(report['started'])} – {_e(report['finished'])}; edgespec {_e(report['edgespec'])}</p>",
    ]
    if report.get("partial"):
        head.append(
            '<p class="partial" id="partial">Interrupted: these figures cover only what was measured '
            "before Ctrl-C; no recommendation was made.</p>"
        )
    if rec:
        head.append(
            f'<div class="rec" id="recommendation"><b>Recommended:</b> {_e(rec["config"])} '
            f"(backend {_e(rec['backend'])}, policy {_e(rec['policy'])}"
            + (f", drafter {_e(rec['draft'])}" if rec.get("draft") else "")
            + (f", k {_e(rec['k'])}" if rec.get("k") is not None else "")
            + f").<br>{_e(rec['why'])}"
            + (
                f"<br>Saved as {_e(report['saved'])}: <code>edgespec run</code> and "
                f"<code>Pipeline.load</code> start from it on this device."
                if report.get("saved")
                else ""
            )
            + "</div>"
        )
    elif not report.get("partial"):
        head.append('<div class="rec none" id="recommendation">No configuration ran; nothing to recommend.</div>')
    notes = report.get("notes") or []
    body = head + [
        _curve_section(report),
        _speedup_section(report),
        _hist_section(report),
        _split_section(report),
        _configs_table(report),
    ]
    if notes:
        body.append('<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>"
        + _e(title)
        + "</title><style>"
        + _CSS
        + "</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
