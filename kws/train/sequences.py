"""Training sequences: long audio with negative speech and, sometimes, one keyword inside.

A sequence is ``sequence_s`` seconds (e.g. 4 s) of negative speech segments (or near silence),
optionally with one keyword clip placed so that its end falls inside the sequence, then reverb,
noise (recorded, colored or babble) at a random SNR and a random gain. Some negative sequences
hold only the first half of a keyword, so the model learns to wait for the end of the word.
The keyword's start and end (energy endpoint of the clean clip) travel with the sequence; the loss
in :mod:`kws.train.loss` uses them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.core import mixing
from kws.core.audio import speech_bounds
from kws.core.config import AugmentConfig
from kws.data.corpora import Clips, inside, rendering_number
from kws.train import augment

log = logging.getLogger(__name__)
PARTIAL_KEYWORD_SHARE = 0.15  # of negative sequences: the first half of a keyword clip
SILENT_SHARE = 0.15  # of sequences: no background speech, only what noise mixing adds
GAP_S = 0.1  # silence kept around a placed keyword (the clip itself carries 0.15 s margins)
CANDIDATES = 16  # rendering numbers a slot names (each misses the training split 20% of the time)


@dataclass(frozen=True)
class Sequence:
    """One training sequence.

    Attributes:
        wave: ``(n_samples,)`` float32.
        label: 0 for none, ``1 + keyword index`` for a keyword.
        start_s, end_s: the keyword's voiced part in seconds (0, 0 when ``label == 0``).
    """

    wave: np.ndarray
    label: int
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass(frozen=True)
class Slot:
    """What one feature-pool sequence holds, drawn ahead from a seed of its own
    (:func:`kws.train.pool.keyword_slots`), so which renderings training will use is known
    before any is made (:func:`kws.synth.synthesize.synthetic_config` renders only those).

    Attributes:
        kind: "positive", "partial" (a keyword's first half, in a negative) or "negative".
        auxiliary: index among the auxiliary keywords, or -1 (the run's own keywords).
        real: uniform in [0, 1): one of the auxiliary keyword's real recordings when below its
            real share, which picks it too (``int(real / share * n_real)``).
        renderings: rendering numbers (:func:`kws.data.corpora.rendering_number`), in order:
            the first one among the keyword's training clips is used (a number can be in
            another split, or its rendering rejected).
    """

    kind: str
    auxiliary: int = -1
    real: float = 0.0
    renderings: tuple[int, ...] = ()


def draw_slot(rng: np.random.Generator, positive_share: float, partial_share: float,
              n_auxiliary: int, auxiliary_share: float) -> Slot:
    """A :class:`Slot` without renderings: positive with ``positive_share``, else partial with
    ``partial_share``; a keyword of either kind is auxiliary with ``auxiliary_share`` (one of
    ``n_auxiliary``, evenly)."""
    kind = "positive" if rng.random() < positive_share else \
        "partial" if rng.random() < partial_share else "negative"
    if kind == "negative" or not n_auxiliary or rng.random() >= auxiliary_share:
        return Slot(kind)
    return Slot(kind, int(rng.integers(n_auxiliary)), float(rng.random()))


class SequenceMaker:
    """Draws random training sequences from decoded clips; see the module docstring."""

    def __init__(self, clips: Clips, keywords: tuple[str, ...], noise: list[np.ndarray],
                 rirs: list[np.ndarray], aug: AugmentConfig, sequence_s: float,
                 positive_share: float, sample_rate: int = 16000,
                 negative_draw: str = "file",
                 partial_share: float = PARTIAL_KEYWORD_SHARE,
                 auxiliary: tuple[str, ...] = (), auxiliary_share: float = 0.0,
                 real_share: float | None = None, real_roots: tuple[Path, ...] = (),
                 renderings: float = 0.0) -> None:
        """``auxiliary`` keywords (labels after those of ``keywords``) are drawn for
        ``auxiliary_share`` of the keyword clips, evenly among them. An auxiliary keyword's clip
        comes from its real recordings (the clips below ``real_roots``) with probability
        ``real_share`` and from its other clips (renderings) otherwise; ``None`` draws
        uniformly over all its clips: in a :class:`Slot`, over its real recordings and the
        ``renderings`` (expected count) that a full rendering puts in the training split."""
        keywords = tuple(keywords) + tuple(auxiliary)
        missing = [kw for kw in keywords if not clips.positives.get(kw)]
        if missing:
            raise ValueError(f"no training clips for keyword(s) {missing}")
        if not clips.negatives:
            raise ValueError("no negative training audio")
        self.keywords, self.noise, self.rirs, self.aug = keywords, noise, rirs, aug
        self.n = int(sequence_s * sample_rate)
        self.sr = sample_rate
        self.positive_share, self.partial_share = positive_share, partial_share
        self.n_auxiliary, self.auxiliary_share = len(auxiliary), auxiliary_share
        self.negatives = [w for _, w in clips.negatives]
        # "duration": a file is drawn with probability proportional to its length
        self.negative_ends = np.cumsum([len(w) if negative_draw == "duration" else 1
                                        for w in self.negatives])
        self.positives = []  # per keyword: list of (trimmed clip, voiced start s, voiced end s)
        margin = int(0.15 * sample_rate)
        for kw in keywords:
            items = []
            for _, wave in clips.positives[kw]:
                start, end = speech_bounds(wave, sample_rate)
                a = max(0, int(start * sample_rate) - margin)
                b = min(len(wave), int(end * sample_rate) + margin)
                items.append((wave[a:b], start - a / sample_rate, end - a / sample_rate))
            self.positives.append(items)
        self.real_share, self.renderings = real_share, renderings
        self.real_split = []  # per auxiliary keyword: indices of its real clips, of the others
        self.rendered = []  # per auxiliary keyword: rendering number -> index of its clip
        for kw in auxiliary:
            real = [inside(path, list(real_roots)) for path, _ in clips.positives[kw]]
            self.real_split.append(([i for i, r in enumerate(real) if r],
                                    [i for i, r in enumerate(real) if not r]))
            numbers = [None if r else rendering_number(path)
                       for r, (path, _) in zip(real, clips.positives[kw])]
            self.rendered.append({number: i for i, number in enumerate(numbers)
                                  if number is not None})
            log.info("%s: %d real clips, %d renderings", kw, sum(real), len(real) - sum(real))

    def background(self, rng: np.random.Generator) -> np.ndarray:
        """Negative speech segments at random levels with short gaps, ``(n,)``."""
        out = np.zeros(self.n, dtype=np.float32)
        if rng.random() < SILENT_SHARE:
            return out
        pos = int(rng.integers(0, self.sr // 2))
        while pos < self.n:
            src = self.negatives[int(np.searchsorted(
                self.negative_ends, rng.integers(self.negative_ends[-1]), side="right"))]
            length = min(len(src), int(rng.uniform(0.5, 3.0) * self.sr), self.n - pos)
            speed = (rng.uniform(*self.aug.background_speed)  # as with tempo: no draw when off
                     if self.aug.background_speed != (1.0, 1.0) else 1.0)
            take = max(1, min(len(src), int(length * speed)))  # = length at speed 1
            seg = augment.change_speed(mixing.fit_length(src, take, rng), speed)[:length]
            length = len(seg)
            out[pos:pos + length] = seg * np.float32(10 ** (rng.uniform(-35, -15) / 20)
                                                     / mixing.rms(seg))
            pos += length + int(rng.uniform(0.0, 0.6) * self.sr)
        return out

    def keyword(self, rng: np.random.Generator, slot: Slot | None = None
                ) -> tuple[int, np.ndarray, float, float]:
        """A random keyword clip (the auxiliary one ``slot`` names, if it names one) after
        speed, tempo, vocal tract length and level changes: (index, clip, start_s, end_s)."""
        n = len(self.keywords) - self.n_auxiliary
        if slot is not None and slot.auxiliary >= 0:
            k = n + slot.auxiliary
            index = self.slot_index(slot)
        else:
            # ">= 1 - share" (not "< share"): the draws the measured models were trained with
            if slot is None and self.n_auxiliary and rng.random() >= 1 - self.auxiliary_share:
                k = n + int(rng.integers(self.n_auxiliary))
            else:  # without auxiliary keywords nothing more is drawn than before they existed
                k = int(rng.integers(n))
            index = self.clip_index(k, rng)
        clip, start, end = self.positives[k][index]
        speed = rng.uniform(*self.aug.speed)
        clip = augment.change_speed(clip, speed)
        tempo = 1.0
        if self.aug.tempo != (1.0, 1.0):  # no draw: runs without tempo keep their random stream
            tempo = rng.uniform(*self.aug.tempo)
            clip = augment.change_tempo(clip, tempo)
        factor = speed * tempo
        if self.aug.vtlp != (1.0, 1.0):  # as with tempo: no draw when off
            clip = augment.vtlp(clip, rng.uniform(*self.aug.vtlp), self.sr)
        clip = clip * np.float32(10 ** (rng.uniform(-30, -12) / 20) / mixing.rms(clip))
        return k, clip, start / factor, end / factor

    def slot_index(self, slot: Slot) -> int:
        """Which clip of the auxiliary keyword ``slot`` names to use: a real recording with the
        real share (``real_share``, else real / (real + ``renderings``)), else the first of its
        renderings that is here; a real one when none is.

        Raises:
            ValueError: neither a real recording nor a named rendering is among the clips.
        """
        real, _ = self.real_split[slot.auxiliary]
        rendered = self.rendered[slot.auxiliary]
        if not rendered:  # no numbered rendering (clips named otherwise): uniform over all
            return int(slot.real * len(self.real_split[slot.auxiliary][1] + real))
        share = self.real_share if self.real_share is not None else \
            len(real) / max(1e-9, len(real) + self.renderings)
        chosen = next((rendered[r] for r in slot.renderings if r in rendered), None)
        if real and (slot.real < share or chosen is None):
            u = slot.real / share if slot.real < share else slot.real  # uniform in [0, 1)
            return real[int(u * len(real))]
        if chosen is None:
            name = self.keywords[len(self.keywords) - self.n_auxiliary + slot.auxiliary]
            raise ValueError(f"auxiliary keyword {name!r}: none of the renderings "
                             f"{list(slot.renderings)} is among its training clips, and it has "
                             "no real recording")
        return chosen

    def clip_index(self, k: int, rng: np.random.Generator) -> int:
        """Which clip of keyword ``k`` to use: uniform, or real with ``real_share`` for an
        auxiliary keyword that has both real clips and renderings."""
        n = len(self.keywords) - self.n_auxiliary
        if self.real_share is not None and k >= n and all(self.real_split[k - n]):
            group = self.real_split[k - n][0 if rng.random() < self.real_share else 1]
            return group[int(rng.integers(len(group)))]
        return int(rng.integers(len(self.positives[k])))

    def place(self, wave: np.ndarray, clip: np.ndarray, offset: int) -> None:
        """Silence the background around ``offset`` and add ``clip`` there (in place)."""
        gap = int(GAP_S * self.sr)
        wave[max(0, offset - gap):min(self.n, offset + len(clip) + gap)] = 0.0
        part = clip[: self.n - offset]
        wave[offset:offset + len(part)] += part

    def make(self, rng: np.random.Generator, slot: Slot | None = None) -> Sequence:
        """Draw one augmented sequence (of the kind and auxiliary clip ``slot`` says)."""
        wave = self.background(rng)
        label, start_s, end_s = 0, 0.0, 0.0
        if slot is None:
            kind = "positive" if rng.random() < self.positive_share else \
                "partial" if rng.random() < self.partial_share else "negative"
        else:
            kind = slot.kind
        if kind == "positive":
            k, clip, start, end = self.keyword(rng, slot)
            end_sample = int(end * self.sr)
            latest = self.n - int(0.3 * self.sr)  # leave time after the keyword to fire
            end_at = int(rng.integers(min(end_sample, latest - 1), latest))
            cut = max(0, end_sample - end_at)  # a keyword longer than the room is cut in front
            offset = end_at - end_sample + cut
            self.place(wave, clip[cut:], offset)
            label = k + 1
            start_s = max(0.0, (offset - cut) / self.sr + start)
            end_s = end_at / self.sr
        elif kind == "partial":
            _, clip, start, end = self.keyword(rng, slot)
            cut = int((start + rng.uniform(0.3, 0.55) * (end - start)) * self.sr)
            self.place(wave, clip[:cut], int(rng.integers(0, max(1, self.n - cut))))
        return Sequence(self.finish(wave, rng), label, start_s, end_s)

    def make_negative(self, rng: np.random.Generator) -> Sequence:
        """Draw one augmented sequence of background alone (no keyword material)."""
        return Sequence(self.finish(self.background(rng), rng), 0)

    def finish(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Reverb, noise, gain and channel colour over the whole sequence."""
        if self.rirs and rng.random() < self.aug.reverb_prob:
            wave = augment.reverberate(wave, self.rirs[int(rng.integers(len(self.rirs)))])
        if rng.random() < self.aug.noise_prob:
            noise = self.draw_noise(rng)
            level = mixing.rms(wave)
            if level < 1e-4:  # nothing to measure an SNR against: noise at a speech-like level
                wave = wave + noise * np.float32(10 ** (rng.uniform(-50, -25) / 20))
            else:
                # loudest-frame SNR, as the evaluation measures it
                wave = mixing.mix_at_snr(wave, noise, rng.uniform(*self.aug.snr_db), "peak")
        else:
            wave = wave + 1e-4 * rng.standard_normal(self.n).astype(np.float32)
        wave = augment.gain_db(wave, rng.uniform(*self.aug.gain_db))
        if self.aug.eq_prob > 0 and rng.random() < self.aug.eq_prob:
            wave = augment.random_eq(wave, rng, self.aug.eq_db)
        return wave

    def draw_noise(self, rng: np.random.Generator) -> np.ndarray:
        """Unit-RMS noise: a recording, colored noise or babble, ``(n,)``."""
        kind = rng.random()
        if self.noise and kind < 0.5:
            noise = mixing.fit_length(self.noise[int(rng.integers(len(self.noise)))], self.n, rng)
            return noise / np.float32(mixing.rms(noise))
        if kind < 0.8:
            return augment.colored_noise(self.n, float(rng.uniform(0, 2)), rng)
        return augment.babble(self.n, self.negatives, rng)
