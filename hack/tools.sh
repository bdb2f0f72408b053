#!/usr/bin/env bash
# Builds the test tools (etcd, kube-apiserver, kube-controller-manager) from the
# Go module proxy into a cache keyed by version. No prebuilt binary is
# downloaded: nothing but the module proxy is reachable on the build machines.
#
# Usage: hack/tools.sh [etcd|kube|all]   (default: all)
# Env:   TOOLS_DIR  cache root (default: <repo>/.tools, gitignored)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/versions.env
source "$ROOT/hack/versions.env"
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS_DIR/bin"
mkdir -p "$BIN" "$TOOLS_DIR/src"

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { printf '[tools] %s\n' "$*" >&2; }

need_go() {
  command -v go >/dev/null || { log "go is not installed; install Go >= 1.24"; exit 1; }
}

# Installs a versioned binary under a stable name once it is built.
link() { ln -sfn "$1" "$BIN/$2"; }

build_etcd() {
  local out="$BIN/etcd-$ETCD_VERSION"
  if [[ -x "$out" ]]; then log "etcd $ETCD_VERSION cached"; link "etcd-$ETCD_VERSION" etcd; return; fi
  need_go
  # etcd's server module replaces its siblings with ../ paths, so `go install`
  # refuses it; a wrapper module that requires it ignores those replaces.
  local dir="$TOOLS_DIR/src/etcd-$ETCD_VERSION"
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local/etcd-tool >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  local t0=$SECONDS
  go build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3
  mv "$out.tmp" "$out"
  link "etcd-$ETCD_VERSION" etcd
  log "etcd $ETCD_VERSION built in $((SECONDS - t0))s"
}

build_kube() {
  local apis="$BIN/kube-apiserver-$KUBE_VERSION" kcm="$BIN/kube-controller-manager-$KUBE_VERSION"
  if [[ -x "$apis" && -x "$kcm" ]]; then
    log "kube $KUBE_VERSION cached"
    link "kube-apiserver-$KUBE_VERSION" kube-apiserver
    link "kube-controller-manager-$KUBE_VERSION" kube-controller-manager
    return
  fi
  need_go
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
  # with ./staging paths; a wrapper module pins each to its published v0.X.Y tag.
  local staging="0.${KUBE_VERSION#1.}" minor
  minor="$(cut -d. -f2 <<<"$KUBE_VERSION")"
  local dir="$TOOLS_DIR/src/kube-$KUBE_VERSION"
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local/kube-tools >/dev/null 2>&1
  go mod download "k8s.io/kubernetes@v$KUBE_VERSION"
  local gomod
  gomod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$KUBE_VERSION.mod"
  local m
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$gomod"); do
    go mod edit -replace="$m=$m@v$staging"
  done
  cat >tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)
GO
  go get "k8s.io/kubernetes@v$KUBE_VERSION" >/dev/null
  go mod tidy >/dev/null
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  local t0=$SECONDS
  go build -trimpath -ldflags "$ld" -o "$apis.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$apis.tmp" "$apis"
  log "kube-apiserver $KUBE_VERSION built in $((SECONDS - t0))s"
  t0=$SECONDS
  go build -trimpath -ldflags "$ld" -o "$kcm.tmp" k8s.io/kubernetes/cmd/kube-controller-manager
  mv "$kcm.tmp" "$kcm"
  log "kube-controller-manager $KUBE_VERSION built in $((SECONDS - t0))s"
  link "kube-apiserver-$KUBE_VERSION" kube-apiserver
  link "kube-controller-manager-$KUBE_VERSION" kube-controller-manager
}

case "${1:-all}" in
  etcd) build_etcd ;;
  kube) build_kube ;;
  all) build_etcd; build_kube ;;
  *) log "unknown target: $1 (etcd|kube|all)"; exit 2 ;;
esac
