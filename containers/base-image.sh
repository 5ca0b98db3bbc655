#!/usr/bin/env bash
# The Dockerfile's base image, python:3.11-slim-bookworm, built from Debian packages for a
# machine that reaches Debian's archive but no container registry (Docker Hub).
#
# mmdebstrap makes a minimal bookworm root file system from this machine's own apt sources,
# with python3.11, python3.11-venv, ca-certificates and a `python` symlink, and
# `podman import` tags it with the name the Dockerfile's FROM lines use, so the Dockerfile
# builds unchanged here and on any machine with Docker Hub. Skipped when the tag exists
# (`--force` rebuilds it). Needs root, mmdebstrap and podman (.ci/run installs them).
#
#   containers/base-image.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."

# The fully qualified name: podman resolves the Dockerfile's short `python:3.11-slim-bookworm`
# to it, as Docker would after a pull.
TAG=docker.io/library/python:3.11-slim-bookworm
SOURCES=${CREDIT_RISK_APT_SOURCES:-}
PODMAN=containers/podman.sh

if [[ "${1:-}" != "--force" ]] && "$PODMAN" image exists "$TAG"; then
  echo "base image $TAG present: skipped (--force rebuilds it)"
  exit 0
fi

if [[ -z "$SOURCES" ]]; then
  # This machine's apt sources: the deb822 file of the Debian archive, else sources.list.
  for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [[ -s "$candidate" ]]; then SOURCES=$candidate; break; fi
  done
fi
if [[ -z "$SOURCES" ]]; then
  echo "no apt sources found: set CREDIT_RISK_APT_SOURCES to a sources file" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
# Like the official slim image: no documentation, manual pages or translations; apt's lists
# and caches are removed by mmdebstrap's own clean-up.
# The merged-/usr hook sets /usr up itself, so the usrmerge package and Perl (50 MB) stay out.
if ! mmdebstrap --variant=minbase --quiet \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --include=python3.11,python3.11-venv,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='ln -sf /usr/bin/python3.11 "$1/usr/local/bin/python"' \
  --customize-hook='ln -sf /usr/bin/python3.11 "$1/usr/local/bin/python3"' \
  bookworm "$work/rootfs.tar" "$SOURCES" >"$work/mmdebstrap.log" 2>&1; then
  tail -n 60 "$work/mmdebstrap.log" >&2
  echo "mmdebstrap failed (last 60 lines above)" >&2
  exit 1
fi

"$PODMAN" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "python3.11 on Debian bookworm, from Debian packages (containers/base-image.sh)" \
  "$work/rootfs.tar" "$TAG" >/dev/null 2>&1
echo "base image $TAG built in $(( $(date +%s) - start )) s:" \
  "$("$PODMAN" image inspect --format '{{.Size}}' "$TAG") bytes"
