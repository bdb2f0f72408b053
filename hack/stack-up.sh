#!/usr/bin/env bash
# Installs the operator, brings a SigstoreStack up, and exports what tests
# need. The GitHub Action (action.yml) and `make kind-up` run it after making
# a cluster; the project's tests run it against a local control plane.
#
# Env (all optional):
#   KUBECTL          kubectl to use (default: kubectl)
#   STACK_NAME       the stack's name (default: sigstore)
#   STACK_NAMESPACE  its namespace (default: sigstore)
#   STACK_SPEC       the stack's spec, as YAML or JSON (default: {})
#   INSTALL          kustomize dir to install the operator from, or "none"
#                    (default: config/default)
#   EXPOSE           how the runner reaches the services: port-forward
#                    (default) or cluster-ip (the host routes ClusterIPs)
#   WAIT_TIMEOUT     how long to wait for Ready (default: 15m)
#   OUT_DIR          where files go (default: ./sigstore-stack)
#   GITHUB_ENV       when set (in Actions), the variables are appended to it
#
# Writes $OUT_DIR/env (KEY=value lines, also printed), trusted_root.json,
# tuf/root.json, and oidc-token (prints a fresh token for ServiceAccount
# $STACK_NAME-signer, audience sigstore).
#
# TUF_ROOT is cosign's own variable for its TUF cache directory, and every
# later step sees what goes to GITHUB_ENV: so it names a directory (holding
# root.json, beside which cosign keeps its cache), and TUF_ROOT_JSON names
# the file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KUBECTL="${KUBECTL:-kubectl}"
NAME="${STACK_NAME:-sigstore}"
NS="${STACK_NAMESPACE:-sigstore}"
SPEC="${STACK_SPEC:-}"
[[ -n "$SPEC" ]] || SPEC='{}'
INSTALL="${INSTALL:-$ROOT/config/default}"
EXPOSE="${EXPOSE:-port-forward}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-15m}"
OUT_DIR="${OUT_DIR:-$PWD/sigstore-stack}"

log() { printf '[stack-up] %s\n' "$*" >&2; }
k() { "$KUBECTL" "$@"; }

case "$EXPOSE" in port-forward | cluster-ip) ;; *)
  log "EXPOSE must be port-forward or cluster-ip, not '$EXPOSE'"; exit 2 ;;
esac
mkdir -p "$OUT_DIR"

if [[ "$INSTALL" != none ]]; then
  log "installing the operator from $INSTALL"
  k apply --server-side -k "$INSTALL" >&2
  k wait --for=condition=Established crd/sigstorestacks.scaffolding.sigstore.dev --timeout=60s >&2
  k -n sigstore-operator-system rollout status deployment/sigstore-operator --timeout=5m >&2
fi

log "applying SigstoreStack $NS/$NAME"
k create namespace "$NS" --dry-run=client -o yaml | k apply --server-side -f - >&2
# The spec goes in as a document of its own, indented under `spec:`.
{
  printf 'apiVersion: scaffolding.sigstore.dev/v1alpha1\nkind: SigstoreStack\n'
  printf 'metadata:\n  name: %s\n  namespace: %s\nspec:\n' "$NAME" "$NS"
  printf '%s\n' "$SPEC" | sed 's/^/  /'
} | k apply --server-side -f - >&2
if ! k -n "$NS" wait --for=condition=Ready "sst/$NAME" --timeout="$WAIT_TIMEOUT" >&2; then
  log "the stack is not Ready; its conditions:"
  k -n "$NS" get "sst/$NAME" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2
  exit 1
fi

status() { k -n "$NS" get "sst/$NAME" -o "jsonpath={$1}"; }
# url SERVICE PATH: how the runner reaches Service SERVICE (port 80).
url() {
  local svc="$NAME-$1" path="${2:-}"
  if [[ -z "$(k -n "$NS" get svc "$svc" --ignore-not-found -o name)" ]]; then
    return 0
  fi
  case "$EXPOSE" in
    cluster-ip)
      printf 'http://%s%s' "$(k -n "$NS" get svc "$svc" -o jsonpath='{.spec.clusterIP}')" "$path"
      ;;
    port-forward)
      local port
      port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
      nohup "$KUBECTL" -n "$NS" port-forward "svc/$svc" "$port:80" >"$OUT_DIR/port-forward-$1.log" 2>&1 &
      echo $! >>"$OUT_DIR/port-forward.pids"
      for _ in $(seq 50); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.2
      done
      printf 'http://127.0.0.1:%s%s' "$port" "$path"
      ;;
  esac
}

trust="$(status .status.trustedRoot.name)"
k -n "$NS" get cm "$trust" -o jsonpath='{.data.trusted_root\.json}' >"$OUT_DIR/trusted_root.json"
tuf_cm="$(status .status.tuf.root.name)"
if [[ -n "$tuf_cm" ]]; then
  mkdir -p "$OUT_DIR/tuf"
  k -n "$NS" get cm "$tuf_cm" -o jsonpath='{.data.root\.json}' >"$OUT_DIR/tuf/root.json"
fi
issuer="$(k get --raw /.well-known/openid-configuration | sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p')"

# A signer identity and a way to get fresh tokens for it.
signer="$NAME-signer"
k -n "$NS" create serviceaccount "$signer" --dry-run=client -o yaml | k apply --server-side -f - >&2
{
  printf '#!/bin/sh\n# Prints a fresh token for ServiceAccount %s/%s, audience sigstore.\n' "$NS" "$signer"
  # The cluster it was made for, also when run from another shell.
  [[ -z "${KUBECONFIG:-}" ]] || printf 'export KUBECONFIG=%q\n' "$KUBECONFIG"
  printf 'exec %q -n %q create token %q --audience sigstore --duration 1h\n' "$KUBECTL" "$NS" "$signer"
} >"$OUT_DIR/oidc-token"
chmod +x "$OUT_DIR/oidc-token"

{
  echo "FULCIO_URL=$(url fulcio)"
  echo "REKOR_URL=$(url rekor)"
  echo "CTLOG_URL=$(url ctlog "/$(k -n "$NS" get "sst/$NAME" -o jsonpath='{.spec.ctlog.prefix}')")"
  echo "TSA_URL=$(url tsa /api/v1/timestamp)"
  echo "TUF_MIRROR=$(url tuf)"
  echo "TUF_ROOT=$OUT_DIR/tuf"
  echo "TUF_ROOT_JSON=$OUT_DIR/tuf/root.json"
  echo "TRUSTED_ROOT=$OUT_DIR/trusted_root.json"
  echo "ISSUER_URL=$issuer"
  echo "SIGNER_IDENTITY=https://kubernetes.io/namespaces/$NS/serviceaccounts/$signer"
  echo "OIDC_TOKEN=$("$OUT_DIR/oidc-token")"
  echo "OIDC_TOKEN_COMMAND=$OUT_DIR/oidc-token"
} >"$OUT_DIR/env"
if [[ -n "${GITHUB_ENV:-}" ]]; then
  cat "$OUT_DIR/env" >>"$GITHUB_ENV"
fi
grep -v '^OIDC_TOKEN=' "$OUT_DIR/env"
log "ready; variables in $OUT_DIR/env"
