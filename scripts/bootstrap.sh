#!/usr/bin/env bash
# Set up everything ipfs-share needs on a fresh machine, idempotently:
# a virtualenv in .venv with the package (and its dev tools), the pinned Kubo binary, and
# the pinned IPFS Cluster binaries (ipfs-share cluster; built once with Go, then cached).
# Usage: scripts/bootstrap.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

py=${PYTHON:-python3}
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    echo "bootstrap: error: ipfs-share needs Python >= 3.11, found $("$py" --version 2>&1)" >&2
    echo "bootstrap: hint: install Python 3.11+ or point PYTHON at it" >&2
    exit 1
}
[ -x .venv/bin/python ] || "$py" -m venv .venv
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --editable ".${extra}"
.venv/bin/ipfs-share node install
.venv/bin/ipfs-share cluster install
