# libgmem - GNU make build.
#
#   make                 libgmem.a, libgmem.so, gmem.pc, tools, examples
#   make demo            build and run the main job (memfd backend)
#   make check           build and run every test, then again on the kvm
#                        backend (TAP, closing summary); NO_SYSFS=1: the
#                        tests leave /sys alone (package builds)
#   make check-shared    the tests that use only the public API, linked
#                        against libgmem.so
#   make bench           benchmarks, each against its baseline, as ratios
#   make bench-migrate   only gmemctl migrate's (MIGRATE_SIZE, MIGRATE_RATE)
#   make install         PREFIX=/usr/local DESTDIR= LIBDIR= INCLUDEDIR=
#                        BINDIR= MANDIR=
#   make V=1             show the commands
#   make WERROR=1        warnings are errors (CI and the check-* targets)
#   make SANITIZE=address,undefined | SANITIZE=thread   sanitizer build
#
# CPPFLAGS, CFLAGS, LDFLAGS and LDLIBS are the user's: the build adds its
# own flags to them (ALL_*), so "make CPPFLAGS=-DNDEBUG" or
# "CFLAGS=--coverage" keep the include paths and reach every compile and
# link, the shared library's too.  A change of compiler or flags rebuilds
# everything in $(O) (the stamp $(O)/build-flags), a change of the
# install directories regenerates gmem.pc ($(O)/install-dirs).

.DEFAULT_GOAL := all
comma := ,

# The version has one home, include/gmem.h's GMEM_VERSION_* macros; the
# library's file name, its soname (the major number) and gmem.pc use it.
gmem_version = $(shell sed -n 's/^\#define GMEM_VERSION_$(1)[[:space:]]\{1,\}\([0-9]\{1,\}\)$$/\1/p' include/gmem.h)
VERSION_MAJOR := $(call gmem_version,MAJOR)
VERSION_MINOR := $(call gmem_version,MINOR)
VERSION_PATCH := $(call gmem_version,PATCH)
VERSION    := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SOVERSION  := $(VERSION_MAJOR)
ifeq ($(filter-out .,$(VERSION_MAJOR).$(VERSION_MINOR)),)
$(error include/gmem.h: no GMEM_VERSION_MAJOR/MINOR/PATCH)
endif

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man

CC         ?= cc
OBJCOPY    ?= objcopy
O          ?= build
WARN       := -Wall -Wextra -Wshadow -Wstrict-prototypes \
	      -Wmissing-prototypes -Wpointer-arith -Wvla -Wformat=2
# Off by default: a newer compiler, LTO or another -O level may warn
# where ours does not, and that should not stop a user's build.
ifeq ($(WERROR),1)
WARN       += -Werror
endif
CFLAGS     ?= -O2 -g
ALL_CPPFLAGS := -D_GNU_SOURCE -Iinclude -Isrc $(CPPFLAGS)
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) -pthread
ALL_LDFLAGS := $(LDFLAGS)
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
endif
ALL_LDLIBS := $(LDLIBS) -pthread

# Stamps: a file that holds the variables its targets are made from,
# rewritten (so newer) only when they change; every object depends on
# build-flags, gmem.pc on install-dirs.  Not written by clean/uninstall.
BUILD_FLAGS  := $(CC) | $(ALL_CPPFLAGS) | $(ALL_CFLAGS) | $(ALL_LDFLAGS) | $(ALL_LDLIBS)
INSTALL_DIRS := $(PREFIX) | $(LIBDIR) | $(INCLUDEDIR)
# make -n and -q change nothing: a stamp that differs is only treated
# as out of date (phony), so they still report the rebuild.
DRY_RUN := $(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS)))
ifneq ($(filter-out clean uninstall,$(or $(MAKECMDGOALS),all)),)
ifneq ($(file < $(O)/build-flags),$(BUILD_FLAGS))
ifeq ($(DRY_RUN),)
$(shell mkdir -p $(O))
$(file > $(O)/build-flags,$(BUILD_FLAGS))
else
.PHONY: $(O)/build-flags
endif
endif
ifneq ($(file < $(O)/install-dirs),$(INSTALL_DIRS))
ifeq ($(DRY_RUN),)
$(shell mkdir -p $(O))
$(file > $(O)/install-dirs,$(INSTALL_DIRS))
else
.PHONY: $(O)/install-dirs
endif
endif
endif
# Made again after a "make clean all" removed them; under -n or -q the
# recipe is expanded too, so it writes nothing there.
ifeq ($(DRY_RUN),)
$(O)/build-flags:
	$(shell mkdir -p $(@D))$(file > $@,$(BUILD_FLAGS))
$(O)/install-dirs:
	$(shell mkdir -p $(@D))$(file > $@,$(INSTALL_DIRS))
else
$(O)/build-flags $(O)/install-dirs:
	@:
endif

ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = @printf '  %-7s %s\n' '$(1)' '$(2)';
endif

LIB_SRC    := $(wildcard src/*.c)
LIB_OBJ    := $(LIB_SRC:src/%.c=$(O)/src/%.o)
LIB_PIC    := $(LIB_SRC:src/%.c=$(O)/pic/%.o)
HDRS       := $(wildcard include/*.h) $(wildcard src/*.h)

TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(O)/tests/%)
BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(O)/bench/%)
BENCH_LIB  := $(filter-out $(BENCH_SRC),$(wildcard bench/*.c))
EX_SRC     := $(wildcard examples/*.c)
EX_BIN     := $(EX_SRC:examples/%.c=$(O)/examples/%)
TOOL_SRC   := $(wildcard tools/*.c)
GMEMCTL    := $(O)/gmemctl
MAN_PAGES  := $(wildcard man/*.[1-8])

STATIC     := $(O)/libgmem.a
SHARED     := $(O)/libgmem.so.$(VERSION)
INTERNAL   := $(O)/internal/libgmem.a

# Unit tests that include a private header (src/*.h) reach internal
# interfaces (state tree, pins, the syscall layer's fault injection):
# they link $(INTERNAL).  Every other test uses the public API only and
# links libgmem.a as an application would, and again libgmem.so in
# check-shared.  test_gmemctl, test_vm (they run gmemctl) and the
# harness's self-test would only repeat themselves there.
INTERNAL_TEST_BIN := $(patsubst tests/%.c,$(O)/tests/%,$(shell grep -l \
		     $(patsubst src/%,-e '\#include "%"',$(wildcard src/*.h)) \
		     $(TEST_SRC)))
SHARED_TEST_BIN := $(patsubst $(O)/tests/%,$(O)/shared/tests/%,\
		   $(filter-out $(INTERNAL_TEST_BIN) \
		   $(addprefix $(O)/tests/,test_gmemctl test_vm \
		   test_harness_selftest),$(TEST_BIN)))

.PHONY: all lib demo check check-shared check-lib check-man check-build \
	bench bench-migrate install uninstall clean
all: lib $(EX_BIN) $(GMEMCTL)
lib: $(STATIC) $(SHARED) $(O)/gmem.pc

$(O)/src/%.o: src/%.c $(HDRS) $(O)/build-flags
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -fvisibility=hidden -c $< -o $@

$(O)/pic/%.o: src/%.c $(HDRS) $(O)/build-flags
	@mkdir -p $(@D)
	$(call say,CC,$< [pic])$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -fvisibility=hidden -fPIC -c $< -o $@

# libgmem.a is one relocatable object: the library's objects linked with
# -r, then every hidden symbol (all but GMEM_EXPORT's, the API) made
# local.  An application sees only the public API, as from the .so, and
# may have its own sys_close() or gmem_lock().  Of the user's flags only
# LTO's reach this link: the compiler would add its runtimes (libgcov,
# sanitizers) to the object otherwise.
LTO_FLAGS := $(filter -flto% -ffat-lto-objects -fno-fat-lto-objects \
	     -fuse-linker-plugin -O%,$(CFLAGS) $(LDFLAGS))
# gcc: do the link-time optimisation now, an object of machine code out
# (objcopy cannot localize symbols in LTO bytecode).
ifneq ($(filter -flto%,$(LTO_FLAGS)),)
ifeq ($(findstring clang,$(CC)),)
LTO_FLAGS += -flinker-output=nolto-rel
endif
endif
$(O)/libgmem.o: $(LIB_OBJ)
	$(call say,LD,$@)$(CC) $(LTO_FLAGS) -r -nostdlib \
		-o $@ $(LIB_OBJ) && $(OBJCOPY) --localize-hidden $@

$(STATIC): $(O)/libgmem.o
	$(call say,AR,$@)rm -f $@ && $(AR) rcs $@ $^

$(INTERNAL): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(call say,AR,$@)rm -f $@ && $(AR) rcs $@ $^

# -z defs: every symbol the .so uses is resolved by what it links.  Not
# with a sanitizer: clang leaves the runtime to the executable.
ZDEFS := $(if $(findstring -fsanitize=,$(ALL_CFLAGS) $(ALL_LDFLAGS)),,-Wl$(comma)-z$(comma)defs)

$(SHARED): $(LIB_PIC) src/libgmem.map
	$(call say,LD,$@)$(CC) $(ALL_CFLAGS) -shared \
		-Wl,-soname,libgmem.so.$(SOVERSION) \
		-Wl,--version-script=src/libgmem.map $(ZDEFS) \
		$(ALL_LDFLAGS) -o $@ $(LIB_PIC) $(ALL_LDLIBS)
	@ln -sf libgmem.so.$(VERSION) $(O)/libgmem.so.$(SOVERSION)
	@ln -sf libgmem.so.$(VERSION) $(O)/libgmem.so

$(O)/gmem.pc: gmem.pc.in include/gmem.h $(O)/install-dirs
	@mkdir -p $(@D)
	$(call say,GEN,$@)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(O)/tests/%: tests/%.c $(wildcard tests/*.h) $(STATIC) $(INTERNAL)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(ALL_CPPFLAGS) -Itests $(ALL_CFLAGS) $< -o $@ \
		$(if $(filter $@,$(INTERNAL_TEST_BIN)),$(INTERNAL),$(STATIC)) \
		$(ALL_LDFLAGS) $(ALL_LDLIBS)

# The same tests against libgmem.so, found through the rpath.
$(O)/shared/tests/%: tests/%.c $(wildcard tests/*.h) $(SHARED)
	@mkdir -p $(@D)
	$(call say,CC,$< [shared])$(CC) $(ALL_CPPFLAGS) -Itests $(ALL_CFLAGS) $< \
		-o $@ $(SHARED) -Wl,-rpath,$(abspath $(O)) $(ALL_LDFLAGS) $(ALL_LDLIBS)

$(O)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $< -o $@ $(STATIC) $(ALL_LDFLAGS) $(ALL_LDLIBS)

$(O)/shared/examples/%: examples/%.c $(SHARED)
	@mkdir -p $(@D)
	$(call say,CC,$< [shared])$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $< -o $@ \
		$(SHARED) -Wl,-rpath,$(abspath $(O)) $(ALL_LDFLAGS) $(ALL_LDLIBS)

# Benchmarks measure internals too (bench_state): the internal archive.
$(O)/bench/%: bench/%.c $(BENCH_LIB) $(wildcard bench/*.h) $(INTERNAL)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(ALL_CPPFLAGS) -Ibench $(ALL_CFLAGS) $< $(BENCH_LIB) -o $@ $(INTERNAL) $(ALL_LDFLAGS) $(ALL_LDLIBS)

# gmemctl links the bench/ baselines (QEMU-style bitmap, syscall floor).
$(GMEMCTL): $(TOOL_SRC) $(wildcard tools/*.h) $(BENCH_LIB) $(wildcard bench/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(call say,CC,$@)$(CC) $(ALL_CPPFLAGS) -Ibench -Itools $(ALL_CFLAGS) $(TOOL_SRC) $(BENCH_LIB) -o $@ $(STATIC) $(ALL_LDFLAGS) $(ALL_LDLIBS) -lm

# tests/test_gmemctl.c and test_vm.c run the command: this build's
# ($(GMEMCTL), passed as GMEMCTL), not build/gmemctl.
$(O)/tests/test_gmemctl $(O)/tests/test_vm: $(GMEMCTL)

demo: $(GMEMCTL)
	$(GMEMCTL) demo

# What the test programs run with: this build's gmemctl; NO_SYSFS=1
# (package builds) leaves /sys alone, the tests that would change THP or
# hugetlb settings skip, saying so; a sanitizer build's runtime options
# (libgmem raises SIGBUS on purpose and the tests catch SIGBUS and SIGSEGV
# themselves, so ASan leaves both signals alone).
ASAN_RUN_OPTIONS  := handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1
UBSAN_RUN_OPTIONS := halt_on_error=1:print_stacktrace=1
TSAN_RUN_OPTIONS  := halt_on_error=1:second_deadlock_stack=1:history_size=7:suppressions=$(CURDIR)/tests/tsan.supp
TEST_ENV := GMEMCTL=$(abspath $(GMEMCTL))
ifeq ($(NO_SYSFS),1)
TEST_ENV += GMEM_TEST_NO_SYSFS=1
endif
ifneq ($(filter address undefined,$(subst $(comma), ,$(SANITIZE))),)
TEST_ENV += ASAN_OPTIONS=$(ASAN_RUN_OPTIONS) UBSAN_OPTIONS=$(UBSAN_RUN_OPTIONS)
endif
ifneq ($(filter thread,$(subst $(comma), ,$(SANITIZE))),)
TEST_ENV += TSAN_OPTIONS=$(TSAN_RUN_OPTIONS)
endif

# The suite runs three times: as is (memfd backend); then with
# GMEM_TEST_BACKEND=kvm, again for the programs that make their files on
# the backend under test (GMEM_TEST_REQUIRE_BACKEND, tests/gmem_test.h;
# the others would only repeat the first run), which without /dev/kvm
# skip, saying why; then the public-API tests linked against libgmem.so
# (GMEM_TEST_LIB=shared only names that run: about 1.5 of make check's
# 5 minutes on 2 cores).  One run-tests.sh call, one group per run: it
# prints each run's sums, the failed tests by name and the skips by
# reason, then, last, the overall "N passed, N failed, N skipped", and
# fails if any run failed.  Before it: the library's exports and the man
# pages (check-lib, check-man).
KVM_TEST_BIN := $(patsubst tests/%.c,$(O)/tests/%,\
		$(shell grep -l GMEM_TEST_REQUIRE_BACKEND $(TEST_SRC)))
SHARED_EX_BIN := $(EX_SRC:examples/%.c=$(O)/shared/examples/%)

check: $(TEST_BIN) $(SHARED_TEST_BIN) $(SHARED_EX_BIN) check-lib check-man
	@env $(TEST_ENV) bash tests/run-tests.sh $(TEST_BIN) \
		-- GMEM_TEST_BACKEND=kvm $(KVM_TEST_BIN) \
		-- GMEM_TEST_LIB=shared $(SHARED_TEST_BIN)

# The libgmem.so run alone.
check-shared: $(SHARED_TEST_BIN) $(SHARED_EX_BIN)
	@env $(TEST_ENV) bash tests/run-tests.sh GMEM_TEST_LIB=shared \
		$(SHARED_TEST_BIN)

# Only the public API is visible from libgmem.a and libgmem.so, the
# version is the same everywhere, and an application may define names
# the library uses inside (tests/check-lib.sh).
check-lib: $(STATIC) $(SHARED) $(O)/gmem.pc
	@CC="$(CC)" CFLAGS="$(ALL_CPPFLAGS) $(ALL_CFLAGS)" \
		LDFLAGS="$(ALL_LDFLAGS) $(ALL_LDLIBS)" \
		bash tests/check-lib.sh $(O) $(VERSION)

# Every man page renders, from the source tree, without a warning;
# gmemctl(1) has every command and option of gmemctl's --help texts.
check-man: $(GMEMCTL)
	@GMEMCTL=$(GMEMCTL) bash tests/check-man.sh $(MAN_PAGES)

# Builds as users and packagers make them, each in a directory of its
# own (CI runs this): the user's CPPFLAGS/CFLAGS next to ours, coverage
# (CFLAGS reach the .so's link), LTO without WERROR (even under
# "make WERROR=1 check-build": gcc's LTO may warn where a plain build
# does not), a change of flags that rebuilds, and gmem.pc following
# PREFIX at install time.
CHECK_BUILD_FLAGS := CPPFLAGS=-DNDEBUG CFLAGS="-O0 -g --coverage"
check-build: all
	$(MAKE) O=$(O)-cov $(CHECK_BUILD_FLAGS) lib check-lib
	$(MAKE) -q O=$(O)-cov $(CHECK_BUILD_FLAGS) lib
	! $(MAKE) -q O=$(O)-cov lib
	$(MAKE) O=$(O)-lto WERROR= CFLAGS="-O2 -flto=auto" all check-lib
	rm -rf $(O)-stage
	$(MAKE) install DESTDIR=$(abspath $(O)-stage)/local > /dev/null
	$(MAKE) install PREFIX=/usr DESTDIR=$(abspath $(O)-stage)/usr > /dev/null
	grep -qx 'prefix=/usr/local' $(O)-stage/local/usr/local/lib/pkgconfig/gmem.pc
	grep -qx 'prefix=/usr' $(O)-stage/usr/usr/lib/pkgconfig/gmem.pc
	test "$$(PKG_CONFIG_LIBDIR=$(O)-stage/usr/usr/lib/pkgconfig \
		pkg-config --modversion gmem)" = $(VERSION)
	grep -qx '.so man3/gmem_pin.3' $(O)-stage/usr/usr/share/man/man3/gmem_unpin.3
	test -z "$$(MANPATH=$(O)-stage/usr/usr/share/man MANWIDTH=80 \
		man --warnings=w gmem_unpin 2>&1 > /dev/null)"
	test -f $(O)-stage/usr/usr/share/man/man1/gmemctl.1
	rm -rf $(O)-stage
	@echo "# check-build: user flags, coverage, LTO, rebuilds, install: ok"

# Examples: built with the warnings as errors whatever CFLAGS say, from
# the public headers only (include/, no src/), then each run: 0 passes,
# 77 is a skip that has said why.
EX_FLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -Wall -Wextra -Werror $(CFLAGS) -pthread

.PHONY: examples
examples: $(EX_SRC) include/gmem.h include/gmem_kvm.h $(STATIC)
	@mkdir -p $(O)/examples
	@for s in $(EX_SRC); do b=$(O)/examples/$$(basename $$s .c); \
		echo "  CC      $$s [examples]"; \
		$(CC) $(EX_FLAGS) $$s -o $$b $(STATIC) $(LDFLAGS) $(LDLIBS) || exit 1; done
	@for s in $(EX_SRC); do b=$(O)/examples/$$(basename $$s .c); \
		echo "== $$b"; $$b; rc=$$?; \
		if [ $$rc = 77 ]; then echo "== $$b: skipped"; \
		elif [ $$rc != 0 ]; then echo "== $$b: FAILED ($$rc)"; exit 1; fi; done

# Last, issue 13's migration: a 4 GiB guest, writers dirtying 64 MiB/s,
# its downtime and stop-and-copy size against a full stop-and-copy of the
# same file in the same run (the source and the destination hold a copy
# each: 8 GiB of memory; MIGRATE_SIZE=1G where there is less).
MIGRATE_SIZE  ?= 4G
MIGRATE_RATE  ?= 64M
MIGRATE_BENCH  = $(GMEMCTL) migrate --size $(MIGRATE_SIZE) \
		 --rate $(MIGRATE_RATE) --bench

bench: $(BENCH_BIN) $(GMEMCTL)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done
	@echo "== $(MIGRATE_BENCH)"; $(MIGRATE_BENCH)

bench-migrate: $(GMEMCTL)
	@echo "== $(MIGRATE_BENCH)"; $(MIGRATE_BENCH)

# Alias pages are symlinks in the tree (man -l follows them); installed,
# they become ".so man3/<page>" lines, as distributions ship them.
install: lib $(GMEMCTL)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(BINDIR)
	install -m 755 $(GMEMCTL) $(DESTDIR)$(BINDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libgmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libgmem.so.$(SOVERSION)
	ln -sf libgmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libgmem.so
	install -m 644 include/gmem.h include/gmem_kvm.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(O)/gmem.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	@set -e; for m in $(MAN_PAGES); do \
		s=$${m##*.}; d=$(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; \
		if [ -L $$m ]; then \
			echo "  .so man$$s/$$(readlink $$m) > $$d"; \
			echo ".so man$$s/$$(readlink $$m)" > $$d; \
			chmod 644 $$d; \
		else \
			echo "install -m 644 $$m $$d"; install -m 644 $$m $$d; \
		fi; \
	done

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libgmem.* $(DESTDIR)$(LIBDIR)/pkgconfig/gmem.pc \
		$(DESTDIR)$(INCLUDEDIR)/gmem.h $(DESTDIR)$(INCLUDEDIR)/gmem_kvm.h \
		$(DESTDIR)$(BINDIR)/gmemctl
	rm -f $(foreach m,$(MAN_PAGES),\
		$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))

# Every build directory: $(O) and the check-* targets' $(O)-asan,
# $(O)-tsan, $(O)-valgrind, $(O)-fuzz.
clean:
	rm -rf $(O) $(O)-*

# ---- Reliability targets (issue 7) -------------------------------------------
#
#   make check-sanitize   the whole suite under ASan + UBSan, built in $(O)-asan
#   make check-tsan       the whole suite under TSan, built in $(O)-tsan
#   make check-valgrind   the unit tests under valgrind memcheck, $(O)-valgrind
#   make stress           tests/test_stress for STRESS_SECONDS (default 120)
#   make fuzz             fuzz/fuzz_api for FUZZ_SECONDS (default 60), $(O)-fuzz
#
# Sanitizer builds use clang (SAN_CC), as the fuzzer must (libFuzzer, with
# Debian's libclang-rt-14-dev for the sanitizer runtimes), with -Werror.
# libgmem raises SIGBUS on purpose and the tests catch SIGBUS and SIGSEGV
# themselves # (siglongjmp out of their handler): the check target gives a sanitizer
# build its runtime options (TEST_ENV).  TSan: tests/tsan.supp says what
# it suppresses and why.  Valgrind: see
# VALGRIND_TESTS below.

SAN_CC         ?= clang
SAN_CFLAGS     ?= -O1 -g
FUZZ_CC        ?= clang
FUZZ_SECONDS   ?= 60
FUZZ_SEED      ?= 1	# fixed in CI, so a run can be repeated; 0: random
STRESS_SECONDS ?= 120

$(O)/tests/test_badinput $(O)/tests/test_stress: tests/reliability.h

.PHONY: check-sanitize check-tsan check-valgrind stress fuzz

check-sanitize:
	$(MAKE) O=$(O)-asan CC=$(SAN_CC) SANITIZE=address,undefined WERROR=1 \
		CFLAGS="$(SAN_CFLAGS) -fno-sanitize-recover=all" check

check-tsan:
	$(MAKE) O=$(O)-tsan CC=$(SAN_CC) SANITIZE=thread WERROR=1 \
		CFLAGS="$(SAN_CFLAGS)" check

# The unit tests: single-threaded programs of the API and its data
# structures.  Not test_threads, test_stress (threads: valgrind runs them
# one at a time, slowly, and TSan covers them), test_fragment (200,000
# pages), test_views (its fork tests need MADV_DONTFORK, which valgrind
# does not model: the child's probes of the views it did not inherit
# kill it), test_harness_selftest (the harness, not libgmem),
# test_gmemctl, test_vm and test_huge (whole programs, KVM, huge pages).
# Valgrind 3.19 has no userfaultfd(2): libgmem runs with its vma guard
# only there.  -gdwarf-4: valgrind 3.19 does not read all of DWARF 5.
# tests/valgrind.supp: the tests' deliberate accesses to unmapped memory.
# test_binding runs without its threads_* test (-t "bind." selects the
# others): valgrind runs threads one at a time, and in its 1.5 s that
# test gets too few operations done to pass.
VALGRIND_TESTS := test_state test_extent test_park test_create test_fallocate test_convert \
		  test_pin test_lifetime test_listener test_badinput
VALGRIND_BIN   := $(VALGRIND_TESTS:%=$(O)-valgrind/tests/%)
VALGRIND       := valgrind -q --error-exitcode=99 --fair-sched=yes --leak-check=full \
		  --errors-for-leak-kinds=definite --show-leak-kinds=definite \
		  --suppressions=$(CURDIR)/tests/valgrind.supp

check-valgrind:
	$(MAKE) O=$(O)-valgrind WERROR=1 CFLAGS="-O1 -g -gdwarf-4" $(VALGRIND_BIN) \
		$(O)-valgrind/tests/test_binding
	GMEM_TEST_WRAPPER="$(VALGRIND)" GMEM_TEST_TIMEOUT=600 \
		bash tests/run-tests.sh -t 1800 $(VALGRIND_BIN)
	GMEM_TEST_TIMEOUT=600 $(VALGRIND) $(O)-valgrind/tests/test_binding -t bind.

stress: $(O)/tests/test_stress
	STRESS_SECONDS=$(STRESS_SECONDS) \
		bash tests/run-tests.sh -t $$(($(STRESS_SECONDS) + 300)) $<

# libFuzzer: the library compiled with the same sanitizers and coverage;
# new inputs go to $(O)-fuzz/corpus, fuzz/corpus (the seeds) is only read.
FUZZ_O      := $(O)-fuzz
FUZZ_CFLAGS := -std=c11 $(WARN) -O1 -g -pthread -fno-omit-frame-pointer \
	       -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJ    := $(LIB_SRC:src/%.c=$(FUZZ_O)/src/%.o)

$(FUZZ_O)/src/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(call say,CC,$< [fuzz])$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) \
		-fsanitize=fuzzer-no-link -fvisibility=hidden -c $< -o $@

$(FUZZ_O)/fuzz_api: fuzz/fuzz_api.c include/gmem.h $(FUZZ_OBJ)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer \
		$< $(FUZZ_OBJ) -o $@ $(ALL_LDFLAGS) $(ALL_LDLIBS)

fuzz: $(FUZZ_O)/fuzz_api
	@mkdir -p $(FUZZ_O)/corpus
	$(FUZZ_O)/fuzz_api -max_total_time=$(FUZZ_SECONDS) -timeout=20 \
		-seed=$(FUZZ_SEED) \
		-max_len=512 -print_final_stats=1 -artifact_prefix=$(FUZZ_O)/ \
		$(FUZZ_O)/corpus fuzz/corpus
