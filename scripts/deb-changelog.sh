#!/bin/sh
# deb-changelog.sh VERSION EPOCH — the package's Debian changelog
# (/usr/share/doc/depot/changelog.gz; make deb gzips it with -9n). The
# package is native (its packaging is part of this source, its version has
# no Debian revision), so the file is changelog.gz, not changelog.Debian.gz.
# One entry for the version being built, dated EPOCH (the commit's time,
# SOURCE_DATE_EPOCH), so that the same commit gives the same file. The
# project keeps no release notes of its own: the entry names the commit.
set -eu
version=$1
epoch=$2
maintainer=$(sed -n 's/^maintainer: *//p' packaging/nfpm.yaml)
[ -n "$maintainer" ] || { echo "deb-changelog: no maintainer in packaging/nfpm.yaml" >&2; exit 1; }
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
what="commit $commit."
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	what="commit $commit
    (with uncommitted changes)."
fi
date=$(LC_ALL=C date -u -R -d "@$epoch")
cat <<CHANGES
depot ($version) stable; urgency=medium

  * Built from git $what

 -- $maintainer  $date
CHANGES
