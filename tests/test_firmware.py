"""Firmware bridge: generated C compiles cleanly, matches onnxruntime, serial protocol end to
end."""

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from kws.core.audio import float32_to_int16, load_audio
from kws.runtime import OnnxModel

pytest.importorskip("onnx", reason="the firmware bridge reads the int8 ONNX file with onnx")
from kws.firmware.emit import emit  # noqa: E402
from kws.firmware.tensors import load_blob  # noqa: E402
from kws.firmware.verify import compile_host, verify_firmware  # noqa: E402

C_FILES = ("kws.c", "kws_model.c", "kws_protocol.c", "host_main.c", "device_main.c")


@pytest.fixture(scope="module")
def sources(tiny_export, tmp_path_factory):
    return emit(tiny_export, tmp_path_factory.mktemp("fw") / "src")


@pytest.fixture(scope="module")
def clips(tiny_run, tmp_path_factory):
    """A keyword-rich clip and a negative clip from the synthetic corpus."""
    root, folder = tiny_run[0], tmp_path_factory.mktemp("clips")
    quiet = np.zeros(8000, np.float32)
    words = [load_audio(root / "keywords" / kw / f"{i}.wav") for kw, i in
             [("up", 30), ("down", 31), ("up", 36), ("down", 2)]]
    positive = np.concatenate([x for w in words for x in (quiet, w)] + [quiet])
    soundfile.write(folder / "keywords.wav", positive, 16000, subtype="PCM_16")
    shutil.copy(root / "negatives" / "spk04-1-4.wav", folder / "negative.wav")
    return [folder / "keywords.wav", folder / "negative.wav"]


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_generated_c_is_warning_free_c99(sources, compiler, tmp_path):
    if not shutil.which(compiler):
        pytest.skip(f"{compiler} is not installed")
    for name in C_FILES:
        proc = subprocess.run([compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                               "-c", str(sources / name), "-o", str(tmp_path / f"{name}.o")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert "malloc" not in (sources / "kws.c").read_text()


def test_c_matches_onnxruntime_on_audio_in_any_chunking(tiny_export, clips):
    report = verify_firmware(tiny_export, clips)
    assert report.ok, str(report)
    assert report.max_diff <= 1e-4  # float32 in both; bound in the issue is 0.02
    assert sum(line.startswith("PASS") for line in report.lines) == 2 * 4


def test_a_diverging_c_build_fails_with_the_first_step(tiny_export, clips, monkeypatch):
    import kws.firmware.verify as verify

    def broken_emit(folder, out):
        out = emit(folder, out)
        model = (out / "kws_model.h").read_text()
        (out / "kws_model.h").write_text(model.replace("#define KWS_LOG_FLOOR",
                                                       "#define KWS_LOG_FLOOR 1e-3f //"))
        return out

    monkeypatch.setattr(verify, "emit", broken_emit)
    report = verify.verify_firmware(tiny_export, clips[:1])
    assert not report.ok
    assert "first step over 0.02: " in str(report) and "firmware verification FAILED" in str(report)


def test_cortex_m4_sizes_in_the_readme(sources):
    text = (sources / "README.md").read_text()
    if not shutil.which("arm-none-eabi-gcc"):
        assert "install Debian `gcc-arm-none-eabi`" in text
        pytest.skip("arm-none-eabi-gcc is not installed")
    assert "- flash: **" in text and "- RAM: **" in text


def test_firmware_cli(tiny_export, clips, tmp_path):
    out = tmp_path / "c"
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "firmware", str(tiny_export), "-o",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert {"kws.c", "kws.h", "kws_model.c", "kws_model.h", "README.md"} <= \
        {p.name for p in out.iterdir()}
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "firmware", "verify",
                           str(tiny_export), *map(str, clips)], capture_output=True, text=True)
    assert proc.returncode == 0 and "firmware verification passed" in proc.stdout


@pytest.fixture
def device(sources, tmp_path):
    """The host-built device program on one end of a pseudo-terminal, a Device on the other."""
    serial = pytest.importorskip("serial", reason="the host bridge needs pyserial")
    from kws.firmware.protocol import Device

    exe = compile_host(sources, "device_main.c", tmp_path)
    master, slave = os.openpty()
    proc = subprocess.Popen([str(exe), f"fd:{master}"], pass_fds=[master])
    port = serial.Serial(os.ttyname(slave), timeout=0.05)
    try:
        yield Device(port)
    finally:
        proc.kill()
        proc.wait()
        port.close()
        os.close(master)
        os.close(slave)


def threshold_for(model, pcm):
    """A threshold for 'up' between its peak on the clip and on silence."""
    scores = model.score_audio(pcm.astype(np.float32) / 32768)[:, 0]
    quiet = model.score_audio(np.zeros(48000, np.float32))[:, 0].max()
    assert scores.max() > quiet + 0.05
    return float(quiet + scores.max()) / 2


def test_serial_bridge_end_to_end(device, tiny_export, clips):
    from kws.firmware.protocol import AUDIO, DeviceError, encode

    assert device.hello() == {"protocol": 1, "keywords": ["up", "down"], "step_ms": 30}
    model = OnnxModel(tiny_export)
    pcm = float32_to_int16(load_audio(clips[0]))
    device.set_threshold(0, threshold_for(model, pcm))
    device.set_threshold(1, 1.0)
    device.send_audio(pcm)
    heard = [e for e in device.events if e[0] == 0]
    assert heard, "no keyword event over the serial link"

    # corrupted frames: counted and skipped, and the link stays in sync
    good = encode(AUDIO, float32_to_int16(np.zeros(160, np.float32)).tobytes())
    bad_crc = good[:-1] + bytes([good[-1] ^ 0xFF])
    device.port.write(b"\x00\xa5junk" + bad_crc + good[:9])
    device.port.write(good)
    before = device.stats()
    assert before["bad_frames"] >= 2 and before["skipped_bytes"] >= 5
    with pytest.raises(DeviceError, match="refused message 0x02: out of range"):
        device.set_threshold(7, 0.5)

    # a model upload with a bad CRC is refused; the old model keeps working
    blob = load_blob(tiny_export)
    with pytest.raises(DeviceError, match="refused message 0x07: CRC mismatch"):
        device.upload_model(blob, crc=0x12345678)
    device.events.clear()
    device.send_audio(np.zeros(8000, np.int16))  # reset-free stream: just more audio
    device.send_audio(pcm)
    assert [e for e in device.events if e[0] == 0], "old model stopped working"

    # a good upload whose thresholds silence every keyword takes effect (and resets the stream)
    k = 2
    silenced = blob[:-4 * k] + struct.pack("<2f", 1.0, 1.0)
    device.upload_model(silenced)
    device.events.clear()
    device.send_audio(pcm)
    assert device.events == []


def score_tracks():
    """Score tracks that exercise every part of the rule: (name, (steps, 2) float32)."""
    rng = np.random.default_rng(7)
    held = np.zeros((500, 2), np.float32)
    held[10:300, 0] = 0.9  # held high far past the refractory period: one event
    held[320:330, 0] = 0.9  # soon after it fell: none (with a 2 s refractory period)
    held[400:410, 0] = 0.9  # later: a second
    both = np.zeros((200, 2), np.float32)
    both[50:60] = 0.95  # two keywords on the same step
    both[150, 1] = 0.97
    noisy = (rng.random((3000, 2)) ** 3).astype(np.float32)
    broken = noisy.copy()
    broken[100:140:3, 0] = np.nan
    return [("held", held), ("both", both), ("noisy", noisy), ("nan", broken)]


@pytest.mark.parametrize("rule", [
    {"smoothing_steps": 1, "min_steps": 1, "refractory_s": 2.0},
    {"smoothing_steps": 3, "min_steps": 1, "refractory_s": 0.3},
    {"smoothing_steps": 4, "min_steps": 2, "refractory_s": 0.5},
    {"smoothing_steps": 1, "min_steps": 3, "refractory_s": 0.03},
])
def test_c_python_detector_and_metric_give_identical_events(tiny_export, tmp_path, rule):
    """One rule, three implementations: the C kws_decide, the streaming detector and the
    offline metric agree event for event on the same score tracks."""
    from kws.core.contract import MANIFEST, load_manifest
    from kws.core.decision import decision_track, events
    from kws.runtime import Detector

    folder = tmp_path / "model"
    shutil.copytree(tiny_export, folder)
    raw = json.loads((folder / MANIFEST).read_text())
    raw["decision"], raw["thresholds"] = rule, {"up": 0.55, "down": 0.45}
    (folder / MANIFEST).write_text(json.dumps(raw))
    manifest = load_manifest(folder)
    exe = compile_host(emit(folder, tmp_path / "src"), "rule_main.c", tmp_path)
    refractory = manifest.rule.refractory_steps(manifest.step_s)
    for name, scores in score_tracks():
        text = "\n".join(" ".join(f"{x:.9g}" for x in row) for row in scores)
        out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True)
        c = [(int(line.split()[1]), int(line.split()[2])) for line in out.stdout.splitlines()]
        detector = Detector.from_manifest(manifest)
        python = [(round((d.time_s - detector.timing.end_of(0)) / manifest.step_s),
                   manifest.keywords.index(d.keyword)) for d in detector.process(scores)]
        track = decision_track(scores, rule["smoothing_steps"], rule["min_steps"])
        metric = sorted((int(step), k) for k, kw in enumerate(manifest.keywords)
                        for step in events(track[:, k], manifest.thresholds[kw], refractory))
        assert c == python == metric, name
        if name == "held":  # one event per rise, however long the score stays high
            steps = [step for step, k in c if k == 0]
            assert len(steps) == (2 if refractory > 20 else 3) and 10 <= steps[0] < 15
            assert 400 <= steps[-1] < 405
        if name == "both" and rule["smoothing_steps"] == 1:  # two keywords at once: both
            first = c[0][0]
            assert c[:2] == [(first, 0), (first, 1)] and 50 <= first < 60


def test_names_from_the_manifest_cannot_inject_c(tiny_export, tmp_path):
    """A keyword name is data: it reaches the C only as an escaped string literal, and comes
    back byte for byte; names that no escaping makes safe to use are refused at load."""
    from kws.core.contract import MANIFEST, ManifestError, load_manifest

    hostile = 'up";int pwn(void){return 7;}const char*y="??=\t'
    folder = tmp_path / "model"
    shutil.copytree(tiny_export, folder)
    raw = json.loads((folder / MANIFEST).read_text())
    for bad in ('up"\n#include </etc/passwd>', "a\\b", "../up"):
        raw["keywords"] = [bad, "down"]
        (folder / MANIFEST).write_text(json.dumps(raw))
        with pytest.raises(ManifestError, match="keywords = "):
            load_manifest(folder)
    raw["keywords"] = [hostile.replace("\t", " "), "ünïcode ✓"]
    raw["thresholds"] = dict(zip(raw["keywords"], [0.5, 0.5]))
    (folder / MANIFEST).write_text(json.dumps(raw))
    src = emit(folder, tmp_path / "src")
    (tmp_path / "names.c").write_text(
        '#include <stdio.h>\n#include "kws_model.h"\n'
        'int main(void) { int k; for (k = 0; k < KWS_N_KEYWORDS; k++) '
        'printf("%s\\n", kws_keywords[k]); return 0; }\n')
    exe = tmp_path / "names"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", f"-I{src}", "-o", str(exe),
                    str(tmp_path / "names.c"), str(src / "kws_model.c")], check=True)
    assert subprocess.run([str(exe)], capture_output=True, check=True).stdout.decode() \
        .splitlines() == raw["keywords"]
    symbols = subprocess.run(["nm", str(exe)], capture_output=True, text=True).stdout
    assert "pwn" not in symbols


def test_a_long_declared_length_does_not_make_the_device_deaf(device, tiny_export):
    """A header declaring 4000 bytes that never come used to swallow the next frames; the
    device drops it once the line is quiet and answers the frame behind it."""
    import struct as st

    from kws.firmware.protocol import HELLO, SOF, DeviceError, encode

    bogus = SOF + st.pack("<BH", 3, 4000)  # AUDIO, 4000 bytes announced, none sent
    device.port.write(bogus + encode(HELLO))
    kind, payload = device.expect((0x81,), HELLO)  # VERSION, within the Device's 3 s
    assert payload[1] == 2
    assert device.stats()["bad_frames"] >= 1
    # uploads whose thresholds are not numbers in (0, 1] are refused by the device itself
    blob = load_blob(tiny_export)
    for bad in (float("nan"), -0.5, 1.5):
        with pytest.raises(DeviceError, match="refused message 0x07: invalid model"):
            device.upload_model(blob[:-8] + st.pack("<2f", bad, 0.5))


def test_host_reader_resynchronises_when_the_line_goes_quiet():
    from kws.firmware.protocol import ACK, SOF, FrameReader, encode

    reader = FrameReader()
    good = encode(ACK, b"\x01")
    assert reader.feed(SOF + b"\x03\xa0\x0f" + good) == []  # waiting for 4000 bytes
    assert reader.idle() == [(ACK, b"\x01")] and reader.bad_frames >= 1 and not reader.buf
