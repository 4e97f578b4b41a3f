#!/usr/bin/env bash
# The GPU check: one script, under 8 minutes on one H100/H200, one JSON.
#
#   bash benchmarks/gpu_check.sh [OUT.json]           # on the GPU machine (default reports/gpu_check.json)
#   bash benchmarks/gpu_check.sh --smoke [OUT.json]    # on a CPU, tiny widths: checks the script itself
#
# 1. Qwen2-Audio-7B architecture (random weights, real widths, 32+32 layers) in bfloat16 at
#    batch 32: segments/s of the standard (30 s) and the fast encoder, interleaved, median of 3,
#    with fast-versus-standard agreement (max |p_speech difference|, same label) at real widths.
# 2. Whisper-large-v3's no-speech path (benchmarks/bench_whisper.py, from the whisper backend),
#    batch 32, bfloat16; recorded as not run when that benchmark is not in this checkout.
# 3. The runner's look-ahead (benchmarks/bench_runner_look_ahead.py): the demo set shuffled
#    through the same architecture, fast encoder, batch 32: duration buckets and overlap against
#    run-order batches, interleaved, median of 3.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
if [[ "${1:-}" == "--smoke" ]]; then smoke=1; shift; fi
out="${1:-reports/gpu_check.json}"
mkdir -p "$(dirname "$out")"
python="${PYTHON:-.venv/bin/python}"
[[ -x "$python" ]] || python=python3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ $smoke == 1 ]]; then
    qwen_args=(--device cpu --smoke)
    whisper_args=(--device cpu --layers 1 --batch-size 2 --batches 1 --repeats 1 --dtype float32)
    runner_args=(--device cpu --cases 16 --batch-size 4 --repeats 1)
else
    # 256 clips = 8 batches of 32 per repeat; the predecessor's one-clip generate run is short.
    qwen_args=(--device cuda --text-layers 32 --audio-layers 32 --clips 256 --batch-size 32
               --predecessor-clips 8 --repeats 3)
    whisper_args=(--device cuda --batch-size 32 --dtype bfloat16 --repeats 3)
    runner_args=(--real-architecture --device cuda --dtype bfloat16 --batch-size 32 --repeats 3)
fi

start=$(date +%s)
"$python" benchmarks/bench_qwen2_audio.py "${qwen_args[@]}" --json "$work/qwen2_audio.json"
if [[ -f benchmarks/bench_whisper.py ]]; then
    "$python" benchmarks/bench_whisper.py "${whisper_args[@]}" --json "$work/whisper.json"
else
    echo '{"status": "not run: benchmarks/bench_whisper.py is not in this checkout"}' > "$work/whisper.json"
fi
"$python" benchmarks/bench_runner_look_ahead.py "${runner_args[@]}" --json "$work/runner.json"
end=$(date +%s)

"$python" - "$work" "$out" "$smoke" "$((end - start))" <<'PY'
import json, sys
from pathlib import Path

work, out, smoke, seconds = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
report = {"smoke": smoke, "wall_s": seconds,
          "qwen2_audio_7b": json.loads((work / "qwen2_audio.json").read_text()),
          "whisper_large_v3_no_speech": json.loads((work / "whisper.json").read_text()),
          "runner_look_ahead": json.loads((work / "runner.json").read_text())}
Path(out).write_text(json.dumps(report, indent=2))
qwen = report["qwen2_audio_7b"]["runs"]
print(f"gpu_check: {out} ({seconds} s): qwen2-audio standard {qwen['standard']['segments_per_s']} seg/s, "
      f"fast {qwen['fast']['segments_per_s']} seg/s, agreement {report['qwen2_audio_7b']['fast_vs_standard']}; "
      f"runner look-ahead x{report['runner_look_ahead']['runs']['look-ahead']['speedup_vs_plain']} over run order")
PY
