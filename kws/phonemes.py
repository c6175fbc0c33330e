"""What the synthetic speakers say besides the keyword: its pronunciations, its confusables, and
ordinary sentences.

Sentences are random strings of common English words (``words.txt``), so that the negatives cover
many sounds. Pronunciations and most confusables are phoneme strings: espeak-ng writes a text as ASCII phoneme mnemonics (``computer`` -> ``k@mpj'u:t3``) and reads them
back inside ``[[...]]``. Edits are made on those units (:func:`phoneme_units`);
:func:`to_misaki` spells the same units in the misaki alphabet that hibari's network reads
(``k@mpj'u:t3`` -> ``kəmpjˈutəɹ``), so both engines can say the same edited word.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np

WORDS_FILE = Path(__file__).with_name("words.txt")


@functools.lru_cache(maxsize=1)
def common_words() -> tuple[str, ...]:
    """The common English words of ``words.txt`` (lines starting with ``#`` are comments)."""
    lines = WORDS_FILE.read_text().splitlines()
    return tuple(w for line in lines if not line.startswith("#") for w in line.split())


def sentences(phrase: str, rng: np.random.Generator, count: int) -> list[str]:
    """``count`` ordinary sentences: 4-10 random common words, none of them a word of
    ``phrase``, inside one or holding one (of 4 letters or more: "mirrors" for "mirror")."""
    avoid = phrase.lower().split()
    words = [w for w in common_words() if not any(
        w == a or (len(w) >= 4 and w in a) or (len(a) >= 4 and a in w) for a in avoid)]
    return [" ".join(rng.choice(words, size=int(rng.integers(4, 11)))) for _ in range(count)]


def phonemes(text: str) -> str:
    """espeak-ng phoneme mnemonics of ``text`` (e.g. computer -> k@mpj'u:t3)."""
    proc = subprocess.run(["espeak-ng", "-q", "-x", text], capture_output=True, text=True,
                          check=True)
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
            for sentence in sentences(phrase, rng, 3):
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


# espeak-ng mnemonic -> misaki (hibari) symbols; units not listed are kept when they are plain
# letters (the same phoneme in both alphabets) and dropped otherwise (length and tie marks)
MISAKI = {
    "a": "æ", "a#": "ə", "e": "ɛ", "E": "ɛ", "I": "ɪ", "o": "ɔ", "@": "ə", "3": "əɹ", "A": "ɑ",
    "O": "ɔ", "U": "ʊ", "V": "ʌ", "aI": "I", "eI": "A", "oU": "O", "aU": "W", "OI": "Y",
    "i:": "i", "u:": "u", "A:": "ɑ", "O:": "ɔ", "3:": "ɜɹ", "A@": "ɑɹ", "e@": "ɛɹ", "I@": "ɪɹ",
    "O@": "ɔɹ", "U@": "ʊɹ", "L": "l", "r": "ɹ", "S": "ʃ", "Z": "ʒ", "T": "θ", "D": "ð",
    "dZ": "ʤ", "tS": "ʧ", "N": "ŋ", "g": "ɡ", "?": "ʔ", "'": "ˈ", ",": "ˌ",
}


def to_misaki(mnemonics: str) -> str:
    """espeak-ng mnemonics (``[[...]]`` or bare) in hibari's misaki alphabet; espeak-ng's
    American flap ``t#`` becomes misaki's ``T``."""
    out: list[str] = []
    for unit in phoneme_units(mnemonics.removeprefix("[[").removesuffix("]]")):
        if unit == "#" and out and out[-1] == "t":
            out[-1] = "T"
        elif unit in MISAKI:
            out.append(MISAKI[unit])
        elif unit.isascii() and unit.isalpha() or unit == " ":
            out.append(unit)
    return "".join(out)
