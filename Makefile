# vtpm — virtual TPMs for Linux VMs, rooted in the host TPM.
#
#   make            build everything into $(BUILD) (default build/)
#   make test       install missing Debian packages (as root), build, run every test
#   make asan       build with -fsanitize=address,undefined (clang) into build-asan/ and run the tests
#   make fuzz       build the libFuzzer harnesses and run each for FUZZ_SECONDS (default 30)
#   make bench      run the benchmarks (vtpmd against swtpm, same run, ratios)
#   make demo       set up and run the demonstration
#   make format     clang-format every C file
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

.PHONY: all test asan fuzz bench demo format clean deps deps-build
all: $(BUILD)/vtpmd $(BUILD)/vtpmmgrd $(BUILD)/vtpmctl $(UNIT_BIN) $(TOOL_BIN) $(BENCH_BIN)

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

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
