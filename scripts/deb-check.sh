#!/usr/bin/env bash
# deb-check.sh: build the depot's Debian packages (make deb) and check them
# on this machine, as root: their metadata and files, lintian (which fails
# the check on an error; packaging/lintian-overrides keeps what stays, with
# reasons), then install the one of this machine's architecture, run it,
# verify its unit, remove it (the data is kept) and purge it (the data goes). Run by .ci/run after
# `make test`, on a clean Debian machine where systemd does not run (the
# postinst must then start nothing and not fail). Refuses to touch a depot
# package already installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
step() { printf '\n== deb-check: %s (%ss)\n' "$*" "$((SECONDS - t0))"; }
fail() {
	printf 'deb-check: FAIL: %b\n' "$*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs the package)"
command -v dpkg-deb >/dev/null || fail "dpkg-deb missing: not a Debian machine"
command -v lintian >/dev/null || fail "lintian missing: apt-get install lintian"
if dpkg-query -W -f='${Status}' depot 2>/dev/null | grep -q 'ok installed'; then
	fail "a depot package is installed on this machine; deb-check leaves it alone"
fi
for d in /var/lib/depot /var/lib/private/depot /etc/default/depot /etc/systemd/system/depot.service \
	/etc/systemd/system/multi-user.target.wants/depot.service; do
	[ ! -e "$d" ] || fail "$d exists: this machine has (or had) a depot; deb-check leaves it alone"
done

step "make deb"
rm -f dist/depot_*.deb
make --no-print-directory -j2 deb
version=$(scripts/deb-version.sh "$(git describe --tags --always --dirty 2>/dev/null || echo dev)")
printf '%s\n' "$version" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$' || fail "version $version is not Debian-valid"

step "package contents ($version)"
for arch in amd64 arm64; do
	deb=dist/depot_${version}_${arch}.deb
	[ -f "$deb" ] || fail "$deb not built (have: $(ls dist))"
	info=$(dpkg-deb -I "$deb")
	for want in "Package: depot" "Version: $version" "Architecture: $arch"; do
		grep -qF " $want" <<<"$info" || fail "$deb: no '$want' in:\n$info"
	done
	for script in postinst prerm postrm conffiles; do
		grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\*? +$script( |$)" <<<"$info" || fail "$deb: no $script"
	done
	x=$(mktemp -d)
	dpkg-deb -x "$deb" "$x/root"
	dpkg-deb -e "$deb" "$x/control"
	grep -qx /etc/default/depot "$x/control/conffiles" || fail "$deb: /etc/default/depot is not a conffile"
	list=$(dpkg-deb -c "$deb")
	for f in "-rwxr-xr-x root/root .* ./usr/bin/depot" \
		"-rw-r--r-- root/root .* ./lib/systemd/system/depot.service" \
		"-rw------- root/root .* ./etc/default/depot" \
		"-rw-r--r-- root/root .* ./usr/share/doc/depot/README.operators" \
		"-rw-r--r-- root/root .* ./usr/share/doc/depot/copyright" \
		"-rw-r--r-- root/root .* ./usr/share/doc/depot/changelog.gz" \
		"-rw-r--r-- root/root .* ./usr/share/man/man1/depot.1.gz" \
		"-rw-r--r-- root/root .* ./usr/share/lintian/overrides/depot"; do
		grep -Eq -- "^$f\$" <<<"$list" || fail "$deb: no file matching '$f' in:\n$list"
	done
	# The binary is for the package's architecture: ELF e_machine (bytes
	# 18-19, little-endian) 0x3e amd64, 0xb7 arm64.
	machine=$(od -An -tx1 -j18 -N2 "$x/root/usr/bin/depot" | tr -d ' \n')
	case $arch:$machine in
	amd64:3e00 | arm64:b700) ;;
	*) fail "$deb: /usr/bin/depot is for machine $machine" ;;
	esac
	cmp -s "$x/root/etc/default/depot" packaging/depot.default ||
		fail "$deb: /etc/default/depot differs from packaging/depot.default"
	cmp -s "$x/root/lib/systemd/system/depot.service" packaging/depot.service ||
		fail "$deb: the unit differs from packaging/depot.service"
	zcat "$x/root/usr/share/doc/depot/changelog.gz" | head -n 1 | grep -qF "depot ($version) " ||
		fail "$deb: the changelog's first entry is not $version"
	# Every Go module compiled into the binary is in the copyright file.
	mods=$(go version -m "$x/root/usr/bin/depot" | awk '$1 == "dep" { print $2 }')
	[ -n "$mods" ] || fail "$deb: no modules in the binary's build info"
	for m in $mods; do
		grep -qE "^Files:( .*)? ${m//./\\.}/\\*( |\$)" packaging/copyright ||
			fail "$deb: Go module $m is in the binary but not in packaging/copyright"
	done
	rm -rf "$x"
	echo "$deb: $(du -h "$deb" | cut -f1), files and scripts as expected"
done

step "lintian"
for arch in amd64 arm64; do
	# An error (E:) fails the check, as --fail-on error would; warnings and
	# the overrides (O:, with their reasons) are shown. (--fail-on error
	# with --show-overrides counts overridden errors too.)
	deb=dist/depot_${version}_${arch}.deb
	out=$(lintian --fail-on none --show-overrides "$deb" 2>&1) || fail "lintian did not run on $deb:\n$out"
	printf '%s\n' "$out" | grep -v '^running with root privileges' || true
	! grep -q '^E: ' <<<"$out" || fail "lintian found errors in $deb"
	echo "lintian $deb: no errors"
done

host=$(dpkg --print-architecture)
deb=dist/depot_${version}_${host}.deb
[ -f "$deb" ] || { echo "deb-check: no package for this machine's architecture ($host): not installed"; exit 0; }
cleanup() {
	if dpkg-query -W -f='${Status}' depot 2>/dev/null | grep -q 'ok installed\|config-files\|half'; then
		dpkg -P depot >/dev/null 2>&1 || true
	fi
	rm -rf /var/lib/depot /var/lib/private/depot
}
trap cleanup EXIT

step "dpkg -i $deb"
out=$(dpkg -i "$deb" 2>&1) || fail "dpkg -i:\n$out"
echo "$out"
grep -qF 'journalctl -u depot | grep -i password' <<<"$out" || fail "postinst did not say how to read the first password"
grep -q 'Dashboard: *http://.*:8080/' <<<"$out" || fail "postinst did not give the dashboard's address"
dpkg-query -W -f='${Status}\n' depot | grep -qx 'install ok installed' || fail "not installed"
got=$(/usr/bin/depot version)
[ "$got" = "depot $(git describe --tags --always --dirty 2>/dev/null)" ] || fail "depot version: $got"
echo "/usr/bin/depot version: $got"
/usr/bin/depot env-file | cmp -s - /etc/default/depot || fail "/etc/default/depot differs from the installed depot env-file"
[ "$(stat -c %a /etc/default/depot)" = 600 ] || fail "/etc/default/depot mode $(stat -c %a /etc/default/depot)"
# Enabled by deb-systemd-helper even where systemd does not run (it starts
# at the next boot), as dh_installsystemd's snippets do.
[ "$(readlink /etc/systemd/system/multi-user.target.wants/depot.service)" = /lib/systemd/system/depot.service ] ||
	fail "the service is not enabled after install"

if command -v systemd-analyze >/dev/null; then
	step "systemd-analyze"
	systemd-analyze verify /lib/systemd/system/depot.service || fail "systemd-analyze verify"
	echo "systemd-analyze verify: ok"
	systemd-analyze security --offline=yes /lib/systemd/system/depot.service 2>/dev/null | tail -n 1 || true
else
	echo "deb-check: systemd-analyze not on this machine: the unit is not verified"
fi

step "dpkg -r keeps the data"
# The data as DynamicUser lays it: the real directory under private/.
mkdir -p /var/lib/private/depot/db && echo kept >/var/lib/private/depot/db/marker
ln -s private/depot /var/lib/depot
echo 'DEPOT_DEPOT=CHECK1' >>/etc/default/depot
out=$(dpkg -r depot 2>&1) || fail "dpkg -r:\n$out"
[ ! -e /usr/bin/depot ] || fail "dpkg -r left /usr/bin/depot"
[ ! -e /lib/systemd/system/depot.service ] || fail "dpkg -r left the unit"
[ "$(cat /var/lib/depot/db/marker)" = kept ] || fail "dpkg -r removed the data"
grep -qx 'DEPOT_DEPOT=CHECK1' /etc/default/depot || fail "dpkg -r removed the changed settings"
echo "removed; /var/lib/depot and /etc/default/depot kept"

step "dpkg -P deletes the data"
out=$(dpkg -P depot 2>&1) || fail "dpkg -P:\n$out"
for d in /var/lib/depot /var/lib/private/depot /etc/default/depot /etc/systemd/system/depot.service \
	/etc/systemd/system/multi-user.target.wants/depot.service; do
	if [ -e "$d" ] || [ -L "$d" ]; then fail "dpkg -P left $d"; fi
done
dpkg-query -W depot >/dev/null 2>&1 && fail "dpkg -P left the package known to dpkg"
echo "purged: no data, no settings"

step "done"
echo "deb-check: 1 passed, 0 failed"
