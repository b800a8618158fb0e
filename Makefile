# uexec: `make` builds everything (release), `make demo` runs the loaders on a bundled program,
# `make test` runs the whole test suite. See README.md.

CARGO ?= cargo
CC ?= gcc
RELEASE := target/release
DEMO := target/demo
# The loaders are a workspace of their own (see crates/loaders/Cargo.toml); their binaries land in
# target/release with everything else.
LOADERS := --manifest-path crates/loaders/Cargo.toml --target-dir target

.PHONY: all loaders demo test bench bench-full fuzz-check fuzz clean

all: loaders
	$(CARGO) build --release --workspace

loaders:
	$(CARGO) build --release $(LOADERS)

$(DEMO)/hello-static: demo/hello.c
	@mkdir -p $(DEMO)
	$(CC) -O2 -static -o $@ $<

$(DEMO)/hello-static-pie: demo/hello.c
	@mkdir -p $(DEMO)
	$(CC) -O2 -static-pie -o $@ $<

$(DEMO)/hello-dynamic: demo/hello.c
	@mkdir -p $(DEMO)
	$(CC) -O2 -o $@ $<

demo: all $(DEMO)/hello-static $(DEMO)/hello-static-pie $(DEMO)/hello-dynamic
	@echo "== natively"
	$(DEMO)/hello-static one two
	@echo; echo "== under apager: a static program (mapping log on stderr)"
	$(RELEASE)/apager $(DEMO)/hello-static one two
	@echo; echo "== under apager: a static-pie program"
	$(RELEASE)/apager $(DEMO)/hello-static-pie one two
	@echo; echo "== under apager: a dynamically linked program, through its own PT_INTERP"
	$(RELEASE)/apager $(DEMO)/hello-dynamic one two
	@echo; echo "== apager refusing to load itself (expected: one line naming the problem, exit status 126)"
	@$(RELEASE)/apager $(RELEASE)/apager; status=$$?; \
	if [ $$status -eq 126 ]; then echo "(refused as expected: exit status 126)"; \
	else echo "unexpected exit status $$status"; exit 1; fi

# The loaders (and the checkpoint preload library) are built in release mode first: the differential
# tests run target/release/apager and LD_PRELOAD target/release/libuexec_ckpt.so.
test: loaders
	$(CARGO) build --release -p uexec-ckpt-preload
	$(CARGO) test $(LOADERS)
	$(CARGO) test --workspace

# Benchmarks (timings never run in `make test`): results in target/bench, method in docs/benchmarks.md.
bench: all
	$(CARGO) run --release -p uexec-bench -- --quick

bench-full: all
	$(CARGO) run --release -p uexec-bench
	$(CARGO) bench -p objload --bench relocs
	$(CARGO) bench -p objtools --bench startup

# The ELF-header fuzz target: a stable-toolchain quick check, or libFuzzer with nightly + cargo-fuzz.
fuzz-check:
	cd fuzz && $(CARGO) test --release --no-default-features && $(CARGO) run --release --no-default-features --bin quickcheck -- 1000000

fuzz:
	cd fuzz && $(CARGO) +nightly fuzz run -O elf_headers corpus/elf_headers -- -max_len=8192 -max_total_time=300

clean:
	$(CARGO) clean
