"""A non-editable install into a new virtual environment, as a user gets it from ``pip install``:
the runtime commands work without torch, ``kws firmware`` finds its C templates, only ``kws``
lands in site-packages, and a command that needs an extra names it."""

import json
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd, check=True):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A new venv with ``pip install <wheel>`` (no extras): (bin folder, a folder outside the
    checkout to run in, the wheel)."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist",
                ROOT, cwd=tmp, check=False)
    if wheel.returncode != 0:
        pytest.skip(f"cannot build the wheel here (no package index?): {wheel.stderr[-300:]}")
    venv.create(tmp / "venv", with_pip=True)
    bin_dir = tmp / "venv" / "bin"
    (whl,) = (tmp / "dist").glob("kws-*.whl")
    proc = run(bin_dir / "python", "-m", "pip", "install", "-q", whl, cwd=tmp, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot install the runtime dependencies here: {proc.stderr[-300:]}")
    return bin_dir, tmp, whl


def test_runtime_commands_without_torch(installed):
    bin_dir, tmp, _ = installed
    assert run(bin_dir / "python", "-c", "import torch", cwd=tmp, check=False).returncode != 0
    site = Path(run(bin_dir / "python", "-c", "import kws, pathlib; print(pathlib.Path("
                    "kws.__file__).parents[1])", cwd=tmp).stdout.strip())
    assert (site / "kws" / "export").is_dir() and (site / "kws" / "firmware").is_dir()
    assert not (site / "export").exists() and not (site / "firmware_bridge").exists()
    assert run(bin_dir / "kws", "--version", cwd=tmp).stdout.startswith("kws ")
    events = [json.loads(line) for line in run(bin_dir / "kws", "detect", cwd=tmp).stdout
              .splitlines()]
    assert [e["keyword"] for e in events] == ["alexa", "computer", "jarvis", "snowboy"]
    model = Path(json.loads(run(bin_dir / "kws", "info", "--json", cwd=tmp).stdout)["folder"])
    assert model.is_relative_to(site)
    out = tmp / "fw"
    run(bin_dir / "kws", "firmware", model, "-o", out, cwd=tmp)
    assert {"kws.c", "kws.h", "kws_model.c", "kws_model.h"} <= {p.name for p in out.iterdir()}
    proc = run(bin_dir / "kws", "eval", "--model", model, "--negatives", tmp, cwd=tmp,
               check=False)
    assert proc.returncode == 2 and "pip install 'kws[eval]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run(bin_dir / "kws", "verify", model, cwd=tmp, check=False)
    assert proc.returncode == 2 and "pip install 'kws[eval]'" in proc.stderr


def test_eval_extra_evaluates_the_bundled_model_without_torch(installed):
    bin_dir, tmp, whl = installed
    proc = run(bin_dir / "python", "-m", "pip", "install", "-q", f"{whl}[eval]",
               cwd=tmp, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot install the eval extra here: {proc.stderr[-300:]}")
    model = Path(json.loads(run(bin_dir / "kws", "info", "--json", cwd=tmp).stdout)["folder"])
    positives, negatives = tmp / "pos", tmp / "neg"
    positives.mkdir()
    negatives.mkdir()
    (positives / "demo.flac").write_bytes((model / "demo.flac").read_bytes())
    noise = 0.01 * np.random.default_rng(0).standard_normal(16000 * 60)
    soundfile.write(negatives / "noise.wav", noise.astype(np.float32), 16000)
    run(bin_dir / "kws", "eval", "--model", model, "--positive", f"alexa={positives}",
        "--negatives", negatives, "-o", tmp / "eval", cwd=tmp)
    # the bundled model has a verifier: eval reads the two stages, torch-free
    assert (tmp / "eval" / "summary.md").read_text().count(
        "| default_model-model.int8.onnx + verifier |") == 4
    assert "verification passed" in run(bin_dir / "kws", "verify", model, cwd=tmp).stdout
    assert run(bin_dir / "python", "-c", "import torch", cwd=tmp, check=False).returncode != 0
