#!/usr/bin/env bash
# deb-systemd.sh: the depot package under a real systemd. Boots a minimal
# Debian (debootstrap, kept in $DEPOT_NSPAWN_ROOT for the next run) with
# systemd-nspawn, installs dist/depot_*_amd64.deb in it and checks that the
# hardened unit starts (READY=1), is pinged by the watchdog, survives an
# upgrade in place, and is removed (data kept) and purged (data gone).
# Not part of `make test` or CI (a few minutes, and a container); run as
# root: make deb && scripts/deb-systemd.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=${DEPOT_NSPAWN_ROOT:-/var/tmp/depot-nspawn}
fail() {
	printf 'deb-systemd: FAIL: %b\n' "$*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || fail "run as root"
# shellcheck disable=SC2012 # our own file names
deb=$(ls -t dist/depot_*_amd64.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no dist/depot_*_amd64.deb: make deb first"
if ! command -v systemd-nspawn >/dev/null || ! command -v debootstrap >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd-container debootstrap
fi
if [ ! -x "$root/usr/lib/systemd/systemd" ]; then
	echo "deb-systemd: debootstrap into $root"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$root"
fi
cp "$deb" "$root/root/depot.deb"

log=$(mktemp)
systemd-nspawn -q -D "$root" -b --register=no --keep-unit --console=passive -M depotcheck >"$log" 2>&1 &
nspawn=$!
leader=
stop() {
	if [ -n "$leader" ]; then nsenter -t "$leader" -a -- systemctl poweroff >/dev/null 2>&1 || true; fi
	for _ in $(seq 50); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
	kill "$nspawn" 2>/dev/null || true
	wait "$nspawn" 2>/dev/null || true
	rm -f "$log"
}
trap stop EXIT
ct() { nsenter -t "$leader" -a -- "$@"; }
for _ in $(seq 100); do
	leader=$(pgrep -P "$nspawn" -x systemd || true)
	[ -n "$leader" ] && break
	sleep 0.2
done
[ -n "$leader" ] || fail "the container did not boot:\n$(cat "$log")"
for _ in $(seq 100); do
	case $(ct systemctl is-system-running 2>/dev/null || true) in running | degraded) break ;; esac
	sleep 0.3
done
prop() { ct systemctl show depot -P "$1"; }
# (The journal is read whole into a variable: grep -q ending a pipe early
# would fail the pipe under pipefail.)
journal() { ct journalctl -u depot --no-pager --since "$since"; }

# A run that failed may have left its install behind: start clean.
ct dpkg -P depot >/dev/null 2>&1 || true
ct rm -rf /var/lib/depot /var/lib/private/depot
since=@$(ct date +%s) # this run's journal only

echo "== install"
ct dpkg -i /root/depot.deb
[ "$(prop ActiveState)" = active ] || fail "not active after install:\n$(journal | tail -n 20)"
echo "status: $(prop StatusText)"
for _ in $(seq 50); do
	grep -q 'created user admin with a generated password' <<<"$(journal)" && break
	sleep 0.2
done
grep -q 'created user admin with a generated password' <<<"$(journal)" ||
	fail "journalctl -u depot shows no first password:\n$(journal | tail -n 20)"
# The manual's command: journalctl -u depot | grep -i password
found=$(grep -i password <<<"$(journal)" || true)
grep -q 'password=' <<<"$found" || fail "the documented grep finds no password"

echo "== watchdog (25 s)"
first=$(prop WatchdogTimestampMonotonic)
sleep 25
[ "$(prop WatchdogTimestampMonotonic)" -gt "$first" ] || fail "no watchdog ping in 25 s"
[ "$(prop NRestarts)" = 0 ] || fail "restarted:\n$(journal | tail -n 30)"
if grep -q 'not alive' <<<"$(journal)"; then
	fail "the watchdog found it not alive:\n$(grep 'not alive' <<<"$(journal)")"
fi
ct systemd-analyze security depot --no-pager | tail -n 1

echo "== upgrade in place"
pid=$(prop MainPID)
ct dpkg -i /root/depot.deb >/dev/null
[ "$(prop ActiveState)" = active ] || fail "not active after the upgrade"
[ "$(prop MainPID)" != "$pid" ] || fail "not restarted by the upgrade"

echo "== remove, purge"
ct dpkg -r depot >/dev/null
[ "$(prop ActiveState)" = inactive ] || fail "still running after dpkg -r"
ct test -f /var/lib/depot/jwt.key || fail "dpkg -r removed the data"
ct dpkg -P depot >/dev/null
if ct test -e /var/lib/private/depot; then fail "dpkg -P left /var/lib/private/depot"; fi
echo "deb-systemd: 1 passed, 0 failed"
