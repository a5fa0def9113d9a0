#!/bin/sh
# Container entrypoint: seed the numba cache, then exec driftmon (PID 1 gets SIGTERM).
#
# numba only uses NUMBA_CACHE_DIR when it can write there (it probes with a temporary
# file); with a read-only root filesystem the image's prebuilt cache would be skipped and
# every kernel compiled again at start. So the cache compiled at build time is copied to
# a writable NUMBA_CACHE_DIR (an emptyDir in Kubernetes: /tmp/numba-cache) first.
set -eu
seed="${DRIFTMON_NUMBA_CACHE_SEED:-/opt/driftmon/numba-cache}"
if [ -n "${NUMBA_CACHE_DIR:-}" ] && [ "$NUMBA_CACHE_DIR" != "$seed" ] && [ -d "$seed" ]; then
  mkdir -p "$NUMBA_CACHE_DIR"
  cp -R "$seed/." "$NUMBA_CACHE_DIR/"
fi
exec driftmon "$@"
