#!/usr/bin/env bash
# Install the pinned Kubo (ipfs) binary for ipfs-share, building it with this machine's Go.
#
# Usage: install-kubo.sh [--print-path]
#   KUBO_VERSION   version to install (default: the version ipfs-share pins)
#   IPFS_SHARE_CACHE   cache directory (default: $XDG_CACHE_HOME/ipfs-share or ~/.cache/ipfs-share)
#
# Order: an `ipfs` on PATH that reports the pinned version; else the cached binary
# <cache>/kubo/<version>/ipfs; else build it. Idempotent: a second run only finds it.
#
# Why a wrapper module: `go install github.com/ipfs/kubo/cmd/ipfs@vX` is refused because
# Kubo's go.mod has `exclude` (and `replace`) directives, which only apply in the main
# module. So we make a throwaway main module that requires Kubo and copies those blocks
# from Kubo's own go.mod, which yields the same build list Kubo's release uses.
# Prints the binary's path as the last line of stdout.
set -euo pipefail

version="${KUBO_VERSION:-v0.43.0}"
cache_root="${IPFS_SHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ipfs-share}"
dest_dir="$cache_root/kubo/$version"
dest="$dest_dir/ipfs"

log() { printf 'install-kubo: %s\n' "$*" >&2; }
die() {
    printf 'install-kubo: error: %s\n' "$1" >&2
    [ $# -gt 1 ] && printf 'install-kubo: hint: %s\n' "$2" >&2
    exit 1
}

reports_version() {  # $1: binary; true if it reports $version
    local out
    out=$("$1" version --number 2>/dev/null) || return 1
    [ "v${out#v}" = "$version" ]
}

if on_path=$(command -v ipfs 2>/dev/null) && reports_version "$on_path"; then
    log "found ipfs $version on PATH"
    printf '%s\n' "$on_path"
    exit 0
fi
if [ -x "$dest" ] && reports_version "$dest"; then
    log "found cached ipfs $version"
    printf '%s\n' "$dest"
    exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not installed, so Kubo $version cannot be built here" \
    "install Go >= 1.26.5, or run Kubo in Docker: docker compose -f docker/compose.yml up -d"

work=$(mktemp -d "${TMPDIR:-/tmp}/ipfs-share-kubo-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

log "[1/4] fetching github.com/ipfs/kubo@$version from the Go module proxy"
kubo_dir=$(go mod download -json "github.com/ipfs/kubo@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$kubo_dir" ] && [ -f "$kubo_dir/go.mod" ] || die "could not download Kubo $version" \
    "check the version exists and the Go module proxy is reachable"

need=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kubo_dir/go.mod")
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
    die "Kubo $version needs Go >= $need, this machine has Go $have" \
        "upgrade Go, or run Kubo in Docker: docker compose -f docker/compose.yml up -d"
fi

log "[2/4] writing a wrapper module with Kubo's exclude and replace directives"
{
    printf 'module ipfs-share.local/kubo-build\n\ngo %s\n\nrequire github.com/ipfs/kubo %s\n\n' "$need" "$version"
    # Copy every exclude/replace directive, in block or single-line form.
    awk '
        /^(exclude|replace)[[:space:]]*\($/ { inblock = 1; print; next }
        inblock { print; if ($0 ~ /^\)/) { inblock = 0; print "" } ; next }
        /^(exclude|replace)[[:space:]]/ { print; print "" }
    ' "$kubo_dir/go.mod"
} > go.mod
printf 'package main\n' > tools.go   # a module needs a package for `go get` to settle

log "[3/4] resolving dependencies (first run downloads a few hundred modules)"
if ! GOFLAGS=-mod=mod go get "github.com/ipfs/kubo@$version" > "$work/get.log" 2>&1; then
    grep -v '^go: downloading' "$work/get.log" | tail -n 20 >&2
    die "could not resolve Kubo $version's dependencies from the Go module proxy" \
        "see the lines above; or run Kubo in Docker: docker compose -f docker/compose.yml up -d"
fi
log "      $(grep -c '^go: downloading' "$work/get.log" || true) modules downloaded"

log "[4/4] building ipfs (several minutes on a cold cache)"
mkdir -p "$dest_dir"
tmp_bin="$dest_dir/.ipfs.tmp.$$"
GOFLAGS=-mod=mod go build -trimpath -o "$tmp_bin" github.com/ipfs/kubo/cmd/ipfs \
    || { rm -f "$tmp_bin"; die "go build of Kubo $version failed" \
         "see the output above; or run Kubo in Docker: docker compose -f docker/compose.yml up -d"; }
reports_version "$tmp_bin" || { rm -f "$tmp_bin"; die "the built binary does not report $version"; }
mv -f "$tmp_bin" "$dest"   # atomic: a reader sees no half-written binary
log "installed $dest"
printf '%s\n' "$dest"
