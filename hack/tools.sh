#!/usr/bin/env bash
# Builds the test tools (etcd, kube-apiserver, kube-controller-manager, helm,
# actionlint and the Sigstore servers) from the Go module proxy into a cache keyed by version, and
# installs MariaDB and Redis from apt when missing. No prebuilt binary is
# downloaded: nothing but the module proxy is reachable on the build machines.
#
# Usage: hack/tools.sh [etcd|kube|helm|actionlint|sigstore|apt|pytuf|sigstore-python|all]   (default: all)
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

# The wrapper module for k8s.io/kubernetes, made once per version.
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
# with ./staging paths; the wrapper pins each to its published v0.X.Y tag.
kube_module() {
  local dir="$TOOLS_DIR/src/kube-$KUBE_VERSION"
  if [[ -f "$dir/.ready" ]]; then cd "$dir"; return; fi
  local staging="0.${KUBE_VERSION#1.}"
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
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)
GO
  go get "k8s.io/kubernetes@v$KUBE_VERSION" >/dev/null
  go mod tidy >/dev/null
  touch .ready
}

build_kube() {
  local minor name pkg out missing=0
  minor="$(cut -d. -f2 <<<"$KUBE_VERSION")"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  # kubectl: the end-to-end test waits with `kubectl wait`, as users do.
  for name in kube-apiserver kube-controller-manager kubectl; do
    out="$BIN/$name-$KUBE_VERSION"
    if [[ -x "$out" ]]; then link "$name-$KUBE_VERSION" "$name"; continue; fi
    missing=1
    need_go
    kube_module
    pkg="k8s.io/kubernetes/cmd/$name"
    local t0=$SECONDS
    go build -trimpath -ldflags "$ld" -o "$out.tmp" "$pkg"
    mv "$out.tmp" "$out"
    link "$name-$KUBE_VERSION" "$name"
    log "$name $KUBE_VERSION built in $((SECONDS - t0))s"
  done
  ((missing)) || log "kube $KUBE_VERSION cached"
}

# go_install NAME VERSION PACKAGE: `go install PACKAGE@vVERSION` into the cache
# as NAME-VERSION, linked as NAME. These modules have no replace directives.
go_install() {
  local name="$1" version="$2" pkg="$3"
  local out="$BIN/$name-$version"
  if [[ -x "$out" ]]; then log "$name $version cached"; link "$name-$version" "$name"; return; fi
  need_go
  local gobin="$TOOLS_DIR/src/gobin-$name-$version" t0=$SECONDS
  rm -rf "$gobin" && mkdir -p "$gobin"
  GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "$pkg@v$version"
  mv "$gobin/$(basename "$pkg")" "$out"
  rm -rf "$gobin"
  link "$name-$version" "$name"
  log "$name $version built in $((SECONDS - t0))s"
}

build_sigstore() {
  go_install trillian_log_server "$TRILLIAN_VERSION" github.com/google/trillian/cmd/trillian_log_server
  go_install trillian_log_signer "$TRILLIAN_VERSION" github.com/google/trillian/cmd/trillian_log_signer
  go_install ct_server "$CTGO_VERSION" github.com/google/certificate-transparency-go/trillian/ctfe/ct_server
  go_install fulcio "$FULCIO_VERSION" github.com/sigstore/fulcio
  go_install rekor-server "$REKOR_VERSION" github.com/sigstore/rekor/cmd/rekor-server
  go_install timestamp-server "$TSA_VERSION" github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server
  # Both build a binary named `posix`; go_install renames it.
  go_install rekor-tiles-server "$REKOR_TILES_VERSION" github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix
  go_install tesseract "$TESSERACT_VERSION" github.com/transparency-dev/tesseract/cmd/tesseract/posix
  go_install cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2/cmd/cosign
  go_install cosign3 "$COSIGN3_VERSION" github.com/sigstore/cosign/v3/cmd/cosign
  go_install registry "$REGISTRY_VERSION" github.com/distribution/distribution/v3/cmd/registry
}

# helm lints and renders the chart in config/helm for the control-plane tests.
build_helm() {
  go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
}

# actionlint checks the GitHub workflows in .github/workflows (`make lint`);
# with shellcheck on PATH (apt, below) it checks their run: scripts too.
build_actionlint() {
  go_install actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint
}

# MariaDB and Redis come from Debian's packages.
need_apt() {
  local missing=()
  { command -v mariadbd && command -v mariadb-install-db && command -v mariadb; } >/dev/null ||
    missing+=(mariadb-server mariadb-client)
  command -v redis-server >/dev/null || missing+=(redis-server)
  # The node agent's network and mount namespaces.
  { command -v ip && command -v unshare && command -v setpriv && command -v curl; } >/dev/null ||
    missing+=(iproute2 util-linux curl)
  # libfaketime moves the clock of the operator and a TUF client in the
  # expiry tests.
  [[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 || -e /usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1 ]] ||
    missing+=(faketime)
  # actionlint runs it on the workflows' run: scripts (`make lint`).
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  ((${#missing[@]} == 0)) && { log "mariadb, redis, faketime and shellcheck present"; return; }
  if [[ $(id -u) -ne 0 ]]; then log "install ${missing[*]} (apt) and retry"; exit 1; fi
  log "installing ${missing[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests start their own servers on free ports; the packaged services
  # are not needed.
  for svc in mariadb redis-server; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
}

# python-tuf, the reference TUF client, checks the operator's repository
# independently of the library that signed it. From PyPI, in a venv.
build_pytuf() {
  local venv="$TOOLS_DIR/pytuf-$PYTUF_VERSION"
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import tuf.ngclient' 2>/dev/null; then
    log "python-tuf $PYTUF_VERSION cached"
  else
    command -v python3 >/dev/null || { log "python3 is required for python-tuf"; exit 1; }
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "tuf==$PYTUF_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION"
    log "python-tuf $PYTUF_VERSION installed"
  fi
  # A wrapper, not a link: Python finds its venv from the path it runs at.
  rm -f "$BIN/python-tuf"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$venv/bin/python" >"$BIN/python-tuf"
  chmod +x "$BIN/python-tuf"
}

# sigstore-python, a client of its own (not a Go one) in the matrix; its
# own venv, since it needs a newer python-tuf than the reference client's.
build_sigstore_python() {
  local venv="$TOOLS_DIR/sigstore-python-$SIGSTORE_PYTHON_VERSION"
  if [[ -x "$venv/bin/sigstore" ]] && "$venv/bin/sigstore" --version 2>/dev/null | grep -q "$SIGSTORE_PYTHON_VERSION"; then
    log "sigstore-python $SIGSTORE_PYTHON_VERSION cached"
  else
    command -v python3 >/dev/null || { log "python3 is required for sigstore-python"; exit 1; }
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "sigstore==$SIGSTORE_PYTHON_VERSION"
    log "sigstore-python $SIGSTORE_PYTHON_VERSION installed"
  fi
  rm -f "$BIN/sigstore"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$venv/bin/sigstore" >"$BIN/sigstore"
  chmod +x "$BIN/sigstore"
}

case "${1:-all}" in
  etcd) build_etcd ;;
  kube) build_kube ;;
  helm) build_helm ;;
  actionlint) build_actionlint ;;
  sigstore) build_sigstore ;;
  apt) need_apt ;;
  pytuf) build_pytuf ;;
  sigstore-python) build_sigstore_python ;;
  all) need_apt; build_pytuf; build_sigstore_python; build_etcd; build_kube; build_helm; build_actionlint; build_sigstore ;;
  *) log "unknown target: $1 (etcd|kube|helm|actionlint|sigstore|apt|pytuf|sigstore-python|all)"; exit 2 ;;
esac
