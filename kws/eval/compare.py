"""Two exported models side by side on held-out audio and on labelled false alarms: what
``kws finetune`` reports (before and after).

Held-out figures come from one of the config's held-out splits: validation by default, where a
choice between the two models may be made, or test for a last look once it is made (positives
mixed with its noise at ``VAL_SNR_DB``, its negatives), each model read with its own decision
rule: the miss
rate at 0.5 and 1 false alarms per hour, and the miss rate and false alarms per hour at the
model's own default thresholds. The false alarms are scored as they were heard: the peak of each
clip's decision track per keyword.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.core.audio import load_audio
from kws.core.config import Config
from kws.data import corpora
from kws.data.activations import read_activations
from kws.eval.engines import exported_engine
from kws.metrics.evaluate import VAL_SNR_DB, decided, evaluate, prepare_positives


def false_alarm_clips(folder: Path, rate: int) -> list[np.ndarray]:
    """The audio of the activations labelled "false_alarm"."""
    return [load_audio(a.wav_path, rate) for a in read_activations(folder)
            if a.label == "false_alarm" and a.wav_path.is_file()]


def figures(folder: Path, positives, negatives, clips: list[np.ndarray]) -> dict:
    """One model's held-out figures and its peaks on the false alarms."""
    engine = exported_engine(folder)
    report, det, _ = evaluate(engine.scorer, engine.timing, engine.keywords, positives,
                              negatives, engine.rule)
    own = {}
    for k, kw in enumerate(engine.keywords):
        threshold = engine.rule.thresholds[kw]
        i = min(int(np.searchsorted(det.thresholds, threshold)), len(det.thresholds) - 1)
        own[kw] = {"threshold": threshold, "miss_rate": float(det.miss_rate[i, k]),
                   "fa_per_hour": float(det.fa_per_hour[i, k])}
    scorer = decided(engine.scorer, engine.rule)
    peaks = [float(scorer(clip).max(initial=0.0)) for clip in clips]
    return {"model": str(folder), "negative_hours": report["negative_hours"],
            "miss_rate": {kw: {t: v["at_fa_per_hour"][t]["miss_rate"] for t in ("0.5", "1")}
                          for kw, v in report["keywords"].items()},
            "at_own_thresholds": own,
            "false_alarm_peaks": {"mean": float(np.mean(peaks)) if peaks else None,
                                  "max": max(peaks, default=None), "count": len(peaks)}}


def compare(before: Path, after: Path, cfg: Config, activations: Path,
            split_name: str = "val") -> dict:
    """``{"before": figures, "after": figures, "split": split_name}`` on the same held-out
    audio: the config's ``split_name`` split ("val" or "test").

    Raises:
        ValueError: another split name, or a split with no negative audio.
    """
    if split_name not in ("val", "test"):
        raise ValueError(f"split is {split_name!r}; allowed: 'val', 'test'")
    keywords, rate = cfg.model.keywords, cfg.frontend.sample_rate
    split = corpora.load_split(corpora.collect(cfg), split_name, keywords, rate)
    if not split.negatives:
        raise ValueError(f"the config's {split_name} split has no negative audio to count false "
                         "alarms on")
    positives = prepare_positives(split.positives, keywords, corpora.load_noise(cfg),
                                  VAL_SNR_DB, cfg.train.seed)
    clips = false_alarm_clips(activations, rate)
    result = {name: figures(folder, positives, split.negatives, clips)
              for name, folder in (("before", before), ("after", after))}
    return {**result, "split": split_name}


def markdown(report: dict) -> str:
    """:func:`compare`'s report (``before`` and ``after`` figures on its ``split``) as a table."""
    models = {name: report[name] for name in ("before", "after")}
    lines = ["| model | keyword | miss @0.5 FA/h | miss @1 FA/h | threshold | miss / FA/h at it |",
             "|---|---|---|---|---|---|"]
    for name, fig in models.items():
        for kw, miss in fig["miss_rate"].items():
            own = fig["at_own_thresholds"][kw]
            cells = [f"{100 * m:.1f}%" if m is not None else "-" for m in miss.values()]
            lines.append(f"| {name} | {kw} | {' | '.join(cells)} | {own['threshold']:g} | "
                         f"{100 * own['miss_rate']:.1f}% / {own['fa_per_hour']:.2f} |")
    peaks = "; ".join(f"{name}: mean {fig['false_alarm_peaks']['mean']:.3f}, max "
                      f"{fig['false_alarm_peaks']['max']:.3f}" for name, fig in models.items()
                      if fig["false_alarm_peaks"]["count"])
    hours = models["before"]["negative_hours"]
    return "\n".join(lines) + (f"\n\nHeld out ({report['split']} split): {hours:.2f} h of "
                               f"negatives. Scores on the labelled false alarms: {peaks}.\n")
