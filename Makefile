# harden: see README.md. `make demo` and `make test` do all set-up themselves.
CARGO ?= cargo

.PHONY: build demo test deps build-deps lint unit clean man image fuzz fuzz-smoke bench

# Every step-down but amd64's needs Debian's toolchain (see README): deps installs it;
# with this set, build.rs fails instead of leaving one out.
export HARDEN_REQUIRE_ALL_ARCHS = 1

build: build-deps
	$(CARGO) build --release
	@ls -l target/release/harden

demo: build
	./scripts/demo

build-deps:
	./scripts/install-deps build

deps:
	./scripts/install-deps test

# The fuzz crate is outside the workspace (cargo fuzz builds it): checked
# here too, so an API change breaks lint and not the end of `make test`.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(STEPDOWNS); cd fuzz && $(CARGO) fmt -- --check && $(CARGO) clippy --bins -- -D warnings

# Unit tests and the integration tests (skopeo, umoci, podman+runc, dockerd,
# the distribution registry on 127.0.0.1), as root; their work files live in
# a directory of this run only, removed at the end (scripts/in-test-dir).
test: deps lint
	./scripts/in-test-dir $(CARGO) test --workspace
	$(MAKE) image
	./scripts/test-image
	$(MAKE) fuzz-smoke

# Builds of the fuzz crate are handed the step-downs of the workspace's latest
# build (build.rs's HARDEN_STEPDOWN_<ARCH>; its fixed flags make the same bytes
# in any profile) rather than compiling them and `core` again (one build each
# way here: 5m56s against 7m56s).
STEPDOWNS = amd64=$$(ls -t target/*/build/harden-*/out/harden-stepdown-amd64 \
	  target/*/*/build/harden-*/out/harden-stepdown-amd64 2>/dev/null | head -1); \
	for f in $${amd64:+$${amd64%amd64}*}; do arch=$${f\#\#*-}; \
	  case $$arch in *[!a-z0-9]*) continue;; esac; \
	  export HARDEN_STEPDOWN_$$(echo $$arch | tr a-z A-Z)=$$PWD/$$f; done

# cargo fuzz needs nightly features: RUSTC_BOOTSTRAP lets the stable
# toolchain (the only one these machines have) build with them.
FUZZ_TARGETS = reference manifest archive layer
fuzz-smoke: FUZZ_SECONDS = 5
fuzz fuzz-smoke:
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	$(STEPDOWNS); \
	cd fuzz && for t in $(FUZZ_TARGETS); do mkdir -p corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t corpus/$$t seeds/$$t -- \
	    -max_total_time=$(or $(FUZZ_SECONDS),300) || exit 1; done

# harden beside its peers (cp, skopeo + umoci, skopeo copy, gosu, setpriv) in
# one run; writes docs/bench-results.json and docs/bench-chart.svg (BENCHMARKS.md).
bench: build deps
	python3 scripts/bench.py --write

# harden as an image (oci-archive), built and hardened by harden itself.
image: build-deps
	./scripts/make-image

# Man pages generated from the clap definitions, into target/man.
man: build
	target/release/harden man target/man
	@ls target/man

clean:
	$(CARGO) clean
	rm -rf .demo
