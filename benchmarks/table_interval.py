"""The zero-shot table's headline with its 95% interval, over one or several rounds.

    python benchmarks/table_interval.py RUNS [RUNS ...] [--seed 0]

Each RUNS folder is one round of ``benchmarks/zero_shot.py`` (its ``zero_shot.json`` and each
phrase's ``<name>/eval/0-*/scores.npz``). Per phrase, the figure is the mean over the rounds that
hold it; the headline is the median of those means over the untouched phrases (not marked
tuning), at 0.1 / 0.5 / 1 FA/h, as the README's table reads. The interval redraws the audio
(:mod:`kws.metrics.interval`, speakers whole) once for all models: every model scored on the
same negative recordings takes the same redraw of them, and every draw of a phrase the same
redraw of its clips, so the spread is that of the whole figure, not of one model. Prints a
markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from kws.metrics.interval import LEVEL, RESAMPLES, central, redrawn_misses, redraws
from kws.metrics.scores import Scores
from kws.synth.synthesize import keyword_name

BUDGETS = (0.1, 0.5, 1.0)


def rounds_of(folders: list[Path]) -> dict[str, dict]:
    """{phrase: {"tuning": bool, "scores": [Scores of each round that holds it]}}."""
    phrases: dict[str, dict] = {}
    for folder in folders:
        table = folder / "zero_shot.json"
        if not table.is_file():
            raise SystemExit(f"{folder}: no zero_shot.json (run benchmarks/zero_shot.py first)")
        for phrase, figures in json.loads(table.read_text()).items():
            if "miss_rate" not in figures:
                continue  # a student's figures alone
            found = sorted((folder / keyword_name(phrase) / "eval").glob("0-*/scores.npz"))
            if len(found) != 1:
                raise SystemExit(f"{folder}: {len(found)} scores.npz for {phrase!r}, expected one "
                                 "(score it again with this code: benchmarks/zero_shot.py)")
            entry = phrases.setdefault(phrase, {"tuning": bool(figures.get("tuning")),
                                                "scores": []})
            entry["scores"].append(Scores.load(found[0]))
    if not phrases:
        raise SystemExit("no phrase with figures in " + ", ".join(map(str, folders)))
    return phrases


def redrawn(phrases: dict[str, dict], resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Per phrase ``(rounds, 1 + resamples, 3)``: each round's miss rate at each budget on the
    audio as it is (row 0), then on each redraw."""
    rng = np.random.default_rng(seed)
    files: dict[tuple, np.ndarray] = {}
    out = {}
    for phrase, entry in phrases.items():
        first = entry["scores"][0]
        clips = None
        rows = []
        for scores in entry["scores"]:
            if not np.array_equal(scores.clip_speakers, first.clip_speakers):
                raise SystemExit(f"{phrase!r}: its rounds were scored on different clips")
            args = scores.keyword(list(scores.keywords).index(keyword_name(phrase)))
            key = tuple(scores.files)
            if key not in files:
                files[key] = redraws(rng, len(key), args["file_speakers"], resamples)
            if clips is None:
                clips = redraws(rng, len(args["peaks"]), args["clip_speakers"], resamples)
            del args["clip_speakers"], args["file_speakers"]
            whole = (np.ones((1, len(key))), np.ones((1, len(args["peaks"]))))
            rows.append(np.concatenate([
                redrawn_misses(budgets=BUDGETS, files=whole[0], clips=whole[1], **args),
                redrawn_misses(budgets=BUDGETS, files=files[key], clips=clips, **args)]))
        out[phrase] = np.stack(rows)
    return out


def span(values: np.ndarray) -> str:
    low, high = central(values)
    return f"{100 * low:.1f}-{100 * high:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="zero_shot.py --runs folders")
    parser.add_argument("--seed", type=int, default=0, help="of the redraws (default 0)")
    args = parser.parse_args()
    phrases = rounds_of(args.runs)
    misses = redrawn(phrases, RESAMPLES, args.seed)
    print(f"| phrase | rounds | mean miss @0.1 / 0.5 / 1 FA/h | {LEVEL:.0%} interval @0.5 FA/h |")
    print("|---|---|---|---|")
    means = {}
    for phrase, m in misses.items():
        means[phrase] = m.mean(axis=0)  # (1 + resamples, 3): the mean over rounds
        mark = " (tuning)" if phrases[phrase]["tuning"] else ""
        point = " / ".join(f"{100 * v:.1f}" for v in means[phrase][0])
        print(f"| {phrase}{mark} | {len(m)} | {point}% | {span(means[phrase][1:, 1])} |")
    untouched = [p for p in misses if not phrases[p]["tuning"]]
    if not untouched:
        return
    median = np.median(np.stack([means[p] for p in untouched]), axis=0)
    print(f"\nmedian over the {len(untouched)} untouched phrases of their means: "
          + " / ".join(f"{100 * v:.1f}" for v in median[0])
          + f"% at 0.1 / 0.5 / 1 FA/h; {LEVEL:.0%} interval at 0.5 FA/h {span(median[1:, 1])}, "
          f"at 1 FA/h {span(median[1:, 2])} ({RESAMPLES} redraws of the audio)")


if __name__ == "__main__":
    main()
