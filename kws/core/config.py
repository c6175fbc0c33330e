"""Configuration: frozen dataclasses loaded from one TOML file.

Every stage reads its settings from one of these dataclasses; nothing passes argparse namespaces or
nested dicts deeper than :func:`load_config`. Unknown keys and out-of-range values raise
:class:`ConfigError` naming the key, the bad value and what is allowed.

Example (see ``configs/default.toml`` for every field)::

    [frontend]
    n_mels = 40
    [model]
    keywords = ["alexa", "computer"]
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from kws.core.checks import ConfigError, build, check, check_keyword_name, is_number
from kws.core.corpus_paths import CORPUS_PREFIX, data_root, resolve_corpus
from kws.core.decision import DecisionRule

FRONTEND_KINDS = ("log_mel", "speech_embedding")
# what kind = "speech_embedding" computes (kws.embedding): 96 values per 80 ms from 782 ms of audio
SPEECH_EMBEDDING = {"sample_rate": 16000, "window_ms": 782.0, "hop_ms": 80.0, "n_mels": 96,
                    "mean_norm_ms": 0.0}


@dataclass(frozen=True)
class FrontendConfig:
    """Feature settings shared by training and runtime.

    Attributes:
        kind: "log_mel" (the filterbank below) or "speech_embedding": a pretrained speech
            embedding every 80 ms (:mod:`kws.embedding`), which needs exactly
            ``SPEECH_EMBEDDING`` below (its window, hop and size) and ignores the filterbank
            fields.
        sample_rate: audio rate in Hz; all audio is resampled to it.
        window_ms: analysis window length in milliseconds (Hann window).
        hop_ms: distance between frames in milliseconds.
        n_fft: FFT size in samples (>= window length).
        n_mels: number of mel bands (feature dimension).
        f_min, f_max: lowest and highest mel filter edge in Hz.
        log_floor: added to the mel energy before the natural log, so silence gives log(log_floor).
        mean_norm_ms: time constant in milliseconds of a running per-band mean that is subtracted
            from every log-mel frame (streaming mean normalisation; see :mod:`kws.frontend`).
            It makes features independent of the input gain, so a quiet speaker looks like a
            loud one. 0 turns it off.
    """

    sample_rate: int = 16000
    window_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float = 7600.0
    log_floor: float = 1e-6
    mean_norm_ms: float = 0.0
    kind: str = "log_mel"

    def __post_init__(self) -> None:
        check(self.kind in FRONTEND_KINDS, "frontend.kind", self.kind, " or ".join(FRONTEND_KINDS))
        if self.kind == "speech_embedding":
            wrong = {k: v for k, v in vars(self).items() if SPEECH_EMBEDDING.get(k, v) != v}
            check(not wrong, "frontend", wrong,
                  f"with kind = 'speech_embedding': {SPEECH_EMBEDDING}")
            return
        check(self.sample_rate in (8000, 16000), "frontend.sample_rate", self.sample_rate,
              "8000 or 16000")
        check(self.hop_ms > 0 and self.window_ms >= self.hop_ms, "frontend.window_ms",
              self.window_ms, f"a window at least as long as hop_ms ({self.hop_ms})")
        check(self.n_fft >= self.window_samples, "frontend.n_fft", self.n_fft,
              f">= window length in samples ({self.window_samples})")
        check(1 <= self.n_mels <= 128, "frontend.n_mels", self.n_mels, "1..128")
        check(0 <= self.f_min < self.f_max <= self.sample_rate / 2, "frontend.f_max", self.f_max,
              f"f_min < f_max <= {self.sample_rate / 2}")
        check(self.log_floor > 0, "frontend.log_floor", self.log_floor, "> 0")
        check(self.mean_norm_ms == 0 or self.mean_norm_ms >= self.hop_ms, "frontend.mean_norm_ms",
              self.mean_norm_ms, f"0 (off) or at least hop_ms ({self.hop_ms})")

    @property
    def window_samples(self) -> int:
        """Window length in samples (400 at 16 kHz, 25 ms)."""
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def hop_samples(self) -> int:
        """Hop length in samples (160 at 16 kHz, 10 ms)."""
        return int(round(self.sample_rate * self.hop_ms / 1000))


@dataclass(frozen=True)
class ModelConfig:
    """GRU keyword model.

    Attributes:
        keywords: keyword names; the model outputs one score per keyword plus "none" (class 0).
        stack_frames: feature frames stacked into one model step (3 frames of 10 ms = 30 ms steps).
        proj_dim: width of the linear projection (a strided convolution) before the GRU.
        hidden: GRU hidden units (the model's state size).
        dropout: dropout on the GRU output during training.
        members: the GRU is this many GRUs side by side, each reading its own
            ``proj_dim / members`` projections with ``hidden / members`` units (an ensemble
            merged by :mod:`kws.train.ensemble`); 1 is one GRU.
        auxiliary: keywords learnt beside ``keywords`` but never reported: each has a class
            (after those of ``keywords``), and the scores are the softmax over all classes with
            only ``keywords`` kept, so an auxiliary keyword counts as "not a keyword".
    """

    keywords: tuple[str, ...] = ("alexa", "computer", "jarvis", "snowboy")
    stack_frames: int = 3
    proj_dim: int = 64
    hidden: int = 64
    dropout: float = 0.1
    members: int = 1
    auxiliary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("keywords", "auxiliary"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            for kw in getattr(self, name):
                check_keyword_name(kw, f"model.{name}")
        every = self.keywords + self.auxiliary
        check(len(set(every)) == len(every), "model.auxiliary", self.auxiliary,
              f"distinct names, none of them in model.keywords {self.keywords}")
        check(len(self.keywords) >= 1 and len(set(self.keywords)) == len(self.keywords),
              "model.keywords", self.keywords, "one or more distinct names")
        check("none" not in self.keywords, "model.keywords", self.keywords,
              'names other than "none" (reserved for the background class)')
        check(1 <= self.stack_frames <= 8, "model.stack_frames", self.stack_frames, "1..8")
        check(self.proj_dim >= 1, "model.proj_dim", self.proj_dim, ">= 1")
        check(self.hidden >= 1, "model.hidden", self.hidden, ">= 1")
        check(0 <= self.dropout < 1, "model.dropout", self.dropout, "0 <= dropout < 1")
        check(1 <= self.members <= 16 and self.proj_dim % self.members == 0
              and self.hidden % self.members == 0, "model.members", self.members,
              f"1..16, dividing proj_dim ({self.proj_dim}) and hidden ({self.hidden})")


@dataclass(frozen=True)
class DataConfig:
    """Where the training audio comes from and how it is split.

    Paths are relative to the config file's folder unless absolute.

    Attributes:
        keyword_dirs: keyword name -> list of folders with one utterance per file.
        holdout: keyword name -> list of [first, last] file-number ranges kept for test
            (numbered files such as ``alexa/150.flac``).
        negative_dirs: folders of negative audio of any length (searched recursively).
        eval_negative_dirs: folders of long negative audio kept out of training (false alarms/hour).
        noise_dirs: folders of background noise for augmentation.
        confusable_dirs: folders of negatives made for these keywords (``kws synth``
            confusables): split and used like ``negative_dirs``, but never part of the feature
            cache that other keywords share (:mod:`kws.train.pool`).
        manifests: JSONL files with lines {"path", "label", "speaker", "split"}.
        val_fraction: share of speakers (a file without speaker is its own) used for validation.
        test_fraction: share of keyword speakers held out for test (besides holdout ranges).
        negative_test_fraction: share of negative speakers held out for test, so that false
            alarms per hour are measured on speech the model never heard.
        negative_val_fraction: share of negative speakers used for validation and the export's
            calibration table (default: ``val_fraction``); enough hours that the table resolves
            the budgets people ask for (2 h: one false alarm is 0.5 per hour).
        seed: split seed.
        synth_positives: synthetic renderings of each keyword (``kws synth``: every installed
            engine, voice transforms) added to the training split, never to validation or test;
            made by ``kws train`` into ``<run>/synth`` and reused. 0: real recordings only.
        synth_confusables: confusable synthetic negatives per keyword, training split only.
        auxiliary_dirs: other keywords' name -> folders of their real recordings. ``kws train
            --keyword PHRASE`` learns them beside the phrase (``model.auxiliary``), each with
            ``auxiliary_renderings`` renderings (made once in ``$KWS_CACHE/synth``), to learn
            how real voices differ from synthetic ones. Never the phrase's own recordings.
        auxiliary_renderings: synthetic renderings per auxiliary keyword (0: real only).
        auxiliary_skip_engines: TTS engines (``kws synth``'s names) that render the phrase but
            not the auxiliary keywords.
        auxiliary_render: "all" renders every one of the ``auxiliary_renderings``; "drawn"
            (with a feature pool) only those the pool draws and the validation split's, about
            40% (:func:`kws.train.pool.keyword_slots`; each draw keeps its law).
        corpus_root: where folders named ``corpus:NAME`` are (default: ``$KWS_DATA``, else
            ``~/kws-data``; ``kws data get`` puts corpora there).
    """

    keyword_dirs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    holdout: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    negative_dirs: tuple[str, ...] = ()
    eval_negative_dirs: tuple[str, ...] = ()
    noise_dirs: tuple[str, ...] = ()
    confusable_dirs: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    negative_test_fraction: float = 0.3
    negative_val_fraction: float | None = None
    seed: int = 0
    synth_positives: int = 0
    synth_confusables: int = 0
    auxiliary_dirs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    auxiliary_renderings: int = 1500
    auxiliary_skip_engines: tuple[str, ...] = ()
    auxiliary_render: str = "all"
    corpus_root: str = ""

    def __post_init__(self) -> None:
        for name in ("synth_positives", "synth_confusables", "auxiliary_renderings"):
            check(getattr(self, name) >= 0, f"data.{name}", getattr(self, name), ">= 0")
        check(self.auxiliary_render in ("all", "drawn"), "data.auxiliary_render",
              self.auxiliary_render, '"all" or "drawn"')
        for name in ("keyword_dirs", "auxiliary_dirs"):
            folders = dict(getattr(self, name))
            object.__setattr__(self, name, {k: tuple(v) for k, v in folders.items()})
        for kw in self.auxiliary_dirs:
            check_keyword_name(kw, "data.auxiliary_dirs")
        object.__setattr__(self, "holdout", {k: tuple(tuple(r) for r in v)
                                             for k, v in dict(self.holdout).items()})
        for name in ("negative_dirs", "eval_negative_dirs", "noise_dirs", "confusable_dirs",
                     "manifests", "auxiliary_skip_engines"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("val_fraction", "test_fraction", "negative_test_fraction",
                     "negative_val_fraction"):
            value = getattr(self, name)
            check(value is None and name == "negative_val_fraction" or is_number(value)
                  and 0 <= value < 0.5, f"data.{name}", value, "0 <= x < 0.5")
        negative_val = self.val_fraction if self.negative_val_fraction is None \
            else self.negative_val_fraction
        check(negative_val + self.negative_test_fraction < 1, "data.negative_val_fraction",
              negative_val, f"a share that leaves negatives for training (test takes "
              f"{self.negative_test_fraction})")
        for kw, ranges in self.holdout.items():
            for r in ranges:
                check(len(r) == 2 and r[0] <= r[1], f"data.holdout.{kw}", list(r),
                      "[first, last] with first <= last")


@dataclass(frozen=True)
class AugmentConfig:
    """Waveform and feature augmentation applied on the fly during training.

    Attributes:
        snr_db: (low, high) SNR range in dB for noise mixing.
        noise_prob: probability of mixing noise into a training sequence.
        gain_db: (low, high) gain range in dB.
        speed: (low, high) speed factor range (resampling, changes pitch and tempo).
        tempo: (low, high) keyword clips' tempo after ``speed`` (WSOLA: pitch, formants kept).
        vtlp: (low, high) keyword clips' vocal tract length (formants move, pitch, timing stay).
        background_speed: (low, high) ``speed`` for each background speech segment, so a raised
            or lowered voice is no keyword cue; (1, 1) draws nothing.
        reverb_prob: probability of convolving with a simulated room impulse response.
        n_rirs: number of simulated impulse responses cached per run.
        time_mask: maximum width (frames) of one SpecAugment time mask; 0 disables.
        freq_mask: maximum width (bands) of one SpecAugment frequency mask; 0 disables.
        eq_prob: probability of a channel colour (``augment.random_eq``) after noise and gain.
        eq_db: largest gain of that colour's curve, in dB.
    """

    snr_db: tuple[float, float] = (0.0, 20.0)
    noise_prob: float = 0.8
    gain_db: tuple[float, float] = (-12.0, 6.0)
    speed: tuple[float, float] = (0.9, 1.1)
    tempo: tuple[float, float] = (1.0, 1.0)
    vtlp: tuple[float, float] = (1.0, 1.0)
    background_speed: tuple[float, float] = (1.0, 1.0)
    reverb_prob: float = 0.3
    n_rirs: int = 64
    time_mask: int = 10
    freq_mask: int = 6
    eq_prob: float = 0.0
    eq_db: float = 8.0

    def __post_init__(self) -> None:
        for name in ("snr_db", "gain_db", "speed", "tempo", "vtlp", "background_speed"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            check(len(value) == 2 and all(map(is_number, value)) and value[0] <= value[1],
                  f"augment.{name}", list(value), "[low, high], finite, with low <= high")
        for name in ("speed", "tempo", "vtlp", "background_speed"):
            low, high = getattr(self, name)
            check(low > 0.5 and high < 2, f"augment.{name}", [low, high],
                  "factors between 0.5 and 2")
        for name in ("noise_prob", "reverb_prob", "eq_prob"):
            check(0 <= getattr(self, name) <= 1, f"augment.{name}", getattr(self, name), "0..1")
        check(0 <= self.eq_db <= 20, "augment.eq_db", self.eq_db, "0..20 dB")


NEGATIVE_DRAWS = ("file", "duration")
SELECTIONS = ("validation", "last")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: maximum number of epochs.
        sequences_per_epoch: training sequences drawn per epoch.
        sequence_s: length of one training sequence in seconds (keywords inside negative speech).
        positive_share: share of sequences that contain a keyword.
        negative_draw: how background speech is drawn from the negative recordings: "file"
            (every file equally likely, so many short clips outweigh a few long ones) or
            "duration" (every second equally likely).
        batch_size: sequences per batch.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        patience: epochs without improvement of the validation miss rate before stopping.
        select: which epoch's weights ``best.pt`` keeps: "validation" (lowest validation miss
            rate) or "last" (the last epoch: for synthetic positives, whose validation miss rate
            does not rank epochs for real voices; no early stop).
        average_epochs: 0 or 1 keeps the selected epoch's weights. N > 1 (with select = "last")
            keeps the mean of the weights after each of the last N epochs (stochastic weight
            averaging over the learning rate's tail); the checkpoint to resume from keeps the
            last epoch's own weights.
        target_fa_per_hour: false-alarm rate at which validation miss rate is measured.
        seed: seed for weights, data order and augmentation.
        feature_pool: 0 draws fresh sequences for every batch. N > 0 draws N sequences once,
            keeps their features and samples every batch from them: for frontends too slow to
            run on every batch (the speech embedding computes about 40x real time per core).
        members: 1 trains one model. N > 1 trains N members (seeds seed..seed+N-1, one shared
            feature pool) in ``member-<i>`` folders and merges them exactly into one model with
            N times the units that outputs their mean logits (:mod:`kws.ensemble`): fewer rare
            high-scoring false alarms, N times the training time.
        distill_weight: for ``kws distill`` students, the weight of the cross-entropy towards
            the teacher's probabilities next to the labels' loss (:mod:`kws.train.distill`).
        hard_negatives: 0 trains one round. N > 0 (with a feature pool) then mines the N
            moments of the training negatives the first round's (merged) model scores highest,
            adds a sequence around each to the pool and trains every member on from its weights
            for ``hard_negative_epochs`` epochs at a tenth of ``lr`` (:mod:`kws.train.mining`).
        hard_negative_epochs: epochs of that second round.
        auxiliary_share: share of the keyword sequences whose keyword is one of
            ``model.auxiliary`` (drawn evenly among them); the rest are ``model.keywords``.
        auxiliary_real_share: an auxiliary keyword's clip is one of its real recordings (those
            below ``data.auxiliary_dirs``) with this probability, else one of its renderings;
            absent: drawn uniformly over all its clips (real ones are then 4-25% of draws).
    """

    epochs: int = 30
    sequences_per_epoch: int = 2000
    sequence_s: float = 4.0
    positive_share: float = 0.5
    negative_draw: str = "file"
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 8
    select: str = "validation"
    average_epochs: int = 0
    target_fa_per_hour: float = 0.5
    seed: int = 0
    feature_pool: int = 0
    members: int = 1
    distill_weight: float = 1.0
    hard_negatives: int = 0
    hard_negative_epochs: int = 4
    auxiliary_share: float = 0.5
    auxiliary_real_share: float | None = None

    def __post_init__(self) -> None:
        check(0 <= self.auxiliary_share < 1, "train.auxiliary_share", self.auxiliary_share,
              "0 <= x < 1")
        check(self.auxiliary_real_share is None or is_number(self.auxiliary_real_share)
              and 0 <= self.auxiliary_real_share <= 1,
              "train.auxiliary_real_share", self.auxiliary_real_share, "0..1, or absent")
        check(1 <= self.members <= 16, "train.members", self.members, "1..16")
        check(self.feature_pool == 0 or self.feature_pool >= self.batch_size, "train.feature_pool",
              self.feature_pool, f"0 (off) or >= batch_size ({self.batch_size})")
        check(self.epochs >= 1, "train.epochs", self.epochs, ">= 1")
        check(self.sequences_per_epoch >= self.batch_size >= 1, "train.sequences_per_epoch",
              self.sequences_per_epoch, f">= batch_size ({self.batch_size})")
        check(1.0 <= self.sequence_s <= 30.0, "train.sequence_s", self.sequence_s, "1..30 s")
        check(0 < self.positive_share < 1, "train.positive_share", self.positive_share, "0 < x < 1")
        check(self.negative_draw in NEGATIVE_DRAWS, "train.negative_draw", self.negative_draw,
              " or ".join(f'"{d}"' for d in NEGATIVE_DRAWS))
        check(self.lr > 0, "train.lr", self.lr, "> 0")
        check(self.patience >= 1, "train.patience", self.patience, ">= 1")
        check(self.select in SELECTIONS, "train.select", self.select,
              " or ".join(f'"{s}"' for s in SELECTIONS))
        check(0 <= self.average_epochs <= self.epochs and (self.average_epochs <= 1
                                                           or self.select == "last"),
              "train.average_epochs", self.average_epochs,
              f'0..epochs ({self.epochs}), and > 1 only with select = "last"')
        check(self.target_fa_per_hour > 0, "train.target_fa_per_hour", self.target_fa_per_hour,
              "> 0")
        check(self.distill_weight >= 0, "train.distill_weight", self.distill_weight, ">= 0")
        check(self.hard_negatives >= 0, "train.hard_negatives", self.hard_negatives, ">= 0")
        check(self.hard_negatives == 0 or self.feature_pool > 0, "train.hard_negatives",
              self.hard_negatives, "0 without a feature pool (mined sequences join the pool)")
        check(self.hard_negative_epochs >= 1, "train.hard_negative_epochs",
              self.hard_negative_epochs, ">= 1")


@dataclass(frozen=True)
class Config:
    """The whole run configuration; ``root`` is the folder relative paths are resolved against."""

    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decision: DecisionRule = field(default_factory=DecisionRule)
    root: Path = Path(".")

    def resolve(self, path: str | Path) -> Path:
        """``path`` if absolute, else relative to the config file's folder; ``corpus:NAME/SUB``
        is ``NAME/SUB`` in the data root (:func:`data_root`)."""
        if str(path).startswith(CORPUS_PREFIX):
            root = self.resolve(self.data.corpus_root) if self.data.corpus_root else data_root()
            return resolve_corpus(str(path), root)
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.root / p)


_SECTIONS = {"frontend": FrontendConfig, "model": ModelConfig, "data": DataConfig,
             "augment": AugmentConfig, "train": TrainConfig, "decision": DecisionRule}


def config_from_dict(raw: Mapping[str, Any], root: Path = Path(".")) -> Config:
    """Build a :class:`Config` from a parsed TOML mapping (sections as in ``_SECTIONS``)."""
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; allowed: {sorted(_SECTIONS)}")
    parts = {name: build(cls, raw.get(name, {}), name) for name, cls in _SECTIONS.items()}
    check(not parts["decision"].thresholds, "decision.thresholds", parts["decision"].thresholds,
          "none in a run config: kws export calibrates them (kws detect --threshold overrides)")
    return Config(root=root, **parts)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML run configuration.

    Raises:
        ConfigError: the file is missing, not valid TOML, or holds an unknown key or bad value.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    return config_from_dict(raw, root=path.resolve().parent)


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (for manifests and run records)."""
    out = dataclasses.asdict(obj)
    out.pop("root", None)
    return out
