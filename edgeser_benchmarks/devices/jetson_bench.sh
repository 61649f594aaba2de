#!/usr/bin/env bash
# edgeser bench on an NVIDIA Jetson (Orin), with power from tegrastats. UNTESTED: this project has had no Jetson.
#
# Setup (JetPack 6.1 or later: TensorRT 10; on JetPack 5.x or 6.0, TensorRT 8.x, use --backend ort-tensorrt):
# TensorRT and CUDA come with JetPack (python3-libnvinfer); install the ONNX Runtime GPU
# wheel built for your JetPack from NVIDIA's Jetson Zoo, then `pip install -e ".[align,stream,bench]"` (no torch:
# the VAD model ships with edgeser; [bench] adds the baselines and the plot).
#
#   edgeser_benchmarks/devices/jetson_bench.sh OUT_DIR BUNDLE [BUNDLE ...]
set -euo pipefail
out=${1:?usage: jetson_bench.sh OUT_DIR BUNDLE [BUNDLE ...]}
shift
mkdir -p "$out"
model=$(tr -d '\0' < /proc/device-tree/model 2>/dev/null || hostname)
# The power mode decides the clocks: record it (set it beforehand, e.g. sudo nvpmodel -m 0 && sudo jetson_clocks).
(nvpmodel -q 2>/dev/null || echo "nvpmodel not found") > "$out/power_mode.txt"
args=()
for b in "$@"; do args+=(--bundle "$b"); done
pid=""
if command -v tegrastats >/dev/null; then
  tegrastats --interval 500 --logfile "$out/tegrastats.log" & pid=$!
fi
edgeser bench "${args[@]}" --dataset "${DATASET:-../shared/data/ravdess/labels.csv}" \
  --device-name "$model ($(head -n1 "$out/power_mode.txt"))" --out "$out"
if [ -n "$pid" ]; then
  kill "$pid" || true
  python -m edgeser_benchmarks.devices.jetson "$out/tegrastats.log" > "$out/power.json"
fi
echo "merge with a desktop run: edgeser bench --compare $out OTHER_DIR --out merged"
