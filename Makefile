# vtpm — virtual TPMs for Linux VMs, rooted in the host TPM.
#
#   make            build everything into $(BUILD) (default build/)
#   make test       install missing Debian packages (as root), build, run every test
#   make asan       build with -fsanitize=address,undefined (clang) into build-asan/ and run the tests
#   make fuzz       build the libFuzzer harnesses and run each for FUZZ_SECONDS (default 30)
#   make bench      run the benchmarks (vtpmd against swtpm, same run, ratios)
#   make demo       set up and run the demonstration
#   make format     clang-format every C file
#   make install    install the programs, man pages, systemd unit, sysusers/tmpfiles entries,
#                   default options and bash completion (PREFIX, DESTDIR, BINDIR, ... below)
#   make uninstall  remove what make install installed (never the store or any state)
#   make deb        build the Debian package vtpm (dpkg-buildpackage) into $(BUILD)/deb/
#   make check-package  test make install/uninstall and the .deb in a fresh Debian 12 root
BUILD ?= build
CC ?= cc
SAN ?=
OPT ?= -O2
CFLAGS ?= $(OPT) -g
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
CPPFLAGS := -std=c11 -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -Isrc -I$(BUILD)/gen $(SAN)
LDFLAGS ?=
# vtpmd loads a seccomp filter built with it (src/gen/): no libseccomp at run time.
LIBS_VTPMD := -ltpms -lcrypto -ltss2-mu
LIBS_MGR := -ltss2-esys -ltss2-mu -ltss2-tctildr -ltss2-rc -lcrypto -lsqlite3 -lseccomp
FUZZ_SECONDS ?= 30
# V=1 shows every compiler command.
Q := $(if $(filter 1,$(V)),,@)

COMMON_SRC := $(sort $(wildcard src/common/*.c))
VTPMD_SRC := $(sort $(filter-out src/vtpmd/main.c,$(wildcard src/vtpmd/*.c)))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
# Programs link the common objects from an archive: each takes only what it uses (vtpmd
# leaves seccomp_filter.o, and with it libseccomp, out).
COMMON_LIB := $(BUILD)/libvtpmcommon.a
VTPMD_OBJ := $(VTPMD_SRC:%.c=$(BUILD)/%.o)
VTPMMGRD_SRC := $(sort $(filter-out src/vtpmmgrd/main.c,$(wildcard src/vtpmmgrd/*.c)))
VTPMMGRD_OBJ := $(VTPMMGRD_SRC:%.c=$(BUILD)/%.o)
VTPMCTL_SRC := $(sort $(wildcard src/vtpmctl/*.c))
VTPMCTL_OBJ := $(VTPMCTL_SRC:%.c=$(BUILD)/%.o)
LIBS_CTL := -ltss2-mu -lcrypto
# vtpmctl signs host policies with the manager's own policy code
CTL_MGR_OBJ := $(BUILD)/src/vtpmmgrd/host_policy.o
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:%.c=$(BUILD)/%)
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:%.c=$(BUILD)/%)
# Test tools that drive manager code (host TPM, store): linked with the vtpmmgrd objects.
MGR_TOOL_BIN := $(BUILD)/tests/tools/host_tpm_check $(BUILD)/tests/tools/mgrc
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:%.c=$(BUILD)/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all programs test asan fuzz bench demo format clean deps deps-build
all: programs $(UNIT_BIN) $(TOOL_BIN) $(BENCH_BIN)
# what make install and the Debian package install
programs: $(BUILD)/vtpmd $(BUILD)/vtpmmgrd $(BUILD)/vtpmctl

deps:
	@scripts/deps all
deps-build:
	@scripts/deps build

$(BUILD)/%.o: %.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c $< -o $@

$(COMMON_LIB): $(COMMON_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

# vtpmd's seccomp filter, compiled by libseccomp when vtpmd is built (with the sanitizer
# flags of this build, whose filter has LeakSanitizer's calls too).
$(BUILD)/gen/vtpmd_seccomp: src/gen/vtpmd_seccomp.c src/vtpmd/seccomp_calls.c \
		src/common/seccomp_filter.c src/vtpmd/seccomp_calls.h src/common/seccomp_filter.h
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c,$^) -lseccomp
$(BUILD)/gen/vtpmd_seccomp_bpf.h: $(BUILD)/gen/vtpmd_seccomp
	@echo "  GEN     $@"
	$(Q)$< >$@.tmp && mv $@.tmp $@
$(BUILD)/src/vtpmd/sandbox.o: $(BUILD)/gen/vtpmd_seccomp_bpf.h

$(BUILD)/vtpmd: $(BUILD)/src/vtpmd/main.o $(VTPMD_OBJ) $(COMMON_LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LIBS_VTPMD)

$(BUILD)/vtpmctl: $(VTPMCTL_OBJ) $(CTL_MGR_OBJ) $(COMMON_LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LIBS_CTL)

$(BUILD)/vtpmmgrd: $(BUILD)/src/vtpmmgrd/main.o $(VTPMMGRD_OBJ) $(COMMON_LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LIBS_MGR)

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/unit.h $(VTPMD_OBJ) $(VTPMMGRD_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CPPFLAGS) -Itests/unit $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(VTPMD_OBJ) $(VTPMMGRD_OBJ) $(COMMON_LIB) $(LIBS_VTPMD) $(LIBS_MGR)

$(BUILD)/tests/tools/%: tests/tools/%.c $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(COMMON_LIB) $(LIBS_VTPMD)

$(MGR_TOOL_BIN): $(BUILD)/tests/tools/%: tests/tools/%.c $(VTPMMGRD_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(VTPMMGRD_OBJ) $(COMMON_LIB) $(LIBS_MGR)

$(BUILD)/bench/%: bench/%.c bench/tpmcmd.h $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(COMMON_LIB) $(LIBS_VTPMD)

# Benchmarks that drive manager code (the store): linked with the vtpmmgrd objects.
MGR_BENCH_BIN := $(BUILD)/bench/storecommit
$(MGR_BENCH_BIN): $(BUILD)/bench/%: bench/%.c $(VTPMMGRD_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(VTPMMGRD_OBJ) $(COMMON_LIB) $(LIBS_MGR)

test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/run

asan: deps
	@$(MAKE) --no-print-directory all BUILD=build-asan CC=clang OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		BUILD=build-asan tests/run

fuzz: deps-build
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run $(FUZZ_SECONDS)

FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
.PHONY: fuzz-build
fuzz-build:
	@$(MAKE) --no-print-directory $(FUZZ_BIN) BUILD=build-fuzz CC=clang OPT=-O1 \
		SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer"
# Harnesses of the manager's request path link the vtpmmgrd objects.
build-fuzz/fuzz_mgr_%: tests/fuzz/fuzz_mgr_%.c $(VTPMMGRD_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CPPFLAGS) -fsanitize=fuzzer $(WARN) $(CFLAGS) -o $@ $< $(VTPMMGRD_OBJ) $(COMMON_LIB) $(LIBS_MGR)
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(VTPMD_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CPPFLAGS) -fsanitize=fuzzer $(WARN) $(CFLAGS) -o $@ $< $(VTPMD_OBJ) $(COMMON_LIB) $(LIBS_VTPMD)

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bench/run

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo

# ---- install -------------------------------------------------------------------------------
# The paths the programs use at run time (store /var/lib/vtpm, sockets /run/vtpm) are their
# compiled-in defaults and do not follow PREFIX; the unit and the tmpfiles entry name them.
VERSION := 0.1.0
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
# /etc for PREFIX=/usr, else PREFIX/etc (GNU's sysconfdir)
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
# systemd, systemd-sysusers and systemd-tmpfiles read these under /usr and /usr/local
LIBDIR_SYSTEMD ?= $(PREFIX)/lib
UNITDIR ?= $(LIBDIR_SYSTEMD)/systemd/system
SYSUSERSDIR ?= $(LIBDIR_SYSTEMD)/sysusers.d
TMPFILESDIR ?= $(LIBDIR_SYSTEMD)/tmpfiles.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
INSTALL ?= install
# Programs: those whose sources exist (vtpm-verify once src/verify/ has it); every one has
# a man page in docs/ (the packaging test checks it).
BIN_PROGRAMS := vtpmd vtpmctl $(if $(wildcard src/verify/*.c),vtpm-verify)
SBIN_PROGRAMS := vtpmmgrd
MAN_PAGES := $(sort $(wildcard docs/*.[1-8]))

.PHONY: install uninstall deb check-package
# The packaging test (make install, make deb, the .deb in a fresh Debian 12 chroot): minutes,
# and the same whatever the build, so CI runs it once, beside make test (.ci/run).
check-package: deps
	@$(MAKE) --no-print-directory programs
	@BUILD=$(BUILD) EXTRA_TESTS=tests/packaging/packaging.sh tests/run packaging.sh
install: $(BIN_PROGRAMS:%=$(BUILD)/%) $(SBIN_PROGRAMS:%=$(BUILD)/%)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/vtpm \
		$(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 0755 $(BIN_PROGRAMS:%=$(BUILD)/%) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0755 $(SBIN_PROGRAMS:%=$(BUILD)/%) $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -m 0644 etc/passthrough.filter $(DESTDIR)$(SYSCONFDIR)/vtpm/
	$(INSTALL) -m 0644 dist/vtpmmgrd.default $(DESTDIR)$(SYSCONFDIR)/default/vtpmmgrd
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		dist/vtpmmgrd.service.in >$(DESTDIR)$(UNITDIR)/vtpmmgrd.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/vtpmmgrd.service.tmp
	mv $(DESTDIR)$(UNITDIR)/vtpmmgrd.service.tmp $(DESTDIR)$(UNITDIR)/vtpmmgrd.service
	$(INSTALL) -m 0644 dist/vtpm.sysusers $(DESTDIR)$(SYSUSERSDIR)/vtpm.conf
	$(INSTALL) -m 0644 dist/vtpm.tmpfiles $(DESTDIR)$(TMPFILESDIR)/vtpm.conf
	$(INSTALL) -m 0644 dist/vtpmctl.bash-completion $(DESTDIR)$(BASHCOMPDIR)/vtpmctl
	set -e; for m in $(MAN_PAGES); do \
		s=$${m##*.}; $(INSTALL) -d $(DESTDIR)$(MANDIR)/man$$s; \
		$(INSTALL) -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; \
	done

# The store (/var/lib/vtpm) and every vTPM's state are never touched: they are data, not
# installed files. Neither is the vtpmmgrd user.
uninstall:
	rm -f $(BIN_PROGRAMS:%=$(DESTDIR)$(BINDIR)/%) $(SBIN_PROGRAMS:%=$(DESTDIR)$(SBINDIR)/%)
	rm -f $(DESTDIR)$(SYSCONFDIR)/vtpm/passthrough.filter $(DESTDIR)$(SYSCONFDIR)/default/vtpmmgrd
	-rmdir $(DESTDIR)$(SYSCONFDIR)/vtpm 2>/dev/null
	rm -f $(DESTDIR)$(UNITDIR)/vtpmmgrd.service $(DESTDIR)$(SYSUSERSDIR)/vtpm.conf \
		$(DESTDIR)$(TMPFILESDIR)/vtpm.conf $(DESTDIR)$(BASHCOMPDIR)/vtpmctl
	for m in $(MAN_PAGES); do s=$${m##*.}; rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; done

# The Debian package: the source tree (as it is, uncommitted changes included; no build
# output) is copied to $(BUILD)/deb/vtpm-$(VERSION) and built there with dpkg-buildpackage,
# so its .deb, .buildinfo and .changes land in $(BUILD)/deb/, not beside the source tree.
DEB_DIR := $(BUILD)/deb
deb:
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || \
		{ echo "make deb needs dpkg-dev and debhelper (apt-get install debhelper)" >&2; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/vtpm-$(VERSION)
	tar -cf - --exclude=./.git --exclude='./build*' --exclude='./$(patsubst ./%,%,$(BUILD))' --exclude=./tests/cache \
		--exclude=./tests/guest/cache --exclude=./tests/fuzz/corpus . | \
		tar -C $(DEB_DIR)/vtpm-$(VERSION) -xf -
	cd $(DEB_DIR)/vtpm-$(VERSION) && dpkg-buildpackage -us -uc -b
	@ls $(DEB_DIR)/*.deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
