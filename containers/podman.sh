#!/usr/bin/env bash
# podman with the settings this project's machines need (rootful, hybrid cgroups, no bridge
# networking, pip's registry reached through the machine's CA bundle and pip configuration).
#
#   containers/podman.sh build -t credit-risk .
#   containers/podman.sh run --rm credit-risk credit-risk info
#   containers/podman.sh image inspect --format '{{.Size}}' credit-risk
#
# Any podman command line works; this adds, for every command: `--cgroup-manager=cgroupfs`, run
# inside a private mount namespace (`unshare -m`) from which the cgroup2 mount is removed when
# the host also mounts cgroup v1 hierarchies ("hybrid" cgroups, where crun otherwise fails to
# set up the container's cgroups); for `build`, `run` and `create`: `--network host` and
# `--ulimit nofile=4096:4096 --ulimit nproc=4096:4096`; for `run` and `create`:
# `--cgroups=disabled`; for `build`: `--pull=never` (the base image comes from
# containers/base-image.sh) and read-only mounts of /etc/ssl/certs and /etc/xdg/pip when they
# exist, so that pip inside the build uses the machine's CA bundle and pip configuration.
# With `--network host` a container's port is the host's: pick it with the server's own
# `--port`, not `-p`.
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 PODMAN-COMMAND [ARGS...]" >&2
  exit 2
fi
command -v podman >/dev/null || { echo "podman is not installed (apt-get install podman)" >&2; exit 1; }

subcommand=$1
shift
# CREDIT_RISK_PODMAN_NETWORK= (empty) leaves the network to the caller (podman-compose's own).
network=${CREDIT_RISK_PODMAN_NETWORK-host}
extra=()
case "$subcommand" in
  build)
    extra+=(--format docker --network host --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --pull=never)
    for dir in /etc/ssl/certs /etc/xdg/pip; do
      if [[ -d "$dir" ]]; then extra+=(-v "$dir:$dir:ro"); fi
    done
    ;;
  run | create)
    extra+=(--cgroups=disabled --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
    if [[ -n "$network" ]]; then extra+=(--network "$network"); fi
    ;;
esac

# cgroup2 mounts other than /sys/fs/cgroup itself: present only on hybrid hosts.
hybrid=$(findmnt -rn -t cgroup2 -o TARGET | grep -vx /sys/fs/cgroup || true)
if [[ -n "$hybrid" ]]; then
  # shellcheck disable=SC2016
  exec unshare -m sh -c 'for m in $1; do umount "$m"; done; shift; exec podman "$@"' \
    sh "$hybrid" --cgroup-manager=cgroupfs "$subcommand" "${extra[@]}" "$@"
fi
exec podman --cgroup-manager=cgroupfs "$subcommand" "${extra[@]}" "$@"
