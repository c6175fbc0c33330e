"""kws bench: the figures it prints, and what they leave out."""

import json
import subprocess
import sys


def test_bench_reports_latency_rtf_and_says_what_latency_excludes(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "kws", "bench", "--seconds", "2",
                           "--paced-seconds", "0", "-o", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.with_suffix(".json").read_text())
    assert [c["chunk_ms"] for c in result["chunks"]] == [10, 20, 80]
    assert all(0 < c["real_time_factor"] < 0.5 for c in result["chunks"])
    assert result["steps_per_call"] == 3 and result["buffer_ms"] == 90.0
    assert "it excludes buffering: audio waits until 3 model step(s) (90 ms)" in proc.stdout
    assert proc.stdout.strip() == out.with_suffix(".md").read_text().strip()
