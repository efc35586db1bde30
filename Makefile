# libgmem - GNU make build.
#
#   make                 libgmem.a, libgmem.so, gmem.pc, tools, examples
#   make demo            build and run the main job (memfd backend)
#   make check           build and run every test, then again on the kvm
#                        backend (TAP, closing summary)
#   make bench           benchmarks, each against its baseline, as ratios
#   make install         PREFIX=/usr/local DESTDIR=
#   make V=1             show the commands
#   make SANITIZE=address,undefined | SANITIZE=thread   sanitizer build

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
O          ?= build
WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	      -Wmissing-prototypes -Wpointer-arith -Wvla -Wformat=2
CFLAGS     ?= -O2 -g
CPPFLAGS   += -D_GNU_SOURCE -Iinclude -Isrc
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) -pthread
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS    += -fsanitize=$(SANITIZE)
endif
LDLIBS     += -pthread

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
HDRS       := include/gmem.h $(wildcard src/*.h)

TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(O)/tests/%)
BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(O)/bench/%)
BENCH_LIB  := $(filter-out $(BENCH_SRC),$(wildcard bench/*.c))
EX_SRC     := $(wildcard examples/*.c)
EX_BIN     := $(EX_SRC:examples/%.c=$(O)/examples/%)
TOOL_SRC   := $(wildcard tools/*.c)
GMEMCTL    := $(O)/gmemctl

STATIC     := $(O)/libgmem.a
SHARED     := $(O)/libgmem.so.$(VERSION)

.PHONY: all lib demo check bench install uninstall clean
all: lib $(EX_BIN) $(GMEMCTL)
lib: $(STATIC) $(SHARED) $(O)/gmem.pc

$(O)/src/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fvisibility=hidden -c $< -o $@

$(O)/pic/%.o: src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(call say,CC,$< [pic])$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fvisibility=hidden -fPIC -c $< -o $@

$(STATIC): $(LIB_OBJ)
	$(call say,AR,$@)rm -f $@ && $(AR) rcs $@ $^

$(SHARED): $(LIB_PIC) src/libgmem.map
	$(call say,LD,$@)$(CC) -shared -Wl,-soname,libgmem.so.$(SOVERSION) \
		-Wl,--version-script=src/libgmem.map -Wl,-z,defs \
		$(LDFLAGS) -o $@ $(LIB_PIC) $(LDLIBS)
	@ln -sf libgmem.so.$(VERSION) $(O)/libgmem.so.$(SOVERSION)
	@ln -sf libgmem.so.$(VERSION) $(O)/libgmem.so

$(O)/gmem.pc: gmem.pc.in Makefile include/gmem.h
	@mkdir -p $(@D)
	$(call say,GEN,$@)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# Tests, examples and benchmarks link the static library: unit tests
# reach internal interfaces (state tree, pins) that the .so keeps local.
$(O)/tests/%: tests/%.c $(wildcard tests/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) -Itests $(ALL_CFLAGS) $< -o $@ $(STATIC) $(LDFLAGS) $(LDLIBS)

$(O)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $< -o $@ $(STATIC) $(LDFLAGS) $(LDLIBS)

$(O)/bench/%: bench/%.c $(BENCH_LIB) $(wildcard bench/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) -Ibench $(ALL_CFLAGS) $< $(BENCH_LIB) -o $@ $(STATIC) $(LDFLAGS) $(LDLIBS)

# gmemctl links the bench/ baselines (QEMU-style bitmap, syscall floor).
$(GMEMCTL): $(TOOL_SRC) $(wildcard tools/*.h) $(BENCH_LIB) $(wildcard bench/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(call say,CC,$@)$(CC) $(CPPFLAGS) -Ibench -Itools $(ALL_CFLAGS) $(TOOL_SRC) $(BENCH_LIB) -o $@ $(STATIC) $(LDFLAGS) $(LDLIBS) -lm

# tests/test_gmemctl.c runs the command.
$(O)/tests/test_gmemctl $(O)/tests/test_vm: $(GMEMCTL)

demo: $(GMEMCTL)
	$(GMEMCTL) demo

# The suite runs twice: as is (memfd backend), then with
# GMEM_TEST_BACKEND=kvm, again for the programs that make their files on
# the backend under test (GMEM_TEST_REQUIRE_BACKEND, tests/gmem_test.h;
# the others would only repeat the first run).  Without /dev/kvm those
# skip, saying why.  One run-tests.sh call, one group per run: it prints
# each run's sums, then, last, the overall "N passed, N failed,
# N skipped", and fails if either run failed.
KVM_TEST_BIN := $(patsubst tests/%.c,$(O)/tests/%,\
		$(shell grep -l GMEM_TEST_REQUIRE_BACKEND $(TEST_SRC)))

check: $(TEST_BIN)
	@bash tests/run-tests.sh $(TEST_BIN) \
		-- GMEM_TEST_BACKEND=kvm $(KVM_TEST_BIN)

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

install: lib $(GMEMCTL)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(BINDIR)
	install -m 755 $(GMEMCTL) $(DESTDIR)$(BINDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libgmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libgmem.so.$(SOVERSION)
	ln -sf libgmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libgmem.so
	install -m 644 include/gmem.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(O)/gmem.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 644 $(wildcard man/*.3) $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(wildcard man/*.7) $(DESTDIR)$(MANDIR)/man7/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libgmem.* $(DESTDIR)$(LIBDIR)/pkgconfig/gmem.pc \
		$(DESTDIR)$(INCLUDEDIR)/gmem.h $(DESTDIR)$(BINDIR)/gmemctl
	rm -f $(patsubst man/%,$(DESTDIR)$(MANDIR)/man3/%,$(wildcard man/*.3)) \
		$(patsubst man/%,$(DESTDIR)$(MANDIR)/man7/%,$(wildcard man/*.7))

clean:
	rm -rf $(O)

# ---- Reliability targets (issue 7) -------------------------------------------
#
#   make check-sanitize   the whole suite under ASan + UBSan, built in $(O)-asan
#   make check-tsan       the whole suite under TSan, built in $(O)-tsan
#   make check-valgrind   the unit tests under valgrind memcheck, $(O)-valgrind
#   make stress           tests/test_stress for STRESS_SECONDS (default 120)
#   make fuzz             fuzz/fuzz_api for FUZZ_SECONDS (default 60), $(O)-fuzz
#
# Sanitizer builds use clang (SAN_CC), as the fuzzer must (libFuzzer, with
# Debian's libclang-rt-14-dev for the sanitizer runtimes).  libgmem raises
# SIGBUS on purpose and the tests catch SIGBUS and SIGSEGV themselves
# (siglongjmp out of their handler), so ASan leaves both signals alone.
# TSan: tests/tsan.supp says what it suppresses and why.  Valgrind: see
# VALGRIND_TESTS below.

SAN_CC         ?= clang
SAN_CFLAGS     ?= -O1 -g
FUZZ_CC        ?= clang
FUZZ_SECONDS   ?= 60
FUZZ_SEED      ?= 1	# fixed in CI, so a run can be repeated; 0: random
STRESS_SECONDS ?= 120

ASAN_RUN_OPTIONS  := handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1
UBSAN_RUN_OPTIONS := halt_on_error=1:print_stacktrace=1
TSAN_RUN_OPTIONS  := halt_on_error=1:second_deadlock_stack=1:history_size=7:suppressions=$(CURDIR)/tests/tsan.supp

$(O)/tests/test_badinput $(O)/tests/test_stress: tests/reliability.h

.PHONY: check-sanitize check-tsan check-valgrind stress fuzz

check-sanitize:
	ASAN_OPTIONS=$(ASAN_RUN_OPTIONS) UBSAN_OPTIONS=$(UBSAN_RUN_OPTIONS) \
	$(MAKE) O=$(O)-asan CC=$(SAN_CC) SANITIZE=address,undefined \
		CFLAGS="$(SAN_CFLAGS) -fno-sanitize-recover=all" check

check-tsan:
	TSAN_OPTIONS=$(TSAN_RUN_OPTIONS) \
	$(MAKE) O=$(O)-tsan CC=$(SAN_CC) SANITIZE=thread CFLAGS="$(SAN_CFLAGS)" \
		check

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
	$(MAKE) O=$(O)-valgrind CFLAGS="-O1 -g -gdwarf-4" $(VALGRIND_BIN) \
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
	$(call say,CC,$< [fuzz])$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) \
		-fsanitize=fuzzer-no-link -fvisibility=hidden -c $< -o $@

$(FUZZ_O)/fuzz_api: fuzz/fuzz_api.c include/gmem.h $(FUZZ_OBJ)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer \
		$< $(FUZZ_OBJ) -o $@ $(LDLIBS)

fuzz: $(FUZZ_O)/fuzz_api
	@mkdir -p $(FUZZ_O)/corpus
	$(FUZZ_O)/fuzz_api -max_total_time=$(FUZZ_SECONDS) -timeout=20 \
		-seed=$(FUZZ_SEED) \
		-max_len=512 -print_final_stats=1 -artifact_prefix=$(FUZZ_O)/ \
		$(FUZZ_O)/corpus fuzz/corpus
