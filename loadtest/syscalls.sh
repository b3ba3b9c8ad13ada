#!/bin/bash
# System calls per auction of the whole engine process (BENCHMARKS.md, issue 19): the release engine started
# through --engine-bin under `strace -f -c`, one `gavel-loadtest run` of baseline-10 at 300/s, the counts divided
# by the engine's own gavel_auction_seconds_count. Needs strace and curl; run from the repository root after
# `cargo build --release -p gavel -p gavel-loadtest`.
set -euo pipefail
out=$(mktemp -d)
wrapper="$out/engine.sh"
cat > "$wrapper" <<WRAP
#!/bin/bash
"$PWD/target/release/gavel" "\$@" &
engine=\$!
echo "\$engine \$*" > "$out/engine.pid"
strace -f -c -o "$out/engine.strace" -p \$engine 2>/dev/null &
wait \$engine
WRAP
chmod +x "$wrapper"
target/release/gavel-loadtest run loadtest/scenarios/baseline-10.toml --rate 300 --engine-bin "$wrapper" --quiet \
    > "$out/run.txt" 2>&1
read -r engine args < "$out/engine.pid"
port=$(echo "$args" | grep -o "listen [0-9.:]*" | cut -d: -f2)
auctions=$(curl -s "127.0.0.1:$port/metrics" | awk '/^gavel_auction_seconds_count/ {s += $2} END {print s}')
# The loadtest has let go of its child; ending the engine makes strace write its table.
kill "$engine"
sleep 2
echo "auctions $auctions"
awk -v n="$auctions" '$4 ~ /^[0-9]+$/ && $4 / n > 0.05 {printf "%-14s %9d %7.2f per auction\n", $NF, $4, $4 / n}' \
    "$out/engine.strace"
