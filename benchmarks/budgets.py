"""Do false-alarm budgets hold on audio the model was not calibrated on?

    python benchmarks/budgets.py --model kws/default_model --config configs/default.toml \
        [--budgets 0.1 0.5 1 2] [--group speechocean762] [--no-verifier] [-o budgets.json]

For each budget B, takes the thresholds ``--max-fa-per-hour B`` would pick (from the model's
calibration table, at 90% confidence, with its warning when the calibration audio cannot show B)
and counts the events the model's decision rule gives on the config's held-out test negatives,
which the calibration never saw. Prints a table per group of negatives: files whose path contains
a ``--group`` name (by default the children and accented speakers of speechocean762) and all
the others. A model with a verifier is measured as the cascade (its own calibration table and
events, :mod:`kws.runtime.cascade`) unless ``--no-verifier``.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from kws.core.config import load_config
from kws.core.decision import budget_resolution, decision_track, events
from kws.data import corpora
from kws.runtime import OnnxModel
from kws.runtime.cascade import Verifier, cascade_track
from kws.runtime.detector import calibration_hours, table_budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0])
    parser.add_argument("--group", default="speechocean762")
    parser.add_argument("--no-verifier", action="store_true")
    parser.add_argument("-o", "--out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    model = OnnxModel(args.model)
    m, rule = model.manifest, model.manifest.rule
    table, calibrated = m.calibration, calibration_hours(m)
    raw = model.score_audio
    if m.verifier and not args.no_verifier:
        verifier = Verifier(m)
        table, calibrated, rule = m.verifier.calibration, m.verifier.calibration_hours, \
            verifier.rule
        raw = lambda w: cascade_track(verifier, model.score_audio(w), w, m.rule)  # noqa: E731
    cfg = load_config(args.config)
    test = corpora.load_split(corpora.collect(cfg), "test", m.keywords, m.frontend.sample_rate)
    groups = {args.group: [], "other": []}
    for path, wave in test.negatives:
        groups[args.group if args.group in str(path) else "other"].append(wave)
    tracks = {name: [decision_track(raw(w), rule.smoothing_steps, rule.min_steps)
                     for w in waves] for name, waves in groups.items()}
    hours = {name: sum(len(w) for w in waves) / m.frontend.sample_rate / 3600
             for name, waves in groups.items()}
    refractory = rule.refractory_steps(m.step_s)
    rows = []
    for budget in args.budgets:
        resolved = bool(budget >= budget_resolution(calibrated))
        thresholds = table_budget(table, calibrated, m.keywords, budget)
        for name in groups:
            counts = {kw: int(sum(len(events(t[:, k], thresholds[kw], refractory))
                                  for t in tracks[name]))
                      for k, kw in enumerate(m.keywords)}
            rows.append({"budget": budget, "group": name, "hours": hours[name],
                         "resolved_by_calibration": resolved, "thresholds": thresholds,
                         "events": counts,
                         "fa_per_hour": {kw: c / hours[name] for kw, c in counts.items()}})
    print(f"model {args.model}: calibration {calibrated:.2f} h; rule: "
          f"{rule.describe()}")
    for name in groups:
        print(f"\n{name}: {hours[name]:.2f} h of held-out negatives\n")
        print("| budget (FA/h) | " + " | ".join(m.keywords) + " | calibration resolves it |")
        print("|---" * (len(m.keywords) + 2) + "|")
        for r in (r for r in rows if r["group"] == name):
            cells = [f"{r['fa_per_hour'][kw]:.2f} ({r['events'][kw]})"
                     + ("" if r["fa_per_hour"][kw] <= r["budget"] else " OVER")
                     for kw in m.keywords]
            print(f"| {r['budget']:g} | " + " | ".join(cells)
                  + f" | {'yes' if r['resolved_by_calibration'] else 'no (warned)'} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2, default=lambda x: float(x) if isinstance(
                x, np.floating) else x)


if __name__ == "__main__":
    main()
