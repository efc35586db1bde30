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

VERSION    := 0.1.0
SOVERSION  := 0
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

$(O)/gmem.pc: gmem.pc.in Makefile
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

install: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
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
		$(DESTDIR)$(INCLUDEDIR)/gmem.h
	rm -f $(patsubst man/%,$(DESTDIR)$(MANDIR)/man3/%,$(wildcard man/*.3)) \
		$(patsubst man/%,$(DESTDIR)$(MANDIR)/man7/%,$(wildcard man/*.7))

clean:
	rm -rf $(O)

