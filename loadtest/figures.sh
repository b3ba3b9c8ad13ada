#!/usr/bin/env bash
# BENCHMARKS.md's load-test figures in one sitting, on the code of this checkout: the `baseline-10` table at
# three rates (floor, echo and engine alternating; CPU per auction; throughput), the same at 1,000/s with the
# engine pinned to one core, instructions per auction (callgrind or perf), and `targets` (the honest max rate
# and every issue-19 target judged at half of it). Every report is kept as JSON, text and SVG under OUT_DIR;
# the Markdown tables for BENCHMARKS.md come last.
#
#   loadtest/figures.sh OUT_DIR [RATE ...]      (default rates: 200 1000 2000)
#
# Takes about 6 minutes. Run it when the machine is quiet (`uptime` is written before and after, and belongs
# next to the figures), and twice to show the spread. Compare two versions of the code by running it on each.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: loadtest/figures.sh OUT_DIR [RATE ...]}
shift
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(200 1000 2000)
scenario=loadtest/scenarios/baseline-10.toml
bin=target/release/gavel-loadtest

cargo build --release -p gavel-loadtest
mkdir -p "$out"
{ date -u; git rev-parse HEAD; uptime; } > "$out/machine.txt"
# The machine's load every 10 s while the figures are taken, and the three busiest processes then (the load
# test's own among them: it keeps about two cores' worth of threads busy): what else ran belongs next to the
# figures.
(while sleep 10; do
    busiest=$(top -bn1 -w 200 | sed -n '8,10p' | awk '{printf "%s:%s%% ", $12, $9}')
    echo "$(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg) rustc=$(pgrep -c -x rustc || true) $busiest"
done > "$out/load.log") &
sampler=$!
trap 'kill "$sampler"' EXIT

reports=()
for rate in "${rates[@]}"; do
    "$bin" run "$scenario" --rate "$rate" --json "$out/run-$rate.json" --plot "$out/run-$rate.svg" | tee "$out/run-$rate.txt"
    reports+=("$out/run-$rate.json")
done

# Issue 19, item 2: the engine (and the echo) on CPU 0, buyers and generator on the other CPUs.
cpus=$(nproc)
if [ "$cpus" -ge 2 ]; then
    taskset -c "1-$((cpus - 1))" "$bin" run "$scenario" --rate 1000 --engine-cpus 0 --engine-threads 1 \
        --json "$out/pinned-1000.json" --plot "$out/pinned-1000.svg" | tee "$out/pinned-1000.txt"
    reports+=("$out/pinned-1000.json")
fi

"$bin" cpu "$scenario" --json "$out/cpu.json" | tee "$out/cpu.txt"
"$bin" targets "$scenario" --json "$out/targets.json" --plot "$out/targets.svg" | tee "$out/targets.txt"
reports+=("$out/cpu.json" "$out/targets.json")

uptime >> "$out/machine.txt"
echo
cat "$out/machine.txt"
"$bin" summary "${reports[@]}" | tee "$out/summary.md"
