# sigstore-operator: see README.md.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
TOOLS_DIR ?= $(CURDIR)/.tools
OPERATOR_IMAGE ?= sigstore-operator:dev
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
export TOOLS_DIR

.PHONY: all build test test-unit test-cluster tools crds fmt fmt-check lint bench bench-scale run up local-up local-down local-build image image-load kind-up kind-down clean-tools help

all: build

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

build: ## Build the operator binary.
	$(CARGO) build --locked

test: tools ## Everything: unit tests, CRD drift, the real control plane, and the end-to-end run.
	rm -f target/e2e-figures.txt target/tiles-figures.txt
# tests/local_up.rs runs make local-up's entry point, an example, which
# `cargo test --tests` does not build.
	$(CARGO) build --locked --example local
	$(CARGO) test --locked --no-fail-fast --lib --bins --tests
	@cat target/e2e-figures.txt target/tiles-figures.txt

test-unit: ## Unit tests and the CRD drift check only (no control plane).
	$(CARGO) test --locked --lib --bins --test crd_drift

test-cluster: tools ## Only the tests on the real control plane.
	$(CARGO) build --locked --example local
	$(CARGO) test --locked --test control_plane --test operator_without_crd --test stages --test unreadable_stack --test helm_chart --test node_agent --test e2e --test action --test log_loss --test stack --test kubeadm_defaults --test private_registry --test helm_upgrade --test components --test tiles --test selfcheck --test local_up

tools: ## Build the test tools (control plane, Sigstore servers, cosign 2 and 3, an OCI registry, helm, actionlint) from the Go module proxy, cached by version; install MariaDB, Redis, faketime, shellcheck (apt), python-tuf and sigstore-python (PyPI).
	hack/tools.sh all

bench: ## Measure the stages' and the reconciler's pure work (figures only, nothing asserted).
	$(CARGO) bench --locked --bench keys
	$(CARGO) bench --locked --bench reconcile

SCALE ?= 1 10 100
bench-scale: tools ## N stacks (SCALE, default "1 10 100") applied at once to one operator (release build) on the real control plane: bring-up times, reconcile passes, API requests by verb, RSS, CPU, the settled minute, one spec change (figures only).
	$(CARGO) bench --locked --bench scale -- $(SCALE)

crds: ## Regenerate the CRD YAML and docs/api.md from the Rust types.
	$(CARGO) run --locked --quiet -- crd > crds/sigstorestack.yaml
	cp crds/sigstorestack.yaml config/crd/sigstorestack.yaml
	cp crds/sigstorestack.yaml config/helm/sigstore-operator/files/sigstorestack.yaml
	$(CARGO) run --locked --quiet -- api-docs > docs/api.md

fmt: ## Format the code.
	$(CARGO) fmt

fmt-check:
	$(CARGO) fmt --check

lint: fmt-check ## rustfmt check, clippy with warnings as errors, no import cycle between the crate's modules, actionlint on .github/workflows and helm lint on the chart (both from make tools).
	@for tool in actionlint helm; do \
	  [[ -x "$(TOOLS_DIR)/bin/$$tool" ]] || { echo "lint: $(TOOLS_DIR)/bin/$$tool is missing: run make tools" >&2; exit 1; }; \
	done
	$(CARGO) clippy --locked --all-targets -- -D warnings
	python3 hack/module-cycles.py
# actionlint also runs shellcheck on the run: scripts when it is on PATH.
	$(TOOLS_DIR)/bin/actionlint .github/workflows/*.yml
	$(TOOLS_DIR)/bin/helm lint --strict config/helm/sigstore-operator
	for values in config/helm/sigstore-operator/ci/*-values.yaml; do \
	  [[ -e "$$values" ]] || continue; \
	  $(TOOLS_DIR)/bin/helm lint --strict config/helm/sigstore-operator -f "$$values"; \
	done

up: ## Install the CRD and the sample stack into the current kubeconfig's cluster, then run the operator here.
	$(CARGO) run --locked --quiet -- crd | kubectl apply --server-side -f -
	kubectl wait --for=condition=Established crd/sigstorestacks.scaffolding.sigstore.dev --timeout=60s
	kubectl apply --server-side -f config/samples/sigstorestack.yaml
	$(CARGO) run --locked -- run --http-addr 127.0.0.1:8080 --image $(OPERATOR_IMAGE)

image: ## Build the multi-arch operator image with docker buildx (add IMAGE_FLAGS=--push to publish it).
	docker buildx build --platform $(IMAGE_PLATFORMS) -t $(OPERATOR_IMAGE) $(IMAGE_FLAGS) .

image-load: ## Build the image for this machine's platform into the local Docker (then: kind load docker-image $(OPERATOR_IMAGE)).
	docker buildx build --load -t $(OPERATOR_IMAGE) .

local-build: tools
	$(CARGO) build --locked --release --bin sigstore-operator
	$(CARGO) build --locked --example local

local-up: local-build ## Without Docker (Linux, as root): the tests' control plane and node agent, the operator (release build) and the sample stack, Ready, with URLs and how to sign; runs until Ctrl-C or make local-down.
	SIGSTORE_OPERATOR_BIN=$(CURDIR)/target/release/sigstore-operator target/debug/examples/local up

local-down: ## Stop what make local-up started (every process of it).
	@if [[ -x target/debug/examples/local ]]; then target/debug/examples/local down; else echo "nothing to stop: make local-up was never built here"; fi

kind-up: ## With Docker and KinD: a cluster, the operator (built here) and the sample stack, Ready, with URLs and how to sign.
	hack/kind-up.sh

kind-down: ## Stop kind-up's port-forwards and delete the cluster it made.
	for f in .kind/*/port-forward.pids; do [[ -f "$$f" ]] && xargs -r kill < "$$f" 2>/dev/null || true; done
	kind delete cluster --name $${KIND_CLUSTER:-sigstore-operator}
	rm -rf .kind

clean-tools: ## Remove the built test tools.
	rm -rf $(TOOLS_DIR)
