#!/bin/sh
# deb-version.sh [DESCRIBE] — the Debian package version of this checkout,
# from `git describe --tags --always --dirty` (or DESCRIBE, as it prints):
#   v1.4.0                   → 1.4.0
#   v1.4.0-rc2               → 1.4.0~rc2        (sorts before 1.4.0)
#   v1.4.0-3-gabc1234        → 1.4.0+git3.gabc1234 (after 1.4.0)
#   abc1234 (no tag)         → 0.0.0+git<commits>.gabc1234
#   any of them, -dirty      → …+dirty / ….dirty
# A Debian version starts with a digit and holds only [A-Za-z0-9.+~]
# (no '-': that would start a Debian revision).
set -eu
d=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

dirty=
case $d in *-dirty) dirty=1; d=${d%-dirty} ;; esac

# The commits since the tag and the commit: "-N-gHASH" at the end.
since='' hash=''
if printf '%s\n' "$d" | grep -Eq -- '-[0-9]+-g[0-9a-f]{4,}$'; then
	hash=${d##*-}
	d=${d%-*}
	since=${d##*-}
	d=${d%-*}
fi

# No tag: describe prints the commit's abbreviated hash (which may start
# with a digit; one of all digits is told from a tag by asking git).
bare=
if printf '%s\n' "$d" | grep -Eq '^[0-9a-f]{7,}$'; then
	if printf '%s\n' "$d" | grep -q '[a-f]' ||
		{ git rev-parse -q --verify "$d^{commit}" >/dev/null 2>&1 && ! git show-ref -q --tags "$d"; }; then
		bare=1
	fi
fi

if [ -z "$bare" ] && printf '%s\n' "$d" | grep -Eq '^[vV]?[0-9]'; then
	v=${d#[vV]} # a tag
else
	# Count the commits so that later ones sort after.
	n=$(git rev-list --count HEAD 2>/dev/null || echo 0)
	if [ -n "$bare" ]; then
		v="0.0.0+git$n.g$d"
	else
		v="0.0.0+git$n" # "dev": not a git checkout
	fi
fi

# A pre-release after the version ("1.4.0-rc2") sorts before it: '~'.
v=$(printf '%s' "$v" | sed -E 's/^([0-9][0-9.]*)-/\1~/')
[ -n "$since" ] && v="$v+git$since.$hash"
if [ -n "$dirty" ]; then
	case $v in *+*) v="$v.dirty" ;; *) v="$v+dirty" ;; esac
fi
# Whatever is left that Debian refuses becomes '.'.
printf '%s\n' "$v" | sed -E 's/[^A-Za-z0-9.+~]/./g'
