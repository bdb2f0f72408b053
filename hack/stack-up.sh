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
#   OPERATOR_IMAGE   the operator's image, for it and its stage Jobs
#                    (default: sigstore-operator:dev, what config/manager names)
#   EXPOSE           how the runner reaches the services: port-forward
#                    (default) or cluster-ip (the host routes ClusterIPs)
#   WAIT_TIMEOUT     how long to wait for Ready (default: 15m)
#   OUT_DIR          where files go (default: ./sigstore-stack)
#   GITHUB_ENV       when set (in Actions), the variables are appended to it
#
# Writes $OUT_DIR/env (KEY=value lines, printed without the token),
# trusted_root.json,
# signing_config.json and trust_config.json (the stack's, with each service
# URL replaced by the address this machine reaches it at), tuf/root.json,
# oidc-token (prints a fresh token for ServiceAccount $STACK_NAME-signer,
# audience sigstore) and token (one such token, one hour).
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
OPERATOR_IMAGE="${OPERATOR_IMAGE:-sigstore-operator:dev}"
EXPOSE="${EXPOSE:-port-forward}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-15m}"
OUT_DIR="${OUT_DIR:-$PWD/sigstore-stack}"

log() { printf '[stack-up] %s\n' "$*" >&2; }
k() { "$KUBECTL" "$@"; }

case "$EXPOSE" in port-forward | cluster-ip) ;; *)
  log "EXPOSE must be port-forward or cluster-ip, not '$EXPOSE'"; exit 2 ;;
esac
mkdir -p "$OUT_DIR"
command -v python3 >/dev/null || { log "python3 is required"; exit 1; }
# A re-run replaces the port-forwards of the run before, not adds to them.
if [[ -f "$OUT_DIR/port-forward.pids" ]]; then
  xargs -r kill <"$OUT_DIR/port-forward.pids" 2>/dev/null || true
  rm -f "$OUT_DIR/port-forward.pids"
fi

if [[ "$INSTALL" != none ]]; then
  log "installing the operator from $INSTALL (image $OPERATOR_IMAGE)"
  # config/manager names sigstore-operator:dev for the operator and for its
  # stage Jobs; the given image replaces both. Rendered the same each run, so
  # a re-run rolls nothing.
  k kustomize "$INSTALL" | sed "s#sigstore-operator:dev#$OPERATOR_IMAGE#g" |
    k apply --server-side -f - >&2
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
      local pid=$!
      echo "$pid" >>"$OUT_DIR/port-forward.pids"
      local up=0
      for _ in $(seq 50); do
        if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
        sleep 0.2
      done
      if ((!up)); then
        kill "$pid" 2>/dev/null || true
        log "kubectl port-forward svc/$svc did not come up in 10 s; its log:"
        cat "$OUT_DIR/port-forward-$1.log" >&2
        exit 1
      fi
      printf 'http://127.0.0.1:%s%s' "$port" "$path"
      ;;
  esac
}

trust="$(status .status.trustedRoot.name)"
k -n "$NS" get cm "$trust" -o jsonpath='{.data.trusted_root\.json}' >"$OUT_DIR/trusted_root.json"
k -n "$NS" get cm "$trust" -o jsonpath='{.data.signing_config\.json}' >"$OUT_DIR/signing_config.in-cluster.json"
tuf_cm="$(status .status.tuf.root.name)"
if [[ -n "$tuf_cm" ]]; then
  mkdir -p "$OUT_DIR/tuf"
  k -n "$NS" get cm "$tuf_cm" -o jsonpath='{.data.root\.json}' >"$OUT_DIR/tuf/root.json"
fi
issuer="$(k get --raw /.well-known/openid-configuration | sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p')"

# A signer identity and a way to get fresh tokens for it.
signer="$NAME-signer"
context="$(k config current-context 2>/dev/null || true)"
k -n "$NS" create serviceaccount "$signer" --dry-run=client -o yaml | k apply --server-side -f - >&2
{
  printf '#!/bin/sh\n# Prints a fresh token for ServiceAccount %s/%s, audience sigstore.\n' "$NS" "$signer"
  # The cluster it was made for, also when run from another shell or after
  # the current context changed.
  [[ -z "${KUBECONFIG:-}" ]] || printf 'export KUBECONFIG=%q\n' "$KUBECONFIG"
  printf 'exec %q %s-n %q create token %q --audience sigstore --duration 1h\n' \
    "$KUBECTL" "${context:+--context $(printf %q "$context") }" "$NS" "$signer"
} >"$OUT_DIR/oidc-token"
chmod +x "$OUT_DIR/oidc-token"
# cosign's --identity-token takes a file: given a token's value it tries to
# open it as one, which fails for any real token (longer than a file name).
(umask 077 && "$OUT_DIR/oidc-token" >"$OUT_DIR/token")

# One address per Service, reused for every URL that names it.
fulcio_url="$(url fulcio)"
rekor_url="$(url rekor)"
# Rekor v2 and TesseraCT, when they run (`generation: v2|both`, `backend:
# tesseract`); each URL also serves the log's read path (checkpoint, tiles).
rekor_v2_url="$(url rekor-v2)"
tsa_base="$(url tsa)"
ctlog_url="$(url ctlog "/$(k -n "$NS" get "sst/$NAME" -o jsonpath='{.spec.ctlog.prefix}')")"
if [[ -z "$ctlog_url" ]]; then
  ctlog_url="$(url tesseract)"
fi
tuf_url="$(url tuf)"

# The signing config's URLs name in-cluster hosts (<stack>-<part>.<ns>.svc),
# which this machine cannot resolve: the same file with the addresses above,
# and the ClientTrustConfig that holds it beside the trust root. The trust
# root itself is unchanged: its log URLs' hosts are the logs' origins, which
# verifiers check checkpoints against.
python3 - "$OUT_DIR" "http://$NAME-fulcio.$NS.svc=$fulcio_url" \
  "http://$NAME-rekor.$NS.svc=$rekor_url" "http://$NAME-rekor-v2.$NS.svc=$rekor_v2_url" \
  "http://$NAME-tsa.$NS.svc=$tsa_base" <<'PY'
import json, sys
from urllib.parse import urlsplit
out, pairs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
local = {k: v for k, v in pairs if v}
def reach(url):
    u = urlsplit(url)
    base = local.get(f"{u.scheme}://{u.netloc}")
    if base is None:
        return url
    return base.rstrip("/") + u.path + (f"?{u.query}" if u.query else "")
with open(f"{out}/signing_config.in-cluster.json") as f:
    config = json.load(f)
for field in ("caUrls", "rekorTlogUrls", "tsaUrls"):
    for service in config.get(field, []):
        service["url"] = reach(service["url"])
with open(f"{out}/trusted_root.json") as f:
    root = json.load(f)
with open(f"{out}/signing_config.json", "w") as f:
    json.dump(config, f, indent=2)
trust = {
    "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
    "trustedRoot": root,
    "signingConfig": config,
}
with open(f"{out}/trust_config.json", "w") as f:
    json.dump(trust, f, indent=2)
PY

{
  echo "FULCIO_URL=$fulcio_url"
  echo "REKOR_URL=$rekor_url"
  echo "REKOR_V2_URL=$rekor_v2_url"
  echo "CTLOG_URL=$ctlog_url"
  echo "TSA_URL=${tsa_base:+$tsa_base/api/v1/timestamp}"
  echo "TUF_MIRROR=$tuf_url"
  echo "TUF_ROOT=$OUT_DIR/tuf"
  echo "TUF_ROOT_JSON=$OUT_DIR/tuf/root.json"
  echo "TRUSTED_ROOT=$OUT_DIR/trusted_root.json"
  echo "SIGNING_CONFIG=$OUT_DIR/signing_config.json"
  echo "TRUST_CONFIG=$OUT_DIR/trust_config.json"
  echo "ISSUER_URL=$issuer"
  echo "SIGNER_IDENTITY=https://kubernetes.io/namespaces/$NS/serviceaccounts/$signer"
  echo "OIDC_TOKEN=$(cat "$OUT_DIR/token")"
  echo "OIDC_TOKEN_FILE=$OUT_DIR/token"
  echo "OIDC_TOKEN_COMMAND=$OUT_DIR/oidc-token"
} >"$OUT_DIR/env"
if [[ -n "${GITHUB_ENV:-}" ]]; then
  cat "$OUT_DIR/env" >>"$GITHUB_ENV"
fi
grep -v '^OIDC_TOKEN=' "$OUT_DIR/env"
log "ready; variables in $OUT_DIR/env"
