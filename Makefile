# codemode — build, rootfs, run and test.  See README.md.
#   make          build build/codemode
#   make run      install deps, build, build rootfs, start engine, run demo chain
#   make test     install deps, build (normal + ASan/UBSan), unit + integration tests
CC      ?= gcc
PKGS    := libcurl libcjson yaml-0.1 libcap libseccomp libbpf
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
INCLUDES := -Iengine -Iisolate -Iproviders -Ipolicies -Ibuild/bpf
WARN    := -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(INCLUDES) $(PKG_CFLAGS) -MMD -MP
LDLIBS  := $(PKG_LIBS) -lpthread
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS     := $(filter-out %.bpf.c,$(sort $(wildcard engine/*.c isolate/*.c providers/*.c policies/*.c)))
LIB_SRCS := $(filter-out engine/main.c,$(SRCS))
OBJS     := $(SRCS:%.c=build/obj/%.o)
LIB_OBJS := $(LIB_SRCS:%.c=build/obj/%.o)
SAN_OBJS := $(SRCS:%.c=build/asan/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
PYTHON  := /usr/bin/python3.11
ROOTFS  := build/rootfs
ROOTFS_INPUTS := rootfs/build_rootfs.py rootfs/runner.py $(PYTHON)

.PHONY: all deps rootfs run test unit integration asan format clean security soak-isolation
all: build/codemode

deps:
	@scripts/install-deps.sh

build/codemode: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

asan: build/asan/codemode
build/asan/codemode: $(SAN_OBJS)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

build/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) $(SAN_FLAGS) $(INCLUDES) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

build/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS) $(shell pkg-config --libs cmocka)

# The eBPF guard: compiled for the BPF target, embedded as a libbpf skeleton.
build/bpf/guard.skel.h: isolate/guard.bpf.c
	@mkdir -p $(dir $@)
	clang -O2 -g -target bpf -I/usr/include/$(shell gcc -dumpmachine) -c -o build/bpf/guard.bpf.o $<
	bpftool gen skeleton build/bpf/guard.bpf.o name cm_guard_bpf > $@.tmp && mv $@.tmp $@
build/obj/isolate/guard.o build/asan/obj/isolate/guard.o: build/bpf/guard.skel.h

# The rootfs is rebuilt only when one of its inputs changes.
rootfs: $(ROOTFS)/.stamp
$(ROOTFS)/.stamp: $(ROOTFS_INPUTS)
	$(PYTHON) rootfs/build_rootfs.py --out $(ROOTFS)
	@touch $@

run: deps all rootfs
	@scripts/demo.sh

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done
	$(PYTHON) -m unittest discover -s tests/unit -p 'test_*.py' -t .

# The integration suite runs twice: normal build, then ASan+UBSan build.
integration: all asan rootfs
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m unittest discover -s tests/integration -t .
	CODEMODE_BIN=$(CURDIR)/build/asan/codemode ASAN_OPTIONS=detect_leaks=1 \
	    UBSAN_OPTIONS=print_stacktrace=1 $(PYTHON) -m unittest discover -s tests/integration -t .

test: deps
	@$(MAKE) --no-print-directory all asan rootfs $(UNIT_BINS)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory security

# Security regression suite (escape probes, per-layer runs, clean-up); root only.
security: all rootfs
	CODEMODE_BIN=$(CURDIR)/build/codemode $(PYTHON) -m unittest discover -s tests/security -t .

# The full clean-up soak: 500 chains, 100 of them killed for timeout or memory.
soak-isolation: all rootfs
	CODEMODE_SOAK_CHAINS=500 CODEMODE_BIN=$(CURDIR)/build/codemode \
	    $(PYTHON) -m unittest tests.security.test_cleanup

format:
	clang-format -i $(SRCS) $(wildcard engine/*.h isolate/*.h providers/*.h policies/*.h tests/unit/*.c)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(SAN_OBJS:.o=.d)
