#!/bin/sh
# Configure the Kubo container for ipfs-share. The official image runs every
# /container-init.d/*.sh on each container start, after `ipfs init` and before
# `ipfs daemon` (executed if executable, else sourced by the image's POSIX sh), so this
# stays POSIX sh and idempotent: setting a key to the value it has changes nothing.
set -e   # not -u: when sourced, it would leak into the image's entrypoint shell

# Pubsub carries real-time mailbox notices and IPNS-over-pubsub. These are config keys;
# the --enable-pubsub-experiment and --enable-namesys-pubsub daemon flags are deprecated.
ipfs config --json Pubsub.Enabled true
ipfs config --json Ipns.UsePubsub true
