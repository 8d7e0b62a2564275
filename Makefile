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
.PHONY: help envtest helm promtool kstatus tools test fuzz chaos lint fmt crds run bench demo

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

envtest: ## Build (once) etcd, kube-apiserver, kubectl; print their folder.
	@hack/envtest/build.sh

helm: ## Build (once) helm from its Go module; print its path.
	@hack/tools/helm.sh

promtool: ## Fetch (once) promtool from Debian's prometheus package; print its path.
	@hack/tools/promtool.sh

kstatus: ## Build (once) the kstatus evaluator (cli-utils status.Compute); print its path.
	@hack/tools/kstatus.sh

tools: ## Build or fetch (once) every tool the tests use (envtest, helm, kstatus, promtool); names the one that fails.
	@hack/tools/all.sh

# The Go builds (control plane, helm, kstatus: minutes when cold, much of it
# module downloads) and promtool's download (Debian's prometheus package,
# seconds) run beside the cargo build instead of before or after it; when
# all is warm this costs nothing. hack/tools/all.sh names a tool that fails
# and prints the end of its log. Then the tests run with KUBEBUILDER_ASSETS
# pointing at the binaries, so the harness builds nothing itself.
# `cargo fetch` first: it downloads every platform's crates, which
# `cargo metadata --offline` (tests/it/dockerfile.rs) needs and a build alone
# does not fetch.
test: ## Run every test on a real control plane, building what is missing.
	@$(CARGO) fetch --quiet
	@hack/tools/all.sh & tools=$$!; \
	$(CARGO) test --workspace --no-run || exit 1; \
	wait $$tools || { echo "make: a tool the tests need could not be built or fetched (see 'tools:' above)" >&2; exit 1; }; \
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh)" $(CARGO) test --workspace $(TEST_ARGS)

# The property tests of every parser of outside input (issue 10 item 5:
# src/d365/proptests.rs, src/d365/token_proptests.rs,
# emulator/src/proptests.rs) run proptest's default 256 cases each in
# `make test`; this runs FUZZ_CASES each (about 25 minutes on 2 cores at
# the default). A failure is saved under proptest-regressions/ and replayed
# first by every later run: commit that file with the fix.
FUZZ_CASES ?= 100000
fuzz: ## Property tests of the parsers of outside input, long (FUZZ_CASES=100000 each).
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --workspace --lib proptests

# The long chaos run (issue 9): tests/e2e/chaos.rs with the figures below
# instead of its short default (which `make test` runs). Every figure can be
# overridden: `make chaos CHAOS_ORDERS=100` or `CHAOS_KILLS=5 make chaos`.
# A debug build, like `make test`: it reuses the test build's artifacts
# (a release build would compile the whole dependency graph a second time,
# minutes on 2 cores), and the run is paced by its schedule, leases and
# D365 faults, not by the operator's CPU.
CHAOS_ORDERS ?= 300
CHAOS_SECONDS ?= 240
CHAOS_KILLS ?= 3
CHAOS_LEASE_SECONDS ?= 5
CHAOS_CUT_SECONDS ?= 15
CHAOS_APISERVER_DOWN_SECONDS ?= 8
CHAOS_CONFLICT_RATE ?= 0.35
CHAOS_ERROR_RATE ?= 0.05
CHAOS_HANG_RATE ?= 0.02
CHAOS_EDITS_PER_SECOND ?= 15
CHAOS_RESYNC_SECONDS ?= 5
CHAOS_CONVERGE_SECONDS ?= 180
chaos: ## The chaos run on a real control plane; prints the invariants table.
	@hack/envtest/build.sh >/dev/null & tools=$$!; \
	$(CARGO) test --test e2e --no-run || exit 1; \
	wait $$tools || { echo "make: building envtest failed" >&2; exit 1; }; \
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh)" \
	CHAOS_ORDERS=$(CHAOS_ORDERS) CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_KILLS=$(CHAOS_KILLS) \
	CHAOS_LEASE_SECONDS=$(CHAOS_LEASE_SECONDS) CHAOS_CUT_SECONDS=$(CHAOS_CUT_SECONDS) \
	CHAOS_APISERVER_DOWN_SECONDS=$(CHAOS_APISERVER_DOWN_SECONDS) \
	CHAOS_CONFLICT_RATE=$(CHAOS_CONFLICT_RATE) CHAOS_ERROR_RATE=$(CHAOS_ERROR_RATE) \
	CHAOS_HANG_RATE=$(CHAOS_HANG_RATE) CHAOS_EDITS_PER_SECOND=$(CHAOS_EDITS_PER_SECOND) \
	CHAOS_RESYNC_SECONDS=$(CHAOS_RESYNC_SECONDS) CHAOS_CONVERGE_SECONDS=$(CHAOS_CONVERGE_SECONDS) \
	RUST_BACKTRACE=0 $(CARGO) test --test e2e chaos:: -- --nocapture

# The lint policy itself lives in Cargo.toml ([workspace.lints]); clippy
# adds its default set with warnings as errors. cargo-machete finds
# dependencies no code uses (installed once from crates.io, like the other
# tools; it reads sources, so it needs no nightly toolchain). cargo-deny
# checks licenses, duplicate crates and sources against deny.toml (built
# once: 25 minutes the first time on 2 busy cores, seconds after that);
# advisories need the network, so they are not here (docs/operations.md, "Supply chain").
lint: ## rustfmt check, clippy (warnings as errors), unused dependencies, cargo deny (licenses, bans, sources).
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	"$$(hack/tools/cargo-machete.sh)"
	"$$(hack/tools/cargo-deny.sh)" check --hide-inclusion-graph licenses bans sources

fmt: ## Format the code.
	$(CARGO) fmt --all

crds: ## Regenerate crds/crds.yaml from the Rust types.
	$(CARGO) run -q -- crd > crds/crds.yaml.tmp
	mv crds/crds.yaml.tmp crds/crds.yaml

run: ## Run the operator against the current kubeconfig (flags: ARGS=...).
	$(CARGO) run -- run $(ARGS)

# The scale table (benches/scale.rs) runs as a step of its own, so its
# flags (BENCH_ARGS=--quick, --huge) never reach the other benches (in the
# first step, without BENCH_SCALE=1, it only says it is skipped); it needs
# the control plane (envtest) and a font for its plot (hack/tools/font.sh).
# It measures the release build of the operator (LTO, jemalloc: what the
# image ships), built first and copied aside: a bench build writes its own
# (no LTO) to the same target/release path. JSON and PNG go to BENCH_OUT.
BENCH_ARGS ?=
BENCH_OUT ?= $(CURDIR)/target/bench
bench: ## Benchmarks that print figures: emulator throughput + memory, requests per reconcile, the conflict-backoff simulation, reading a 50 MiB $metadata, fixed vs adaptive limiter; then the scale table (BENCH_ARGS=--quick|--huge, BENCH_OUT=DIR).
	$(CARGO) bench --workspace
	@hack/envtest/build.sh >/dev/null
	$(CARGO) build --release --bin sales-order-operator
	@mkdir -p target/bench-operator
	cp target/release/sales-order-operator target/bench-operator/
	BENCH_SCALE=1 KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh)" BENCH_FONT="$$(hack/tools/font.sh)" \
	SCALE_OPERATOR_BIN="$(CURDIR)/target/bench-operator/sales-order-operator" \
	BENCH_OUT="$(BENCH_OUT)" $(CARGO) bench -p sales-order-operator --bench scale -- $(BENCH_ARGS)

demo: ## Local control plane + emulator + operator + sample orders.
	hack/demo.sh
