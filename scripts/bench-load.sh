#!/usr/bin/env bash
# Runs one `depot bench` load against a fresh appliance on this machine:
# writes the matching route feed, starts `depot serve` on an empty data
# directory, runs the bench, stops the appliance and removes its data.
#
#   scripts/bench-load.sh DRIVERS RATE DASHBOARDS DURATION [depot bench flags…]
#   scripts/bench-load.sh 1000 10 10 20s --json --baseline
#
# `make bench-load` runs every load of the README's Performance table.
set -euo pipefail
if [ $# -lt 4 ]; then
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
drivers=$1 rate=$2 dashboards=$3 duration=$4
shift 4
bin=${DEPOT_BIN:-./bin/depot}
http=${BENCH_HTTP:-127.0.0.1:18080} mqtt=${BENCH_MQTT:-127.0.0.1:11883}
export DEPOT_ADMIN_PASSWORD=${DEPOT_ADMIN_PASSWORD:-bench-pass-1}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
"$bin" bench feed --drivers "$drivers" >"$dir/feed.json"
"$bin" serve --cortex-url "file://$dir/feed.json" --data "$dir/data" \
	--http-addr "$http" --mqtt-addr "$mqtt" --log-level warn >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -sf "http://$http/readyz" >/dev/null && break
	sleep 0.1
done
"$bin" bench --http "$http" --mqtt "$mqtt" --drivers "$drivers" --rate "$rate" \
	--dashboards "$dashboards" --duration "$duration" "$@"
