#!/usr/bin/env bash
# The system tools the container and deployment tests use, installed from
# Debian's packages when missing: podman with runc (Docker's engine does not run
# everywhere), buildah, debootstrap for the local base image, cron for its
# `crontab -n` check, the ShellCheck linter and docker-compose for the compose
# file check, and Chromium (headless) to render `etl report` in its test. Python tools (hadolint, the Kafka test broker) come from
# requirements-dev.txt. Run by `make test`.
set -euo pipefail

packages=(podman buildah runc debootstrap cron shellcheck docker-compose chromium)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
    echo "missing test tools: ${missing[*]} — install them (Debian: sudo apt-get install ${missing[*]})," >&2
    echo "or run the suite without the container and deployment tests: make test-quick" >&2
    exit 1
fi
echo "installing test tools: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
