#!/usr/bin/env bash
# The GitHub Action's choice of operator image (action.yml), kept here so
# tests/release.rs can run it: prints the image to run, or `build` when the
# Action must build it from its own source.
#
# Usage: hack/operator-image.sh INPUT REF REPOSITORY
#   INPUT       the operator-image input: empty, `build`, or an image
#   REF         github.action_ref: the ref the Action is used at (empty for
#               a local `uses: ./`)
#   REPOSITORY  github.action_repository: owner/name (empty for `uses: ./`)
#
#   an image in INPUT                 -> that image
#   INPUT `build`                     -> build
#   empty INPUT, REF a release tag    -> ghcr.io/<owner of REPOSITORY, lowercase>/<name>:<REF without v>
#     (v1.2.3, 1.2.3, v1.2.3-rc.1: what release.yml publishes; <name> from
#     hack/release.env)
#   empty INPUT, any other REF        -> build (a branch, a commit SHA, a
#     major tag such as v1, which names no published image, or `uses: ./`)
set -euo pipefail

if (($# != 3)); then
  echo "usage: $0 INPUT REF REPOSITORY" >&2
  exit 2
fi
input="$1" ref="$2" repository="$3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/release.env
source "$ROOT/hack/release.env"

if [[ -n "$input" ]]; then
  # `build` or the user's own image, as given.
  printf '%s\n' "$input"
  exit 0
fi

# A release tag: what release.yml accepts (a version an image tag can carry).
if [[ "$ref" =~ ^v?([0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?)$ && "$repository" == */* ]]; then
  version="${BASH_REMATCH[1]}"
  # Image references are lowercase; GitHub owners need not be.
  owner="$(printf '%s' "${repository%%/*}" | tr '[:upper:]' '[:lower:]')"
  printf '%s/%s/%s:%s\n' "${IMAGE_REPOSITORY%/*/*}" "$owner" "${IMAGE_REPOSITORY##*/}" "$version"
  exit 0
fi
echo build
