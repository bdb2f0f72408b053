#!/usr/bin/env bash
# `make kind-up`: a KinD cluster with the operator and the sample stack, for
# a user with Docker. Creates the cluster (KinD's service-account issuer is
# https://kubernetes.default.svc.cluster.local, which Fulcio trusts as the
# cluster's issuer), builds (or pulls) and loads the operator's image,
# installs it, brings the stack up, and prints the URLs and how to sign.
#
# Env: KIND_CLUSTER (default sigstore-operator), KIND_NODE_IMAGE (e.g.
# kindest/node:v1.34.0; default: KinD's own), OPERATOR_IMAGE (default
# sigstore-operator:dev, built from this checkout), SKIP_BUILD=1 (build
# nothing: run OPERATOR_IMAGE, by default the published image of this
# checkout's version, <IMAGE_REPOSITORY of hack/release.env>:<Cargo.toml
# version>, pulled when Docker does not have it), STACK_SPEC, STACK_NAME,
# STACK_NAMESPACE (see hack/stack-up.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${KIND_CLUSTER:-sigstore-operator}"
SKIP_BUILD="${SKIP_BUILD:-0}"
log() { printf '[kind-up] %s\n' "$*" >&2; }

if [[ -n "${OPERATOR_IMAGE:-}" ]]; then
  IMAGE="$OPERATOR_IMAGE"
elif [[ "$SKIP_BUILD" == 1 ]]; then
  # The image released with this checkout's version.
  # shellcheck source=hack/release.env
  source "$ROOT/hack/release.env"
  version="$(awk -F'"' '/^\[/ { pkg = ($0 == "[package]") } pkg && /^version *=/ { print $2; exit }' "$ROOT/Cargo.toml")"
  [[ -n "$version" ]] || { log "no version in $ROOT/Cargo.toml"; exit 1; }
  IMAGE="$IMAGE_REPOSITORY:$version"
else
  IMAGE=sigstore-operator:dev
fi

# Checked up front: without python3 the exported URLs would be empty.
for tool in docker kind kubectl python3; do
  command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done
if [[ "$SKIP_BUILD" != 1 ]] && ! docker buildx version >/dev/null 2>&1; then
  log "docker buildx is required to build the operator's image (or set SKIP_BUILD=1 to run the published image, or an OPERATOR_IMAGE you have)"
  exit 1
fi

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "creating KinD cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config "$ROOT/hack/kind-config.yaml" \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

if [[ "$SKIP_BUILD" != 1 ]]; then
  log "building $IMAGE"
  docker buildx build --load -t "$IMAGE" "$ROOT"
elif ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  # One platform: `kind load` of a multi-arch image pulled whole fails on
  # Docker's containerd image store.
  platform="linux/$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')"
  log "pulling $IMAGE ($platform)"
  docker pull --platform "$platform" "$IMAGE" || {
    log "$IMAGE is not in Docker and could not be pulled: was this version released? (or run without SKIP_BUILD=1 to build it)"
    exit 1
  }
fi
if [[ "$IMAGE" != sigstore-operator:dev ]]; then
  # config/manager runs sigstore-operator:dev; the stage Jobs run the same.
  docker tag "$IMAGE" sigstore-operator:dev
fi
kind load docker-image sigstore-operator:dev --name "$CLUSTER"
# A second run after a code change loads a new image under the same tag:
# restart the operator so it runs it (a no-op on the first run).
if kubectl -n sigstore-operator-system get deployment/sigstore-operator >/dev/null 2>&1; then
  kubectl -n sigstore-operator-system rollout restart deployment/sigstore-operator >/dev/null
fi

# The sample's stack: config/samples' name and its empty spec.
# The image was loaded as sigstore-operator:dev, what config/manager names.
STACK_NAME="${STACK_NAME:-sample}" OUT_DIR="${OUT_DIR:-$ROOT/.kind/$CLUSTER}" \
  OPERATOR_IMAGE=sigstore-operator:dev "$ROOT/hack/stack-up.sh"
out="${OUT_DIR:-$ROOT/.kind/$CLUSTER}"
cat >&2 <<EOF

The stack is Ready. Its variables are in $out/env (port-forwards keep
running in the background; their PIDs are in $out/port-forward.pids).

  set -a; . $out/env; set +a
  echo hello > blob.txt
  # cosign 3 (the signing config names the forwarded services):
  cosign sign-blob --yes --signing-config "\$SIGNING_CONFIG" --trusted-root "\$TRUSTED_ROOT" \\
    --identity-token "\$OIDC_TOKEN_FILE" --bundle blob.sigstore.json blob.txt
  # cosign 2 takes the URLs as flags instead:
  #   cosign sign-blob --yes --new-bundle-format --trusted-root "\$TRUSTED_ROOT" \\
  #     --fulcio-url "\$FULCIO_URL" --rekor-url "\$REKOR_URL" --timestamp-server-url "\$TSA_URL" \\
  #     --identity-token "\$OIDC_TOKEN_FILE" --bundle blob.sigstore.json blob.txt
  cosign verify-blob --trusted-root "\$TRUSTED_ROOT" --bundle blob.sigstore.json \\
    --certificate-identity "\$SIGNER_IDENTITY" --certificate-oidc-issuer "\$ISSUER_URL" blob.txt
  # sigstore-python 4:
  sigstore --trust-config "\$TRUST_CONFIG" verify identity --offline --bundle blob.sigstore.json \\
    --cert-identity "\$SIGNER_IDENTITY" --cert-oidc-issuer "\$ISSUER_URL" blob.txt

(A fresh stack's very first bundle is refused by sigstore-python; see the
README's troubleshooting. Sign twice.) \$OIDC_TOKEN_COMMAND prints a fresh token.

Remove it all with: make kind-down
EOF
