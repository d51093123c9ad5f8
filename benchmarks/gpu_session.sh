#!/usr/bin/env bash
# Issue 10's GPU figures in two device calls: a lent GPU has few minutes, so everything is
# prepared here and each call is one command (recipe: ../shared/gpu/README.md).
#
#   here, with PyPI:  ../shared/gpu/wheels.sh engine && ../shared/gpu/wheels.sh app
#   device call 1:    bash benchmarks/gpu_session.sh engine   (carry .whl/engine: funasr, PyAV, soundfile)
#   device call 2:    bash benchmarks/gpu_session.sh app      (carry .whl/app: gradio; at once, while the
#                                                            machine is warm and keeps call 1's installs)
#
# Call 1 builds the large-shape random-weight checkpoint in /tmp/large and runs bench_gpu (every row
# of the table, ours against funasr); call 2 runs bench_app_load (32 users at once against one at a
# time through app.py). The output goes to $OUT: nvidia-smi.txt, bench_gpu.txt, bench_app_load.txt.
set -uo pipefail
part=${1:?usage: gpu_session.sh engine|app}
out=${OUT:-/tmp/gpu-out}
site=/tmp/site
mkdir -p "$out"
case $part in engine|app) ;; *) echo "usage: gpu_session.sh engine|app" >&2; exit 2 ;; esac
ls .whl/"$part"/*.whl >/dev/null 2>&1 || { echo "no .whl/$part: build it first (../shared/gpu/wheels.sh $part) and carry it" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
  .whl/"$part"/*.whl || exit 1
export PYTHONPATH=$site PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$out/nvidia-smi.txt"
if ! python3 -c "import av, soundfile, funasr" 2>/dev/null; then
  echo "the engine wheels are not installed on this machine (a fresh one?): run the engine call first" >&2
  exit 2
fi
[ -f /tmp/large/model.pt ] || python3 -m tests.checkpoints /tmp/large --shape large || exit 1
if [ "$part" = engine ]; then
  timeout 480 python3 -m benchmarks.bench_gpu --model-dir /tmp/large 2>&1 | tee "$out/bench_gpu.txt"
else
  timeout 300 python3 -m benchmarks.bench_app_load --model-dir /tmp/large --users 32 --device cuda \
    2>&1 | tee "$out/bench_app_load.txt"
fi
