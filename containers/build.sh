#!/usr/bin/env bash
# Builds the images with podman and prints each build's wall time and each image's size:
# the base image from Debian packages (containers/base-image.sh, skipped when present), the
# full image (the Dockerfile's default target, `runtime`) and the slim serving image
# (`--target serve`). Layers are cached: a rebuild with unchanged inputs takes seconds.
#
#   containers/build.sh            # credit-risk:latest and credit-risk-serve:latest
#   CREDIT_RISK_IMAGE=... CREDIT_RISK_SERVE_IMAGE=... containers/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."

FULL=${CREDIT_RISK_IMAGE:-credit-risk:latest}
SERVE=${CREDIT_RISK_SERVE_IMAGE:-credit-risk-serve:latest}
PODMAN=containers/podman.sh
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

containers/base-image.sh

build() {  # build NAME TAG [podman build options]
  local name=$1 tag=$2 start
  shift 2
  start=$(date +%s)
  if ! "$PODMAN" build "$@" -t "$tag" . >"$logs/$name.log" 2>&1; then
    tail -n 80 "$logs/$name.log" >&2
    echo "building $tag failed (last 80 lines above)" >&2
    exit 1
  fi
  echo "built $tag in $(($(date +%s) - start)) s"
}
build full "$FULL"
build serve "$SERVE" --target serve

for tag in "$FULL" "$SERVE"; do
  bytes=$("$PODMAN" image inspect --format '{{.Size}}' "$tag")
  printf 'image %-26s %5d MB (%d bytes)\n' "$tag" $((bytes / 1000000)) "$bytes"
done
