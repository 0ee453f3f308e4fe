#!/usr/bin/env bash
# Install the pinned IPFS Cluster binaries (ipfs-cluster-service, ipfs-cluster-ctl) for
# ipfs-share, building them with this machine's Go.
#
# Usage: install-cluster.sh
#   CLUSTER_VERSION    version to install (default: the version ipfs-share pins)
#   IPFS_SHARE_CACHE   cache directory (default: $XDG_CACHE_HOME/ipfs-share or ~/.cache/ipfs-share)
#
# Order: both binaries on PATH reporting the pinned version; else the cached pair
# <cache>/ipfs-cluster/<version>/; else build them. Idempotent: a second run only finds them.
#
# Why not `go install ...@version`: its deprecation lookup is refused by the Go module
# proxy for this module. Cluster's go.mod has no replace or exclude directives, so
# building inside the downloaded module directory yields the release's own build list.
# Prints the directory holding both binaries as the last line of stdout.
set -euo pipefail

version="${CLUSTER_VERSION:-v1.1.6}"
cache_root="${IPFS_SHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ipfs-share}"
dest_dir="$cache_root/ipfs-cluster/$version"

log() { printf 'install-cluster: %s\n' "$*" >&2; }
die() {
    printf 'install-cluster: error: %s\n' "$1" >&2
    [ $# -gt 1 ] && printf 'install-cluster: hint: %s\n' "$2" >&2
    exit 1
}

reports_version() {  # $1: binary; true if it reports $version ("ipfs-cluster-service version 1.1.6")
    local out
    out=$("$1" --version 2>/dev/null) || return 1
    out=${out##* }
    [ "v${out#v}" = "$version" ]
}

svc=$(command -v ipfs-cluster-service 2>/dev/null || true)
ctl=$(command -v ipfs-cluster-ctl 2>/dev/null || true)
if [ -n "$svc" ] && [ -n "$ctl" ] && [ "$(dirname "$svc")" = "$(dirname "$ctl")" ] \
    && reports_version "$svc" && reports_version "$ctl"; then
    log "found ipfs-cluster $version on PATH"
    dirname "$svc"
    exit 0
fi
if [ -x "$dest_dir/ipfs-cluster-service" ] && [ -x "$dest_dir/ipfs-cluster-ctl" ] \
    && reports_version "$dest_dir/ipfs-cluster-service" && reports_version "$dest_dir/ipfs-cluster-ctl"; then
    log "found cached ipfs-cluster $version"
    printf '%s\n' "$dest_dir"
    exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not installed, so IPFS Cluster $version cannot be built here" \
    "install Go >= 1.24, or run a cluster in Docker: docker compose -f docker/cluster-compose.yml up -d"

work=$(mktemp -d "${TMPDIR:-/tmp}/ipfs-share-cluster-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

log "[1/2] fetching github.com/ipfs-cluster/ipfs-cluster@$version from the Go module proxy"
src=$(go mod download -json "github.com/ipfs-cluster/ipfs-cluster@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] && [ -f "$src/go.mod" ] || die "could not download IPFS Cluster $version" \
    "check the version exists and the Go module proxy is reachable"

need=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$src/go.mod")
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
    die "IPFS Cluster $version needs Go >= $need, this machine has Go $have" \
        "upgrade Go, or run a cluster in Docker: docker compose -f docker/cluster-compose.yml up -d"
fi

log "[2/2] building ipfs-cluster-service and ipfs-cluster-ctl (a few minutes on a cold cache)"
mkdir -p "$dest_dir"
stage="$dest_dir/.build.$$"
mkdir -p "$stage"
# The module cache is read-only; build from it without writing there (-mod=mod lets Go
# record the sums it checks in memory only) and put both binaries in a staging folder.
(cd "$src" && GOFLAGS=-mod=mod go build -trimpath -o "$stage/" \
    ./cmd/ipfs-cluster-service ./cmd/ipfs-cluster-ctl) \
    || { rm -rf "$stage"; die "go build of IPFS Cluster $version failed" \
         "see the output above; or run a cluster in Docker: docker compose -f docker/cluster-compose.yml up -d"; }
for bin in ipfs-cluster-service ipfs-cluster-ctl; do
    reports_version "$stage/$bin" || { rm -rf "$stage"; die "the built $bin does not report $version"; }
done
# Each mv is atomic: a reader never sees a half-written binary. ctl goes first so that a
# present service binary implies a present ctl.
mv -f "$stage/ipfs-cluster-ctl" "$dest_dir/ipfs-cluster-ctl"
mv -f "$stage/ipfs-cluster-service" "$dest_dir/ipfs-cluster-service"
rmdir "$stage"
log "installed $dest_dir"
printf '%s\n' "$dest_dir"
