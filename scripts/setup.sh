#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian (bookworm) machine, as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (sudo make setup): it installs Debian packages and kernel headers" >&2
  exit 2
fi

PKGS=(python3-bpfcc bpfcc-tools bpftool python3-venv python3-dev gcc make iproute2 iptables
      conntrack nftables tcpdump tshark procps kmod util-linux)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer for it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Kernel headers for bcc: bcc only compiles when /lib/modules/$(uname -r)/build exists.
# tcpwatch's BPF code takes every struct offset from BTF and every tracepoint field offset
# from tracefs, so the distribution's generic headers are enough when the running kernel
# has no header package of its own.
KREL=$(uname -r)
if [ ! -e "/lib/modules/$KREL/build" ]; then
  if apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
    apt-get install -y -qq "linux-headers-$KREL" >/dev/null
  else
    dpkg-query -W -f='${Status}' linux-headers-amd64 2>/dev/null | grep -q "install ok installed" \
      || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-headers-amd64 >/dev/null; }
    arch_dir=$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n1)
    common_dir=$(ls -d /usr/src/linux-headers-*-common | sort -V | tail -n1)
    mkdir -p "/lib/modules/$KREL"
    ln -sfn "$arch_dir" "/lib/modules/$KREL/build"
    ln -sfn "$common_dir" "/lib/modules/$KREL/source"
    echo "setup: note: no headers package for kernel $KREL; linked $arch_dir as /lib/modules/$KREL/build"
    echo "setup: note: (safe: tcpwatch reads struct offsets from BTF and tracepoint layouts from tracefs)"
  fi
fi

# tracefs: tracepoint formats and ids live there.
if [ ! -e /sys/kernel/tracing/events ] && [ ! -e /sys/kernel/debug/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || mount -t debugfs nodev /sys/kernel/debug || true
fi

# The venv sees Debian's bcc through the system site-packages.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

# `sudo tcpwatch ...` and root's PATH.
ln -sfn "$ROOT/.venv/bin/tcpwatch" /usr/local/bin/tcpwatch
echo "setup: ok ($(/usr/local/bin/tcpwatch --version))"
