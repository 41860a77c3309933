"""The GPU check's scripts stay runnable: bench_gpu.py runs its code path on the CPU at tiny
sizes and writes its JSON, and gpu_check.sh parses as bash."""

import json
import os
import subprocess
import sys

from conftest import ROOT


def test_bench_gpu_smoke_on_the_cpu(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_gpu.py"), "--device", "cpu", "--quick",
                        "--only", "attention,sampling,train", "--json", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert res["device"] == "cpu"
    assert all(row["max_abs_diff_vs_sdpa"] < 1e-4 for row in res["attention"])
    assert {row["filter"] for row in res["sampling"]} == {"top_p=0.9", "top_k=50", "plain"}
    assert res["train"][0]["fused_tokens_per_s"] > 0 and res["train"][0]["reference_tokens_per_s"] > 0


def test_gpu_check_script_parses():
    r = subprocess.run(["bash", "-n", os.path.join(ROOT, "bench", "gpu_check.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
