#!/bin/sh
# Installs the Debian packages mxdv needs when their commands are missing (root + apt-get).
# Usage: install_system.sh PACKAGE...   (the Makefile passes the list)
set -eu
missing=""
for pkg in "$@"; do
  case "$pkg" in
    iverilog) cmd=iverilog ;;
    g++) cmd=g++ ;;
    make) cmd=make ;;
    perl) cmd=perl ;;
    python3) cmd=python3 ;;
    liblz4-dev) [ -f /usr/include/lz4.h ] && continue; missing="$missing $pkg"; continue ;;  # Verilator FST traces
    zlib1g-dev) [ -f /usr/include/zlib.h ] && continue; missing="$missing $pkg"; continue ;;
    chromium) cmd=chromium ;;  # renders report.html in the tests
    python3-venv) if python3 -c 'import ensurepip, venv' 2>/dev/null; then continue; fi; missing="$missing $pkg"; continue ;;
    *) cmd="$pkg" ;;
  esac
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
echo "mxdv: installing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
  echo "mxdv: need root to apt-get install$missing (or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
