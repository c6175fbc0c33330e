"""What ``kws eval`` writes: per engine ``report.json``, ``det.png`` and ``false_alarms.tsv``; side
by side ``summary.md``, ``summary.json`` and ``det.png``.

Figures that the negative audio cannot resolve are marked: with ``h`` hours of negatives one
false alarm is ``1 / h`` per hour, so a miss rate "at 0.1 FA/h" from 0.04 h means "at no false
alarm in 0.04 h" and says little; the table marks it and a warning names the resolution.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from kws.core.extras import require
from kws.metrics.det import Det
from kws.metrics.evaluate import FA_TARGETS
from kws.metrics.interval import LEVEL, RESAMPLES

log = logging.getLogger(__name__)
INTERVAL_NOTE = (f" [low, high]: the {LEVEL:.0%} interval of the miss rate over {RESAMPLES} "
                 "redraws of the speakers of the negative recordings and of the positive clips "
                 "(kws.metrics.interval; a file whose name names no speaker is its own).")


def write_report(report: dict, det: Det, keywords: tuple[str, ...], out_dir: Path,
                 title: str) -> None:
    """Write ``report.json``, ``det.png`` and ``false_alarms.tsv`` (a listening list)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full = dict(report, det={"thresholds": det.thresholds.tolist(),
                             "fa_per_hour": det.fa_per_hour.tolist(),
                             "miss_rate": det.miss_rate.tolist()})
    (out_dir / "report.json").write_text(json.dumps(full, indent=2, default=_plain))
    lines = ["file\ttime_s\tkeyword\tscore"] + [
        f"{fa['file']}\t{fa['time_s']}\t{fa['keyword']}\t{fa['score']:.4f}"
        for fa in report["false_alarms"]]
    (out_dir / "false_alarms.tsv").write_text("\n".join(lines) + "\n")
    curves = {kw: (det.fa_per_hour[:, j], det.miss_rate[:, j]) for j, kw in enumerate(keywords)
              if report["positive_clips"].get(kw)}
    plot_det(curves, out_dir / "det.png", title, report["negative_hours"])


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str,
             negative_hours: float, budget: float = 0.5) -> None:
    """Miss rate (log) against false alarms per hour (log), one line per name, with the budget
    marked; curves without positives are left out."""
    matplotlib = require("matplotlib", "eval", "the DET plot of kws eval")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name, (fa, miss) in curves.items():
        if np.all(np.isnan(miss)):
            continue
        ax.plot(np.maximum(fa, 1e-2), 100 * np.maximum(miss, 1e-3), marker=".",
                markersize=3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false alarms per hour (0 drawn at 0.01)")
    ax.set_ylabel("miss rate (%, log; 0 drawn at 0.1%)")
    ax.axvline(budget, color="grey", linestyle=":", linewidth=1)
    ax.text(budget, 0.98, f" {budget:g} FA/h", transform=ax.get_xaxis_transform(), color="grey",
            va="top", fontsize=8)
    ax.axvline(1 / negative_hours, color="tab:red", linestyle="--", linewidth=0.8)
    ax.text(1 / negative_hours, 0.02, f" 1 false alarm in {negative_hours:.2g} h",
            transform=ax.get_xaxis_transform(), color="tab:red", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def resolution_note(negative_hours: float, targets=FA_TARGETS) -> str | None:
    """A warning when some target is finer than one false alarm in the negative audio."""
    coarse = [t for t in targets if t < 1 / negative_hours]
    if not coarse:
        return None
    return (f"{negative_hours:.3g} h of negative audio cannot resolve "
            f"{', '.join(f'{t:g}' for t in coarse)} FA/h (one false alarm is "
            f"{1 / negative_hours:.3g} FA/h): those columns are the miss rate at no false "
            f"alarm at all; resolving 0.1 FA/h needs at least 10 h")


def markdown_table(reports: list[dict]) -> str:
    """Miss rate at 0.1 / 0.5 / 1 FA/h and delay per engine and keyword; figures the negative
    audio cannot resolve carry a "*"."""
    head = ("| engine | keyword | clips | miss @0.1 FA/h | miss @0.5 FA/h | miss @1 FA/h | "
            "delay median / p95 (s) | real-time factor |\n|---|---|---|---|---|---|---|---|\n")
    rows = []
    hours = reports[0]["negative_hours"]
    for r in reports:
        for kw, v in r["keywords"].items():
            miss = [cell(v["at_fa_per_hour"][f"{t:g}"]) + ("*" if t < 1 / hours else "")
                    for t in FA_TARGETS]
            d = v["delay_s"]
            delay = "-" if d["median"] is None else f"{d['median']:.2f} / {d['p95']:.2f}"
            rows.append(f"| {safe_name(r['engine'])} | {kw} | {r['positive_clips'][kw]} | "
                        + " | ".join(miss) + f" | {delay} | {r['real_time_factor']:.4f} |")
    rules = {r["event_rule"] for r in reports}
    rule = rules.pop() if len(rules) == 1 else "; ".join(
        f"{safe_name(r['engine'])}: {r['event_rule']}" for r in reports)
    note = resolution_note(hours)
    foot = (f"\nNegatives: {hours:.2f} h in {reports[0]['negative_files']} files. Events: {rule}. "
            "Real-time factor: CPU seconds per second of negative audio, offline scoring in "
            "this process." + (INTERVAL_NOTE if any(
                p.get("miss_rate_95") for r in reports for v in r["keywords"].values()
                for p in v["at_fa_per_hour"].values()) else "") + "\n"
            + (f"\n\\* {note}.\n" if note else ""))
    return head + "\n".join(rows) + "\n" + foot


def safe_name(name: str) -> str:
    """A folder name for an engine, ':' replaced: an exported model's folder and file
    (``default_model-model.int8.onnx``, so two models side by side differ), else its last path
    part."""
    path = Path(name)
    parts = path.parts[-2:] if ".onnx" in path.name else path.parts[-1:]
    return ("-".join(parts) or "model").replace(":", "-")


def cell(point: dict) -> str:
    """A miss rate with its 95% interval when the report has one: ``13.9% [9.4, 18.8]``."""
    interval = point.get("miss_rate_95")
    if interval is None:
        return percent(point["miss_rate"])
    low, high = interval
    return f"{percent(point['miss_rate'])} [{100 * low:.1f}, {100 * high:.1f}]"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def _plain(x):
    return float(x) if isinstance(x, np.floating) else int(x) if isinstance(x, np.integer) else x


def summary_json(reports: list[dict]) -> str:
    """The reports without their false-alarm lists."""
    return json.dumps([{k: v for k, v in r.items() if k != "false_alarms"} for r in reports],
                      indent=2, default=_plain)
