# harden: see README.md. `make demo` and `make test` do all set-up themselves.
CARGO ?= cargo

.PHONY: build demo test deps build-deps lint unit clean man image

# The arm64 step-down needs Debian's toolchain (see README): deps installs it.
export HARDEN_REQUIRE_ARM64 = 1

build: build-deps
	$(CARGO) build --release
	@ls -l target/release/harden

demo: build
	./scripts/demo

build-deps:
	./scripts/install-deps build

deps:
	./scripts/install-deps test

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit tests and the integration tests (skopeo, umoci, podman+runc, the
# distribution registry on 127.0.0.1), as root.
test: deps lint
	rm -rf /tmp/harden-it-*
	$(CARGO) test --workspace
	$(MAKE) image
	./scripts/test-image

# harden as an image (oci-archive), built and hardened by harden itself.
image: build-deps
	./scripts/make-image

# Man pages generated from the clap definitions, into target/man.
man: build
	target/release/harden man target/man
	@ls target/man

clean:
	$(CARGO) clean
	rm -rf .demo /tmp/harden-it-*
