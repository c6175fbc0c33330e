"""Synthetic keyword speech: positives and confusable negatives from the installed TTS engines.

Voices are drawn round-robin across the engines of :mod:`kws.tts` (espeak-ng accents and
variants, flite, festival and hibari voices, piper voices), with rate and pitch varied. Half of
the espeak-ng renderings say the keyword as people also do (an unstressed vowel reduced
differently, a later consonant voiced: "computuh", "compuder"). Every rendering gets voice-level
augmentation (vocal tract length perturbation, speed) and is rejected when broken (silent,
clipped, too short or too long).

Confusable negatives come from the keyword's espeak-ng phonemes: its first or last part alone,
one consonant or stressed vowel changed, a rhyme (new onset), each word of a phrase inside other
sentences; never the keyword as people say it. Plus as many ordinary sentences, spoken by every
engine (so that no engine's voice alone means "keyword").
``kws synth`` writes ``positive/``, ``confusable/``, a JSONL manifest and a report of what it
made and rejected, the engines it used and their licences.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np

from kws import tts
from kws.tts import Voice, render

log = logging.getLogger(__name__)

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# hibari's one voice (about 250 Hz) made into other speakers: formants 0.77-1.18x, pitch about
# tract ** -2.5 (a child near 370 Hz, a man near 130 Hz)
HIBARI_TRACT = (0.85, 1.3)
SENTENCES = (
    "please turn on the kitchen light", "what time is it right now", "the weather looks nice",
    "I will call you back later", "can you play some music", "we need more milk and bread",
    "the meeting starts at nine", "open the window a little", "my phone is almost empty",
    "let us go for a walk", "the train was late again", "how far is the station",
    "remind me to water the plants", "set a timer for ten minutes", "the movie was too long",
    "I left my keys on the table", "it is going to rain tomorrow", "turn the volume down",
    "did you feed the cat", "the children are asleep", "tell me a short story",
    "close the garage door", "the coffee is still hot", "I think we are lost",
)


def demo_clip(parts: list[tuple[Voice, str]], gap_s: float = 0.8,
              sample_rate: int = 16000) -> np.ndarray:
    """Phrases spoken one after another with silence between, peak-normalized to -3 dBFS."""
    gap = np.zeros(int(gap_s * sample_rate), np.float32)
    pieces = [gap]
    for voice, text in parts:
        pieces += [render(voice, text, sample_rate), gap]
    wave = np.concatenate(pieces)
    return (wave * (0.7 / max(1e-6, float(np.abs(wave).max())))).astype(np.float32)


def espeak_variants() -> list[str]:
    """espeak-ng voice variant names (``+name`` suffixes)."""
    proc = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True)
    names = [line.split()[-1].split("/")[-1] for line in proc.stdout.splitlines()[1:]]
    return sorted(n for n in names if n and n.isascii())


def voices(count: int, rng: np.random.Generator, engines: list[str]) -> list[Voice]:
    """``count`` voices drawn round-robin across engines, then across each engine's voices
    (espeak-ng: accent x variant), rates (110-200 words per minute) and pitches; every hibari
    voice is also a new speaker (:data:`HIBARI_TRACT`)."""
    names = tts.engine_voices()
    variants = espeak_variants() if "espeak-ng" in engines else []
    names["flite"] = list(FLITE_VOICES)
    names["espeak-ng"] = [f"{a}+{v}" if v else a for a in ESPEAK_ACCENTS for v in variants or [""]]
    out = []
    for i in range(count):
        engine = engines[i % len(engines)]
        choices = names[engine]
        voice = Voice(engine, choices[int(rng.integers(len(choices)))],
                      int(rng.integers(110, 200)), int(rng.integers(20, 80)))
        if engine == "hibari":  # a new speaker: vocal tract length, and a pitch to go with it
            tract = float(rng.uniform(*HIBARI_TRACT))
            f0 = tract ** -2.5 * float(rng.uniform(0.85, 1.15))
            voice = replace(voice, f0=round(f0, 3), tract=round(tract, 3))
        out.append(voice)
    return out


def vtlp(wave: np.ndarray, alpha: float, sample_rate: int = 16000) -> np.ndarray:
    """Vocal tract length perturbation: warp the STFT frequency axis by ``alpha`` (formants
    move, timing stays), piecewise linear above 4.8 kHz so the band edge stays put."""
    from scipy.signal import istft, stft

    _, _, spec = stft(wave, fs=sample_rate, nperseg=512, noverlap=384)
    bins = np.arange(spec.shape[0], dtype=float)
    edge = 0.6 * (spec.shape[0] - 1)
    source = np.where(bins <= edge * min(alpha, 1), bins / alpha,
                      edge / alpha + (bins - edge) * (spec.shape[0] - 1 - edge / alpha)
                      / max(1e-6, spec.shape[0] - 1 - edge))
    source = np.clip(source, 0, spec.shape[0] - 1)
    warped = np.stack([np.interp(source, bins, spec[:, t].real)
                       + 1j * np.interp(source, bins, spec[:, t].imag)
                       for t in range(spec.shape[1])], axis=1)
    _, out = istft(warped, fs=sample_rate, nperseg=512, noverlap=384)
    return out[:len(wave)].astype(np.float32)


def broken(wave: np.ndarray, sample_rate: int = 16000, min_s: float = 0.2,
           max_s: float = 4.0) -> str | None:
    """Why a rendering is unusable (None if it is fine)."""
    seconds = len(wave) / sample_rate
    if seconds < min_s or seconds > max_s:
        return f"length {seconds:.2f} s outside {min_s}-{max_s} s"
    if float(np.sqrt(np.mean(np.square(wave)))) < 1e-3:
        return "silent"
    if np.mean(np.abs(wave) >= 0.999) > 1e-3:
        return "clipped"
    return None


def phonemes(text: str) -> str:
    """espeak-ng phoneme mnemonics of ``text`` (e.g. computer -> k@mpj'u:t3)."""
    proc = subprocess.run(["espeak-ng", "-q", "-x", text], capture_output=True, text=True)
    return proc.stdout.strip()


VOWELS = ("a", "e", "i", "o", "u", "@", "3", "A", "E", "I", "O", "U", "V", "aI", "eI", "oU",
          "aU", "OI", "i:", "u:", "A:", "O:", "3:", "A@", "e@", "I@", "O@", "U@", "a#")
REDUCED = ("@", "3", "I", "V", "a#", "U")  # vowels an unstressed syllable is said with
STRESS = ("'", ",")  # espeak-ng marks a stressed vowel with one of these just before it
VOICING = ({"p", "b"}, {"t", "d"}, {"k", "g"}, {"s", "z"}, {"f", "v"}, {"T", "D"},
           {"tS", "dZ"})  # pairs people blur (American "computer" has a "d")
CONSONANTS = ("p", "b", "t", "d", "k", "g", "m", "n", "s", "z", "f", "v", "l", "r", "w", "h",
              "S", "T", "D", "dZ", "tS")


def phoneme_units(flat: str) -> list[str]:
    """espeak-ng mnemonics split into phonemes and stress marks (longest match first)."""
    units = sorted(VOWELS + CONSONANTS + STRESS, key=len, reverse=True)
    out, i = [], 0
    while i < len(flat):
        unit = next((u for u in units if flat.startswith(u, i)), flat[i])
        out.append(unit)
        i += len(unit)
    return out


def pronunciations(phrase: str, rng: np.random.Generator, count: int) -> list[str]:
    """``count`` espeak-ng phoneme texts of ``phrase`` as people also say it: one unstressed
    vowel reduced differently ("cumputer", "computuh") or one consonant voiced or devoiced
    ("compuder")."""
    toks = phoneme_units(phonemes(phrase).replace("_", "").replace(" ", ""))
    twin = {a: b for pair in VOICING for a in pair for b in pair if a != b}
    first = next((j for j, t in enumerate(toks) if t not in STRESS), 0)
    places = [j for j, t in enumerate(toks) if (t in twin and j > first) or  # not "gomputer"
              (t in REDUCED and not (j > 0 and toks[j - 1] in STRESS))]
    out = []
    for _ in range(count):
        if not places:
            break
        j = places[int(rng.integers(len(places)))]
        others = [twin[toks[j]]] if toks[j] in twin else [v for v in REDUCED if v != toks[j]]
        out.append("[[" + "".join(toks[:j] + [others[int(rng.integers(len(others)))]]
                                  + toks[j + 1:]) + "]]")
    return out


def confusable_texts(phrase: str, rng: np.random.Generator, count: int) -> list[str]:
    """Texts (``[[phonemes]]`` for espeak-ng, or words) that sound close to ``phrase``: its
    first or second half, one consonant (not its voicing twin) or stressed vowel swapped, a
    rhyme; for a phrase of several words, each word alone and inside ordinary sentences. Never
    the phrase itself, stress marks aside."""
    toks = phoneme_units(phonemes(phrase).replace("_", "").replace(" ", ""))
    unstressed = "".join(t for t in toks if t not in STRESS)
    out: set[str] = set()

    def add(parts: list[str]) -> None:
        if "".join(t for t in parts if t not in STRESS) not in ("", unstressed):
            out.add("[[" + "".join(parts) + "]]")

    add(toks[:max(2, len(toks) // 2)])
    add(toks[len(toks) // 2:])
    words = phrase.split()
    if len(words) > 1:  # each word alone, and inside other sentences (never the whole phrase)
        for word in words:
            out.add(word)
            for sentence in rng.choice(SENTENCES, size=3, replace=False):
                parts = sentence.split()
                pos = int(rng.integers(len(parts) + 1))
                out.add(" ".join(parts[:pos] + [word] + parts[pos:]))
    phones = [j for j, t in enumerate(toks) if t in VOWELS or t in CONSONANTS]
    first_vowel = next((j for j, t in enumerate(toks) if t in VOWELS), 0)
    for _ in range(count * 3):
        if len(out) >= count or not phones:
            break
        j = phones[int(rng.integers(len(phones)))]
        unit = toks[j]
        group = VOWELS if unit in VOWELS else CONSONANTS
        new = group[int(rng.integers(len(group)))]
        # an unstressed vowel changed ("cumputer", "computuh") or a voicing swap ("compuder")
        # is still the keyword as people say it, not a confusable
        stressed = j > 0 and toks[j - 1] in STRESS
        if new != unit and not (unit in VOWELS and not stressed) and {unit, new} not in VOICING:
            add(toks[:j] + [new] + toks[j + 1:])
        if rng.random() < 0.3:  # rhyme: a new onset before the first vowel
            onset = CONSONANTS[int(rng.integers(len(CONSONANTS)))]
            if {"".join(toks[:first_vowel]), onset} not in VOICING:
                add([onset] + toks[first_vowel:])
    return sorted(out)[:count]


def synthesize(phrase: str, out: Path, count: int, seed: int = 0,
               confusables: int | None = None) -> dict:
    """Write ``count`` positive renderings of ``phrase`` and confusable negatives to ``out``.

    Returns the report (also written to ``out/report.json``).
    """
    import json

    import soundfile

    from kws.augment import change_speed

    engines = tts.available()
    if not engines:
        raise RuntimeError("no TTS engine found: " + "; ".join(tts.INSTALL_HINT.values()))
    rng = np.random.default_rng(seed)
    n_conf = confusables if confusables is not None else count
    near = confusable_texts(phrase, rng, max(1, n_conf // 2))
    texts = [near[i % len(near)] for i in range(n_conf // 2)]
    texts += [SENTENCES[int(rng.integers(len(SENTENCES)))] for _ in range(n_conf - len(texts))]
    spelled = [t for t in texts if t.startswith("[[")]  # espeak-ng phoneme input
    plain = [t for t in texts if not t.startswith("[[")]
    phoneme_engines = [e for e in engines if e in tts.SPELLS_PHONEMES]
    jobs = [("positive", phrase, v) for v in voices(count, rng, engines)]
    # half of the renderings by an engine that reads phonemes say the phrase as people also do
    said = iter(pronunciations(phrase, rng, count))
    jobs = [(kind, next(said, text) if v.engine in tts.SPELLS_PHONEMES and i % 2 else text, v)
            for i, (kind, text, v) in enumerate(jobs)]
    if phoneme_engines:
        jobs += [("confusable", t, v) for t, v in
                 zip(spelled, voices(len(spelled), rng, phoneme_engines))]
    jobs += [("confusable", t, v) for t, v in zip(plain, voices(len(plain), rng, engines))]
    rejected: dict[str, int] = {}
    made = {"positive": 0, "confusable": 0}
    lines = []
    for i, (kind, text, voice) in enumerate(jobs):
        try:
            wave = render(voice, text)
        except RuntimeError as e:
            rejected["engine error"] = rejected.get("engine error", 0) + 1
            log.warning("%s", e)
            continue
        wave = vtlp(wave, float(rng.uniform(0.9, 1.1)))
        wave = change_speed(wave, float(rng.uniform(0.9, 1.1)))
        reason = broken(wave, max_s=4.0 if kind == "positive" else 8.0)
        if reason:
            rejected[reason.split(" ")[0]] = rejected.get(reason.split(" ")[0], 0) + 1
            continue
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}-{voice.id}.wav"
        soundfile.write(path, wave, 16000, subtype="PCM_16")
        made[kind] += 1
        label = phrase if kind == "positive" else "none"
        lines.append(json.dumps({"path": f"{kind}/{path.name}", "label": label,
                                 "speaker": voice.id, "text": text}))
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    report = {"phrase": phrase, "phonemes": phonemes(phrase), "engines": engines,
              "licences": {e: tts.LICENCES[e] for e in engines},
              "not_installed": {e: h for e, h in tts.INSTALL_HINT.items() if e not in engines},
              "made": made, "rejected": rejected,
              "seed": seed}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def keyword_name(phrase: str) -> str:
    """A keyword name for a phrase: "Smart Mirror" -> "smart_mirror"."""
    name = "_".join(phrase.lower().split())
    if not name or not all(c.isalnum() or c in "_'-" for c in name):
        raise ValueError(f"phrase {phrase!r}: use words of letters and digits")
    return name


def synthetic_config(cfg, phrase: str, folder: Path, count: int, seed: int = 0):
    """``cfg`` retargeted to ``phrase``: synthetic positives (made in ``folder`` unless already
    there) and its confusables added to the negatives; no real recording of the phrase."""
    import dataclasses
    import json

    report = folder / "report.json"
    if not (report.is_file() and json.loads(report.read_text()).get("phrase") == phrase
            and json.loads(report.read_text()).get("seed") == seed):
        synthesize(phrase, folder, count, seed)
    name = keyword_name(phrase)
    data = dataclasses.replace(
        cfg.data, keyword_dirs={name: (str((folder / "positive").resolve()),)}, holdout={},
        negative_dirs=tuple(str(cfg.resolve(d).resolve()) for d in cfg.data.negative_dirs)
        + (str((folder / "confusable").resolve()),),
        eval_negative_dirs=tuple(str(cfg.resolve(d).resolve())
                                 for d in cfg.data.eval_negative_dirs),
        noise_dirs=tuple(str(cfg.resolve(d).resolve()) for d in cfg.data.noise_dirs))
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, keywords=(name,)),
                               data=data)


DEMO_SCRIPT = (
    (Voice("espeak-ng", "en-us", 150, 50), "Good morning. Let me check the news."),
    (Voice("flite", "slt"), "Alexa."),
    (Voice("flite", "awb"), "What time is it in Tokyo?"),
    (Voice("flite", "rms"), "Computer."),
    (Voice("espeak-ng", "en-gb-x-rp", 150, 50), "Please open the kitchen window."),
    (Voice("flite", "slt"), "Jarvis."),
    (Voice("flite", "kal16"), "Snowboy."),
)


def write_demo(path: str | Path) -> Path:
    """The bundled demo clip: four keywords between ordinary sentences, espeak-ng and flite
    voices (regenerate with ``python -c "from kws.synth import write_demo; write_demo(PATH)"``)."""
    import soundfile

    path = Path(path)
    soundfile.write(path, demo_clip(list(DEMO_SCRIPT)), 16000)
    return path
