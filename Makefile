# Entry points in kubebuilder's spirit. `make test` is what CI (.ci/run) and
# the README run; `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
# Extra arguments for cargo test, e.g. `make test TEST_ARGS='--test e2e crds::'`.
TEST_ARGS ?=
# Extra arguments for the operator, e.g. `make run ARGS='--namespace orders'`.
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help envtest helm tools test lint fmt crds run bench demo

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

envtest: ## Build (once) etcd, kube-apiserver, kubectl; print their folder.
	@hack/envtest/build.sh

helm: ## Build (once) helm from its Go module; print its path.
	@hack/tools/helm.sh

tools: ## Build (once) the tools the tests use besides envtest (helm).
	@hack/tools/helm.sh >/dev/null

# The Go builds (control plane, helm: minutes when cold, much of it module
# downloads) run beside the cargo build instead of before or after it; when
# all is warm this costs nothing. Then the tests run with KUBEBUILDER_ASSETS
# pointing at the binaries, so the harness builds nothing itself.
# `cargo fetch` first: it downloads every platform's crates, which
# `cargo metadata --offline` (tests/it/dockerfile.rs) needs and a build alone
# does not fetch.
test: ## Run every test on a real control plane, building what is missing.
	@$(CARGO) fetch --quiet
	@{ hack/envtest/build.sh && hack/tools/helm.sh; } >/dev/null & tools=$$!; \
	$(CARGO) test --workspace --no-run || exit 1; \
	wait $$tools || { echo "make: building envtest or helm failed" >&2; exit 1; }; \
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh)" $(CARGO) test --workspace $(TEST_ARGS)

# The lint policy itself lives in Cargo.toml ([workspace.lints]); clippy
# adds its default set with warnings as errors. cargo-machete finds
# dependencies no code uses (installed once from crates.io, like the other
# tools; it reads sources, so it needs no nightly toolchain).
lint: ## rustfmt check, clippy (workspace lint policy, warnings as errors), unused dependencies.
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	"$$(hack/tools/cargo-machete.sh)"

fmt: ## Format the code.
	$(CARGO) fmt --all

crds: ## Regenerate crds/crds.yaml from the Rust types.
	$(CARGO) run -q -- crd > crds/crds.yaml.tmp
	mv crds/crds.yaml.tmp crds/crds.yaml

run: ## Run the operator against the current kubeconfig (flags: ARGS=...).
	$(CARGO) run -- run $(ARGS)

bench: ## Benchmarks that print figures: emulator throughput + memory, requests per reconcile, the conflict-backoff simulation.
	$(CARGO) bench --workspace

demo: ## Local control plane + emulator + operator + sample orders.
	hack/demo.sh
