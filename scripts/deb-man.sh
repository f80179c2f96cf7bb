#!/bin/sh
# deb-man.sh DEPOT VERSION EPOCH — the manual page depot(1), in roff, from
# the help of the binary DEPOT (a build for this machine): `depot help` and
# the flags of `depot serve -h`, verbatim. make deb gzips it (-9n) into
# /usr/share/man/man1/depot.1.gz; dated EPOCH (the commit's time), so the
# same commit gives the same page.
set -eu
depot=$1
version=$2
epoch=$3
date=$(date -u -d "@$epoch" +%Y-%m-%d)

# Verbatim text for a .nf block: backslashes and minus signs escaped, and a
# line starting with a control character protected.
verbatim() {
	sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

usage=$("$depot" help) || { echo "deb-man: $depot help failed" >&2; exit 1; }
# `depot serve -h` prints its flags on stderr and exits 2 (flag.ErrHelp).
flags=$("$depot" serve -h 2>&1 >/dev/null || true)
printf '%s\n' "$flags" | grep -q '^Usage: depot serve' || { echo "deb-man: no flags from $depot serve -h" >&2; exit 1; }

cat <<HEAD
.TH DEPOT 1 "$date" "depot $version" "Depot Command Central"
.SH NAME
depot \\- live routes and drivers for a delivery depot
.SH SYNOPSIS
.B depot
.RI [ command ]
.RI [ flags ]
.SH DESCRIPTION
One program with an MQTT broker for the drivers' handhelds, its own store and
the dispatchers' web dashboard.
The package runs it as the systemd service
.B depot.service
(\\fBdepot serve \\-\\-data /var/lib/depot\\fR) with the settings of
.IR /etc/default/depot .
.PP
This page is the program's own help.
.SH COMMANDS
.nf
HEAD
printf '%s\n' "$usage" | verbatim
cat <<MID
.fi
.SH SERVE FLAGS
.nf
MID
printf '%s\n' "$flags" | verbatim
cat <<TAIL
.fi
.SH FILES
.TP
.I /etc/default/depot
the service's settings: DEPOT_<FLAG_NAME>=value for every flag of
.BR "depot serve" ,
commented out, with help and default (\\fBdepot env\\-file\\fR prints it)
.TP
.I /var/lib/depot
the service's data (really
.IR /var/lib/private/depot ,
as systemd's DynamicUser keeps it), its backups in
.I backups/
.TP
.I /lib/systemd/system/depot.service
the unit (change it with \\fBsystemctl edit depot\\fR)
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1);
the operator's manual,
.IR \%/usr/share/doc/depot/README.operators .
TAIL
