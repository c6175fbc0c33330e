"""Phonemes of a phrase: how people also say it, and what only sounds close to it.

Both come from the phrase's espeak-ng phoneme mnemonics. Pronunciations reduce an unstressed
vowel differently or voice a later consonant ("computuh", "compuder"); confusables are the
phrase's first or last part alone, one consonant or stressed vowel changed, a rhyme (new onset),
each word of a phrase inside other sentences, never the phrase as people say it.
"""

from __future__ import annotations

import subprocess

import numpy as np

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


def espeak(text: str, options: list[str]) -> str:
    """What espeak-ng writes for ``text`` (on its standard input, never where it could be an
    option) with ``options``; phonemes only (``-q``).

    Raises:
        RuntimeError: espeak-ng is missing or failed (its own words).
    """
    try:
        proc = subprocess.run(["espeak-ng", "--stdin", "-q", *options], input=text,
                              capture_output=True, text=True, timeout=60)
    except FileNotFoundError as e:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)") from e
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng failed on {text!r}: {proc.stderr.strip()}")
    return proc.stdout


def ipa(text: str, voice: str = "en-us", tie: str | None = None) -> str:
    """espeak-ng's IPA of ``text`` in ``voice`` (words split by one space; its clauses, which
    it writes a line each, joined the same way; affricates and diphthongs tied by ``tie`` when
    given). RuntimeError as :func:`espeak`."""
    options = ["--ipa", "-v", voice] + ([f"--tie={tie}"] if tie else [])
    return " ".join(espeak(text, options).split())


def phonemes(text: str) -> str:
    """espeak-ng phoneme mnemonics of ``text`` (e.g. computer -> k@mpj'u:t3). RuntimeError as
    :func:`espeak`."""
    return espeak(text, ["-x"]).strip()


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


def sentences_with(word: str, rng: np.random.Generator, count: int) -> list[str]:
    """``count`` (at most ``len(SENTENCES)``) different ordinary sentences, each with ``word``
    put in at a random place (first, inside or last)."""
    out = []
    for sentence in rng.choice(SENTENCES, size=count, replace=False):
        parts = sentence.split()
        pos = int(rng.integers(len(parts) + 1))
        out.append(" ".join(parts[:pos] + [word] + parts[pos:]))
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
            out.update(sentences_with(word, rng, 3))
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
