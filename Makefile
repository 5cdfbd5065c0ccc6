# bottomlessfs - one non-recursive Makefile. `make` builds build/bottomlessfs and
# build/bottomless-cli; SAN=1 builds with ASan+UBSan into build/san (what `make test` uses).
PKGS      = fuse3 libcurl openssl expat zlib libzstd sqlite3
BUILD    ?= $(if $(SAN),build/san,build)
SANFLAGS  = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
CPPFLAGS += -I. -D_GNU_SOURCE -DFUSE_USE_VERSION=314 $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   += -std=c11 -g -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla \
            -Wstrict-prototypes -Wmissing-prototypes -MMD -MP $(if $(SAN),$(SANFLAGS))
LDFLAGS  += $(if $(SAN),$(SANFLAGS))
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
PREFIX   ?= /usr/local
DESTDIR  ?=

objs = $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c))
LIBS = $(BUILD)/libwal.a $(BUILD)/libs3.a $(BUILD)/libcommon.a

.PHONY: all deps unit integration test lint bench demo clean install uninstall torture tools \
        fuzz fuzz-lf
all: $(BUILD)/bottomlessfs $(BUILD)/bottomless-cli

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(COMPILE.c) -o $@ $<

$(BUILD)/libcommon.a: $(call objs,common) ; $(AR) rcs $@ $^
$(BUILD)/libs3.a:     $(call objs,s3)     ; $(AR) rcs $@ $^
$(BUILD)/libwal.a:    $(call objs,wal)    ; $(AR) rcs $@ $^

$(BUILD)/bottomlessfs: $(call objs,fs) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/bottomless-cli: $(call objs,cli) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: each tests/unit/test_*.c is one criterion binary; tests/lib/*.c is shared.
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TESTLIB   = $(call objs,tests/lib)
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TESTLIB) $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# Helper programs used by integration tests (tests/tools/*.c -> build/tools/*).
TOOL_SRCS = $(wildcard tests/tools/*.c)
TOOL_BINS = $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRCS))
$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
tools: $(TOOL_BINS)

# Benchmark programs (bench/*.c -> build/bench/*): only libsqlite3 and libc, never our libs.
BENCH_BINS = $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $< -lsqlite3 -lpthread

deps:
	@bash tests/lib/deps.sh

unit: $(UNIT_BINS)
	@bash tests/run-unit.sh $(UNIT_BINS)

integration: all tools
	@BFS_BIN=$(abspath $(BUILD)) bash tests/run-integration.sh $(T)

# Everything under ASan+UBSan. T=pattern runs only matching integration tests.
test:
	@$(MAKE) -j$(shell nproc) --no-print-directory SAN=1 all tools $(patsubst tests/unit/%.c,build/san/tests/%,$(UNIT_SRCS))
	@rc=0; bash tests/run-unit.sh $(patsubst tests/unit/%.c,build/san/tests/%,$(UNIT_SRCS)) || rc=1; \
	 BFS_BIN=$(abspath build/san) bash tests/run-integration.sh $(T) || rc=1; exit $$rc

torture:
	@$(MAKE) --no-print-directory SAN=1 all tools
	@BFS_BIN=$(abspath build/san) BFS_TORTURE=1 bash tests/run-integration.sh torture

# Fuzz targets (tests/fuzz/fuzz_*.c, see tests/fuzz/fuzz.h). $(BUILD)/fuzz/fuzz_X replays files
# (the kept corpus tests/fuzz/corpus/fuzz_X/, in `make test` via 76-rel-fuzz-torture.sh);
# build/fuzz-lf/fuzz_X is the libFuzzer build (clang, every lib source instrumented), run for
# minutes by the same test under `make torture` (BFS_TORTURE=1).
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/standalone.o $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
build/fuzz-lf/%: tests/fuzz/%.c $(wildcard common/*.c s3/*.c wal/*.c)
	@mkdir -p $(@D)
	clang $(CPPFLAGS) -std=c11 -g -O1 -fno-omit-frame-pointer \
	    -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)
fuzz: $(FUZZ_BINS)
fuzz-lf: $(patsubst tests/fuzz/%.c,build/fuzz-lf/%,$(FUZZ_SRCS))

bench: all tools $(BENCH_BINS)
	@BFS_BIN=$(abspath build) bash bench/run.sh

demo: deps all
	@BFS_BIN=$(abspath build) bash tests/lib/demo.sh

SRC    = common/*.c s3/*.c wal/*.c fs/*.c cli/*.c
BANNED = sprintf|vsprintf|strcpy|strcat|gets|strtok|atoi|atol|gmtime|localtime|strerror|system
lint:
	! grep -nE '#include "(wal|fs|cli)/' common/*.[ch] s3/*.[ch]
	! grep -nE '#include ("(fs|cli)/|<fuse)' wal/*.[ch]
	! grep -nE '\b($(BANNED)|pthread_cancel)\(' $(SRC)
	! grep -nE '\bexit\(' $(SRC) | grep -v '/main\.c:'
	! grep -nE '\bgetenv\(' $(SRC) | grep -v '/config\.c:'

# PREFIX (default /usr/local) and DESTDIR (staging root for packagers) are honoured.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(BUILD)/bottomlessfs $(BUILD)/bottomless-cli $(DESTDIR)$(PREFIX)/bin/
	install -m 644 docs/bottomlessfs.1 docs/bottomless-cli.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 cli/bottomless-cli.bash-completion $(DESTDIR)$(BASHCOMPDIR)/bottomless-cli
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/bottomlessfs $(DESTDIR)$(PREFIX)/bin/bottomless-cli
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/bottomlessfs.1 $(DESTDIR)$(PREFIX)/share/man/man1/bottomless-cli.1
	rm -f $(DESTDIR)$(BASHCOMPDIR)/bottomless-cli

clean:
	rm -rf build

.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)
