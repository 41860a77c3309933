#!/usr/bin/env bash
# One-shot GPU check, for a fresh GPU machine with a CUDA build of torch, nvcc and no network:
# builds tinygpt with its CUDA kernels, runs the CUDA tests on the GPU, runs the GPU benchmarks
# (bench/bench_gpu.py), runs every kernel once under compute-sanitizer (memcheck, racecheck,
# synccheck; bench/cuda_sanitize.py) while time allows, and writes into OUT_DIR:
#   gpu_check.log   everything printed
#   gpu_check.json  summary: GPU, versions, build time, test counts, failures, benchmark figures
#   cuda_tests.xml  the tests' JUnit report;  gpu_bench.json  the benchmarks' figures
# Usage: bash bench/gpu_check.sh OUT_DIR      (about 5-8 minutes; exit status 0 only if all passed)
# Environment: PYTHON (default python3), TINYGPT_CUDA_ARCHS (default: this GPU's, e.g. 90).
set -uo pipefail
OUT=${1:?usage: bash bench/gpu_check.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
start=$(date +%s)
stage() { echo; echo "=== $1 ($(( $(date +%s) - start )) s)"; }

stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed"
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPU', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
nvcc --version | tail -1
ARCH=${TINYGPT_CUDA_ARCHS:-$("$PY" -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}{p[1]}')" 2>/dev/null || echo "80;90")}
echo "building for sm_$ARCH"

stage "build (pip install --no-build-isolation --no-deps, CUDA on)"
b0=$(date +%s)
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) timeout 420 "$PY" -m pip install --no-build-isolation --no-deps --no-cache-dir -q \
  -Ccmake.define.TINYGPT_CUDA=ON "-Ccmake.define.TINYGPT_CUDA_ARCHS=$ARCH" -Ccmake.define.TINYGPT_CUDA_EMU=OFF \
  -Cbuild-dir=build/gpu_check .
build_rc=$?
build_s=$(( $(date +%s) - b0 ))
echo "build: rc=$build_rc in ${build_s}s"

tests_rc=99
bench_rc=99
sanitize=""
if [ "$build_rc" = 0 ]; then
  "$PY" -c "import tinygpt._C as C, torch; assert C.with_cuda, 'built without CUDA'; print('tinygpt._C with CUDA kernels; GPU', torch.cuda.get_device_name())"
  stage "CUDA tests on the GPU (the emulation's run in CI)"
  (cd /tmp && TINYGPT_CUDA_KERNELS=1 timeout 240 "$PY" -m pytest -q -rfEs -p no:cacheprovider -k "not emu" \
    --junitxml="$OUT/cuda_tests.xml" --ignore="$OLDPWD/python_tests/test_cuda_build.py" "$OLDPWD"/python_tests/test_cuda_*.py)
  tests_rc=$?
  stage "GPU benchmarks"
  TINYGPT_CUDA_KERNELS=1 timeout 240 "$PY" bench/bench_gpu.py --json "$OUT/gpu_bench.json"
  bench_rc=$?
  # compute-sanitizer over one small run of every kernel (bench/cuda_sanitize.py), while the
  # 8 minutes allow: out-of-bounds accesses, shared-memory races and divergent barriers that
  # the CPU emulation cannot show. 7 = errors found; 124 = out of time (not a failure).
  for tool in memcheck racecheck synccheck; do
    if [ $(( $(date +%s) - start )) -gt 380 ] || ! command -v compute-sanitizer >/dev/null; then
      sanitize="$sanitize $tool=skipped"
      continue
    fi
    stage "compute-sanitizer --tool $tool"
    timeout 90 compute-sanitizer --tool "$tool" --error-exitcode 7 "$PY" bench/cuda_sanitize.py
    sanitize="$sanitize $tool=$?"
  done
fi

stage "summary"
"$PY" - "$OUT" "$sanitize" "$build_rc" "$build_s" "$tests_rc" "$bench_rc" "$(( $(date +%s) - start ))" <<'EOF'
import json, os, sys
import xml.etree.ElementTree as ET
out, sanitize, build_rc, build_s, tests_rc, bench_rc, total = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
s = {"build_rc": build_rc, "build_s": build_s, "tests_rc": tests_rc, "bench_rc": bench_rc, "total_s": total}
s["sanitizer"] = {k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in (x.split("=") for x in sanitize.split())}
try:
    import torch
    s.update(gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None, torch=torch.__version__,
             cuda=torch.version.cuda)
except Exception as e:  # noqa: BLE001
    s["torch_error"] = repr(e)
xml = os.path.join(out, "cuda_tests.xml")
if os.path.exists(xml):
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    n["passed"] = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    s["tests"] = n
    s["failed"] = [f"{c.get('classname')}.{c.get('name')}" for c in suite.iter("testcase")
                   if c.find("failure") is not None or c.find("error") is not None]
bench = os.path.join(out, "gpu_bench.json")
if os.path.exists(bench):
    with open(bench) as f:
        s["bench"] = json.load(f)
s["ok"] = (build_rc == 0 and tests_rc == 0 and bench_rc == 0
           and not any(v not in (0, 124, "skipped") for v in s["sanitizer"].values()))
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(s, f, indent=2)
print(json.dumps({k: v for k, v in s.items() if k != "bench"}, indent=2))
sys.exit(0 if s["ok"] else 1)
EOF
