#!/usr/bin/env bash
# Build the local stand-in for python:3.11-slim-bookworm where no container
# registry is reachable: a minimal Debian bookworm with Python 3.11, made with
# debootstrap from the machine's Debian mirror and imported into podman.
#   docker/build-local-base.sh [IMAGE]   (default localhost/bookworm-python:local)
# Does nothing when the image already exists.
set -euo pipefail

image="${1:-localhost/bookworm-python:local}"
if podman image exists "$image"; then
    echo "base image $image already exists"
    exit 0
fi
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
echo "building $image with debootstrap from $mirror"
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,passwd \
    bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$image" > /dev/null
echo "built $image"
