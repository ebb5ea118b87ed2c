#!/usr/bin/env bash
# Print the path of an nginx binary for the tests of the balancer's configuration.
#
#   scripts/nginx.sh      (the path on standard output; fetched into .tools/ the first time)
#
# An nginx on PATH is used as it is. Otherwise Debian's `nginx` package is downloaded with
# `apt-get download` (no root, nothing installed, no daemon started) and unpacked into
# .tools/nginx: the tests run the binary with a configuration and a prefix of their own.
# The compose file's balancer is nginx too; both read the same `lb` configuration.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.tools/nginx"
BIN="$DIR/usr/sbin/nginx"

die() {
    echo "nginx.sh: $*" >&2
    exit 1
}

if found="$(command -v nginx)"; then
    echo "$found"
    exit 0
fi
if [[ ! -x "$BIN" ]]; then
    command -v apt-get >/dev/null || die "no nginx on PATH and no apt-get to fetch Debian's"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # A machine whose package lists were never fetched knows no nginx: fetch them (root).
    (cd "$tmp" && apt-get download -q nginx >/dev/null 2>&1) \
        || { [[ "$(id -u)" == 0 ]] && apt-get update -q >/dev/null \
            && (cd "$tmp" && apt-get download -q nginx >/dev/null); } \
        || die "could not download Debian's nginx package (apt-get download nginx)"
    mkdir -p "$DIR"
    dpkg -x "$tmp"/nginx_*.deb "$DIR"
fi
"$BIN" -v 2>/dev/null || die "$BIN does not run: $("$BIN" -v 2>&1)"
echo "$BIN"
