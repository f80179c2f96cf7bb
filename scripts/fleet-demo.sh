#!/usr/bin/env bash
# The fleet on one machine (make fleet-demo): a three-node NATS JetStream
# cluster (the real nats-server, built from the module cache), three demo
# depots forwarding to it, and two `depot hq` instances over it. Ctrl-C
# stops everything; FLEET_DIR keeps the data (a fresh directory otherwise).
#
#   fleet page:   http://localhost:8090 and http://localhost:8091 (admin / $DEPOT_ADMIN_PASSWORD)
#   depots:       http://localhost:8081 (north), 8082 (south), 8083 (east)
set -euo pipefail
bin=${DEPOT_BIN:-./bin/depot}
nats=${NATS_BIN:-./bin/nats-server}
export DEPOT_ADMIN_PASSWORD=${DEPOT_ADMIN_PASSWORD:-fleet-demo-1}
dir=${FLEET_DIR:-$(mktemp -d)}
mkdir -p "$dir/logs"
pids=()
stop() {
	trap - EXIT INT TERM
	echo; echo "stopping the fleet…"
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	[ -n "${FLEET_DIR:-}" ] || rm -rf "$dir"
}
trap stop EXIT INT TERM

routes=nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224
upstream=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
declare -A who
for i in 0 1 2; do
	"$nats" -n "n$i" -a 127.0.0.1 -p $((4222 + i)) -js -sd "$dir/nats$i" --cluster_name fleet \
		--cluster nats://127.0.0.1:$((6222 + i)) --routes "$routes" --no_advertise >"$dir/logs/nats$i.log" 2>&1 &
	pids+=($!); who[n$i]=$!
done
for port in 4222 4223 4224; do
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
i=0
for d in north south east; do
	"$bin" serve --demo --depot "$d" --data "$dir/$d" --http-addr "127.0.0.1:$((8081 + i))" \
		--mqtt-addr "127.0.0.1:$((1884 + i))" --upstream "$upstream" --upstream-replicas 3 \
		--log-level warn >"$dir/logs/$d.log" 2>&1 &
	pids+=($!); who[$d]=$!
	i=$((i + 1))
done
for i in 1 2; do
	"$bin" hq --upstream "$upstream" --upstream-replicas 3 --http-addr "127.0.0.1:$((8089 + i))" \
		--instance "hq$i" --log-level warn >"$dir/logs/hq$i.log" 2>&1 &
	pids+=($!); who[hq$i]=$!
done
for _ in $(seq 150); do
	curl -sf http://127.0.0.1:8090/readyz >/dev/null && curl -sf http://127.0.0.1:8091/readyz >/dev/null && break
	sleep 0.2
done
cat <<MSG

The fleet is up (data and logs in $dir):
  fleet page   http://localhost:8090  and  http://localhost:8091   (admin / $DEPOT_ADMIN_PASSWORD)
  depots       http://localhost:8081 north · 8082 south · 8083 east (same admin)

See it survive (the page stays live, nothing is lost or shown twice):
  kill a NATS node            kill ${who[n0]}      (n1: ${who[n1]}, n2: ${who[n2]})
  kill the hq you are on      kill ${who[hq1]}     (hq2: ${who[hq2]}); the page moves to the other
                              when both sit behind one address (any load balancer, no sticky sessions)
  cut a depot off, then back  kill -STOP ${who[east]} … kill -CONT ${who[east]}
                              (east goes stale on the fleet page, then catches up)
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "a part of the fleet stopped; see $dir/logs"
wait
