"""``kws firmware verify MODEL_DIR``: the generated C, compiled for the host, against onnxruntime.

For each audio clip and chunk size the C program's per-step scores must be within 0.02 of the
int8 ONNX model's, and its events identical to those of the model's decision rule
(:class:`kws.core.decision.RuleState`, what the Python detector runs) on the ONNX scores. The
first diverging step is reported.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.core.audio import float32_to_int16, load_audio
from kws.core.decision import RuleState
from kws.firmware.emit import emit
from kws.runtime import OnnxModel

SCORE_TOL = 0.02
CHUNKS = (1, 160, 333, 4000)
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]


@dataclass
class FirmwareReport:
    lines: list[str] = field(default_factory=list)
    ok: bool = True
    max_diff: float = 0.0

    def __str__(self) -> str:
        return "\n".join(self.lines + ["firmware verification " +
                                       ("passed" if self.ok else "FAILED")])


def compile_host(src: Path, program: str, out: Path, compiler: str = "gcc") -> Path:
    """Build a host program from the generated sources (-Wall -Wextra -Werror)."""
    if not shutil.which(compiler):
        raise RuntimeError(f"{compiler} is not installed (apt-get install {compiler})")
    exe = out / f"{Path(program).stem}-{compiler}"
    sources = [src / program, src / "kws.c", src / "kws_model.c"]
    if program == "device_main.c":
        sources.append(src / "kws_protocol.c")
    proc = subprocess.run([compiler, *CFLAGS, "-o", str(exe), *map(str, sources), "-lm"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{compiler} failed on the generated C:\n{proc.stderr}")
    return exe


def run_host(exe: Path, pcm: np.ndarray, chunk: int) -> tuple[np.ndarray, list[tuple]]:
    """(scores (steps, K), events [(step, keyword, score)]) from the host program."""
    proc = subprocess.run([str(exe), str(chunk)], input=pcm.astype("<i2").tobytes(),
                          capture_output=True, check=True)
    scores, events = [], []
    for line in proc.stdout.decode().splitlines():
        kind, *rest = line.split()
        if kind == "S":
            scores.append([float(x) for x in rest[1:]])
        elif kind == "E":
            events.append((int(rest[0]), int(rest[1]), float(rest[2])))
    return np.array(scores, dtype=np.float32), events


def expected_events(model: OnnxModel, scores: np.ndarray) -> list[tuple[int, int]]:
    """(step, keyword) of the model's decision rule on ``scores``, in step order."""
    m = model.manifest
    return RuleState(m.rule, m.keywords, m.step_s).update(scores)[1]


def verify_firmware(folder: str | Path, clips: list[Path]) -> FirmwareReport:
    """Emit, compile and compare on ``clips`` at every chunk size in ``CHUNKS``."""
    folder = Path(folder)
    report = FirmwareReport()
    model = OnnxModel(folder)
    with tempfile.TemporaryDirectory() as tmp:
        src = emit(folder, Path(tmp) / "src")
        exe = compile_host(src, "host_main.c", Path(tmp))
        for clip in clips:
            wave = load_audio(clip, model.manifest.frontend.sample_rate)
            pcm = float32_to_int16(wave)
            onnx_scores = model.score_audio(pcm.astype(np.float32) / 32768)
            want = expected_events(model, onnx_scores)
            for chunk in CHUNKS:
                c_scores, c_events = run_host(exe, pcm, chunk)
                n = min(len(c_scores), len(onnx_scores))
                diff = np.abs(c_scores[:n] - onnx_scores[:n]).max(axis=1) if n else np.zeros(0)
                report.max_diff = max(report.max_diff, float(diff.max(initial=0.0)))
                got = [(step, k) for step, k, _ in c_events]
                bad = np.flatnonzero(diff > SCORE_TOL)
                if len(c_scores) != len(onnx_scores) or len(bad) or got != want:
                    report.ok = False
                    first = int(bad[0]) if len(bad) else None
                    report.lines.append(
                        f"FAIL {clip.name} chunk {chunk}: steps C {len(c_scores)} vs ONNX "
                        f"{len(onnx_scores)}; first step over {SCORE_TOL}: {first}"
                        + (f" (C {c_scores[first]}, ONNX {onnx_scores[first]})"
                           if first is not None else "")
                        + (f"; events C {got} vs ONNX {want}" if got != want else ""))
                else:
                    report.lines.append(f"PASS {clip.name} chunk {chunk}: {n} steps, max diff "
                                        f"{diff.max(initial=0.0):.2e}, events {got}")
    return report
