#!/usr/bin/env bash
# Debian packages the kernel oracle (test/support/kernel.ts) needs (ipset: the real-world dumps' sets). Idempotent; run as root
# (CI: `bash scripts/kernel-test-deps.sh` before the tests). Nothing else is downloaded.
set -euo pipefail
pkgs=(iproute2 iptables nftables conntrack ipset)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kernel test deps: all present (${pkgs[*]})"
  exit 0
fi
echo "kernel test deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
