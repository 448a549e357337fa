#!/usr/bin/env bash
# Deletes network namespaces left behind by test/support/kernel.ts when a test process was killed
# hard (SIGKILL): names are svcpath-[tag-]<pid>-<n>-node|peer, and only those whose <pid> is no
# longer running are removed. Touches nothing else (never the root namespace).
set -euo pipefail
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
  if [[ "$ns" =~ ^svcpath-(.*-)?([0-9]+)-([0-9]+)-(node|peer)$ ]]; then
    pid="${BASH_REMATCH[2]}"
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "deleting stale namespace $ns (pid $pid is gone)"
      ip netns del "$ns" || true
    fi
  fi
done
