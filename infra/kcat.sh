#!/usr/bin/env bash
# Install Debian's kcat (librdkafka-based Kafka CLI client) if it is missing.
# Tests use it as an independent client that proves our topics are plain Kafka.
# Needs root (developers' machines and CI run as root); idempotent.
set -euo pipefail

if command -v kcat >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "kcat is missing and installing it needs root: sudo apt-get install -y kcat" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq kcat >/dev/null
kcat -V | head -n 4 | tail -n 1
