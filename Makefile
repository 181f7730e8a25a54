# mtd-agent — build, test, install.
#
#   make            build/mtd-agent and build/mtdctl
#   make deps       install build and test dependencies (apt-get)
#   make check-tree the shape of the tree: format, cycles, layers, private headers, prefixes
#   make check      deps, build, tree, unit, sanitizer unit, integration, sanitizer integration, e2e, fuzz smoke
#   make demo       the agent on the example policies, in namespaces of its own
#   make fresh-check  `make deps demo` and `make check` on a root without the packages
#   make bench      benchmarks (each prints a comparison measured in the same run)
#   make fuzz       each fuzz target for FUZZ_SECONDS (or FUZZ_RUNS executions)
#   make install    honours DESTDIR and PREFIX (and each *DIR below)
#   dpkg-buildpackage -us -uc -b   the Debian package (debian/, docs/packaging.md)
#   make format     clang-format every source

BUILD ?= build
VERSION := 0.1.0
PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/mtd
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
EXAMPLESDIR ?= $(DATADIR)/examples
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
# FUZZ_RUNS=N: `make fuzz` runs N executions per target instead of FUZZ_SECONDS;
# FUZZ_LOG_DIR=DIR keeps each target's log (tests/fuzz/README.md)
FUZZ_RUNS ?=
FUZZ_LOG_DIR ?=

CC ?= cc
PKGS := libnftnl libmnl libseccomp libcrypto libsystemd inih jansson libcap
# Asked of pkg-config at first use, not when make reads this file: in
# `make deps demo` the libraries exist only once deps has run. (Each is then
# kept, so pkg-config runs once per variable.)
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null))$(PKG_LIBS)
CURL_LIBS = $(eval CURL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null))$(CURL_LIBS)
CMOCKA_LIBS = $(eval CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null))$(CMOCKA_LIBS)

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
	-Wmissing-prototypes -Wstrict-prototypes
BASE_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARNINGS) $(PKG_CFLAGS) \
	-DMTD_SOURCE_DIR=\"$(CURDIR)\" -DMTD_DATADIR=\"$(DATADIR)\" \
	-DMTD_VERSION=\"$(VERSION)\"
OPT_CFLAGS ?= -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2
CFLAGS ?=
LDFLAGS ?=
ALL_CFLAGS = $(BASE_CFLAGS) $(OPT_CFLAGS) $(CFLAGS)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# Header dependencies from the compiler: touching a header rebuilds what
# includes it and nothing else.
DEP_FLAGS = -MMD -MP

# --- layers (docs/ARCHITECTURE.md) ---------------------------------------------
# Each folder is compiled with the include paths of itself and the layers it
# may use, nothing else: a file that includes a header of a layer above its
# own does not compile.
LAYER_common := common
LAYER_rotator := common rotator
LAYER_agent/policy := common agent/policy
LAYER_agent/audit := common agent/audit
LAYER_agent/snapshot := common agent/snapshot
LAYER_agent/quarantine := common agent/quarantine
LAYER_agent/control := common agent/audit agent/control
LAYER_agent/sandbox := common agent/policy agent/sandbox
LAYER_agent/rotation := common rotator agent/policy agent/rotation
LAYER_agent/fleet := common rotator agent/policy agent/snapshot agent/quarantine agent/sandbox \
	agent/rotation agent/fleet
LAYER_agent/cli := common rotator agent/policy agent/audit agent/snapshot agent/control agent/cli
LAYER_agent/daemon := common rotator agent/policy agent/audit agent/snapshot agent/quarantine \
	agent/control agent/sandbox agent/rotation agent/fleet agent/daemon
# client/ is mtd-client, a program of its own on common/ alone (libcrypto and
# libc: docs/clients.md).
LAYER_client := common client
LIB_LAYERS := common rotator agent/policy agent/audit agent/snapshot agent/quarantine \
	agent/control agent/sandbox agent/rotation agent/fleet
LAYERS := $(LIB_LAYERS) agent/cli agent/daemon client crowdsec
# crowdsec/: mtd-crowdsec, the bridge to a CrowdSec LAPI (docs/fleet.md), a
# program of its own on the control protocol (agent/control), with libcurl.
LAYER_crowdsec := common agent/audit agent/control crowdsec
# The names each folder may export (nm -g): its modules' names, so a name
# says where it lives (make check-tree). "x_" allows any name starting x_;
# "x" allows x itself and x_* (scripts/check-prefixes).
PREFIX_common := log_ json_bytes secret_file_ step_error_ metric_ schedule_ knock_
PREFIX_rotator := rotator_ nft_ ruleset_ delta_ elements_ egress_
PREFIX_agent/policy := policy_ syscall_
PREFIX_agent/audit := audit_
PREFIX_agent/snapshot := snapshot_
PREFIX_agent/quarantine := quarantine_
PREFIX_agent/control := control_ audit_show_
PREFIX_agent/sandbox := envelope_ cgroup_ seccomp_ netdev_ uid_range_ uid_ranges_ fd_graveyard_ sock_reset_
PREFIX_agent/rotation := rotation_ forwarding_ host_ports_ clock_trust_ decoy_blocks_ knock_guard_ knock_receiver_ knock_listener_
PREFIX_agent/fleet := fleet_ service_ instance_ response_ standby_ health_ drift_ address_pool_ \
	signal_tally_ drain_
PREFIX_agent/cli := mtdctl_ main
PREFIX_agent/daemon := agent_ metrics_ hooks_ main
PREFIX_client := client_ profile_ main
PREFIX_crowdsec := crowdsec_ lapi_ main
# Tests, tools, benchmarks and fuzz targets see every layer (white-box).
ALL_INCLUDES := $(addprefix -I,$(LAYER_agent/daemon) agent/cli crowdsec)
layer_includes = $(addprefix -I,$(or $(LAYER_$(patsubst %/,%,$(dir $(1)))),$(error $(1): no layer)))

# Programs: agent/daemon/ is the daemon, agent/cli/ the CLI.
DAEMON_SRCS := $(sort $(wildcard agent/daemon/*.c))
MTDCTL_SRCS := $(sort $(wildcard agent/cli/*.c))
CORE_SRCS := $(sort $(foreach l,$(filter-out rotator,$(LIB_LAYERS)),$(wildcard $(l)/*.c)))
ROTATOR_SRCS := $(sort $(wildcard rotator/*.c))
CLIENT_SRCS := $(sort $(wildcard client/*.c))
CROWDSEC_MAIN := crowdsec/mtd-crowdsec.c
CROWDSEC_SRCS := $(filter-out $(CROWDSEC_MAIN),$(sort $(wildcard crowdsec/*.c)))
ALL_SRCS := $(CORE_SRCS) $(ROTATOR_SRCS) $(DAEMON_SRCS) $(MTDCTL_SRCS) $(CLIENT_SRCS) \
	$(CROWDSEC_SRCS) $(CROWDSEC_MAIN)
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(sort $(wildcard tests/unit/test_*.c)))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
BENCH_SRCS := $(sort $(wildcard tests/bench/bench_*.c))
TEST_TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(sort $(wildcard tests/tools/*.c)))

.PHONY: all deps check check-tree unit san-unit integration san-integration test-tools e2e fuzz fuzz-smoke fuzz-seeds \
	bench demo install uninstall format clean fresh-check fixture-keys

all: $(BUILD)/mtd-agent $(BUILD)/mtdctl $(BUILD)/mtd-client $(BUILD)/mtd-crowdsec

# With deps among the goals (`make deps demo`), nothing compiles before it has
# installed the libraries, also under -j.
DEPS_FIRST := $(filter deps,$(MAKECMDGOALS))

# --- objects -----------------------------------------------------------------
$(BUILD)/obj/%.o: %.c | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEP_FLAGS) $(call layer_includes,$<) -c $< -o $@

$(BUILD)/san/%.o: %.c | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 -g $(SAN_FLAGS) $(CFLAGS) $(DEP_FLAGS) $(call layer_includes,$<) \
		-c $< -o $@

$(BUILD)/libmtd.a: $(patsubst %.c,$(BUILD)/obj/%.o,$(CORE_SRCS))
	@rm -f $@
	ar rcs $@ $^

# The rotator's errors are struct step_error: the library carries the one
# common object it uses, so a program links librotator.a alone (rotator-driver).
# Linked after libmtd.a, its copy is never pulled twice.
ROTATOR_COMMON_SRCS := common/step_error.c

$(BUILD)/librotator.a: $(patsubst %.c,$(BUILD)/obj/%.o,$(ROTATOR_SRCS) $(ROTATOR_COMMON_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/san/libmtd.a: $(patsubst %.c,$(BUILD)/san/%.o,$(CORE_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/san/librotator.a: $(patsubst %.c,$(BUILD)/san/%.o,$(ROTATOR_SRCS) $(ROTATOR_COMMON_SRCS))
	@rm -f $@
	ar rcs $@ $^

LIBS = $(BUILD)/libmtd.a $(BUILD)/librotator.a
SAN_LIBS = $(BUILD)/san/libmtd.a $(BUILD)/san/librotator.a

$(BUILD)/mtd-agent: $(patsubst %.c,$(BUILD)/obj/%.o,$(DAEMON_SRCS)) $(LIBS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/mtdctl: $(patsubst %.c,$(BUILD)/obj/%.o,$(MTDCTL_SRCS)) $(LIBS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# mtd-client links the few common objects it uses and libcrypto, nothing else
# (tests/integration/mtd_client_vectors.sh checks its ldd).
CLIENT_COMMON_SRCS := common/schedule.c common/knock.c common/secret_file.c
CLIENT_LIBS = $(eval CLIENT_LIBS := $(shell pkg-config --libs libcrypto 2>/dev/null))$(CLIENT_LIBS)

$(BUILD)/mtd-client: $(patsubst %.c,$(BUILD)/obj/%.o,$(CLIENT_SRCS) $(CLIENT_COMMON_SRCS))
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(CLIENT_LIBS)

# The bridge's own objects (all but its main) in an archive the unit tests link too.
$(BUILD)/libcrowdsec.a: $(patsubst %.c,$(BUILD)/obj/%.o,$(CROWDSEC_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/san/libcrowdsec.a: $(patsubst %.c,$(BUILD)/san/%.o,$(CROWDSEC_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mtd-crowdsec: $(BUILD)/obj/$(CROWDSEC_MAIN:.c=.o) $(BUILD)/libcrowdsec.a $(LIBS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CURL_LIBS)

# git keeps no mode bit but x, so a clone's example and test keys are 0644 and
# the agent refuses them (a secret is owner-only, common/secret_file.h): every
# suite and the demo make them 0600 before anything reads them.
KEY_FIXTURES := $(wildcard policies/examples/keys/*.key tests/policy/keys/*.key)
fixture-keys:
	@chmod 0600 $(KEY_FIXTURES)

# --- unit tests (cmocka), plain and sanitized --------------------------------
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcrowdsec.a $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEP_FLAGS) $(ALL_INCLUDES) -Itests/unit -o $@ $< \
		$(BUILD)/libcrowdsec.a $(LIBS) $(PKG_LIBS) $(CMOCKA_LIBS)

$(BUILD)/san/tests/%: tests/unit/%.c $(BUILD)/san/libcrowdsec.a $(SAN_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 -g $(SAN_FLAGS) $(CFLAGS) $(DEP_FLAGS) $(ALL_INCLUDES) -Itests/unit \
		-o $@ $< $(BUILD)/san/libcrowdsec.a $(SAN_LIBS) $(PKG_LIBS) $(CMOCKA_LIBS)

# test_client_profile: the profile parser of client/ (not in libmtd.a)
$(BUILD)/tests/test_client_profile: tests/unit/test_client_profile.c $(BUILD)/obj/client/profile.o \
		$(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEP_FLAGS) $(ALL_INCLUDES) -Iclient -Itests/unit -o $@ $< \
		$(BUILD)/obj/client/profile.o $(LIBS) $(PKG_LIBS) $(CMOCKA_LIBS)

$(BUILD)/san/tests/test_client_profile: tests/unit/test_client_profile.c \
		$(BUILD)/san/client/profile.o $(SAN_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 -g $(SAN_FLAGS) $(CFLAGS) $(DEP_FLAGS) $(ALL_INCLUDES) -Iclient \
		-Itests/unit -o $@ $< $(BUILD)/san/client/profile.o $(SAN_LIBS) $(PKG_LIBS) \
		$(CMOCKA_LIBS)

unit: $(addprefix $(BUILD)/tests/,$(UNIT_TESTS)) fixture-keys
	@tests/run-unit $(BUILD)/tests $(UNIT_TESTS)

san-unit: $(addprefix $(BUILD)/san/tests/,$(UNIT_TESTS)) fixture-keys
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		tests/run-unit $(BUILD)/san/tests $(UNIT_TESTS)

# --- integration and end-to-end (root, real kernel, own namespaces) ---------
# Small programs the network tests drive (tests/tools/*.c).
$(BUILD)/tools/%: tests/tools/%.c $(LIBS) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEP_FLAGS) $(ALL_INCLUDES) -o $@ $< $(LIBS) $(PKG_LIBS)

integration: all $(TEST_TOOLS) fixture-keys
	@BUILD=$(BUILD) tests/run-scripts integration tests/integration

e2e: all $(TEST_TOOLS) fixture-keys
	@BUILD=$(BUILD) tests/run-scripts e2e tests/e2e

test-tools: $(TEST_TOOLS)

# The daemon, the CLI and the test tools built with ASan + UBSan, driven by the
# integration tests (shorter runs; valgrind's test skips itself): the paths
# only a real kernel reaches (netlink replies, NFLOG, instances) under the
# sanitizers too.
SAN_BIN := $(BUILD)/san-bin
# Not run again under the sanitizers, so that `make check` stays near 20
# minutes: the two that drive only the rotator library through its test
# driver (the agent's runs drive the same code under ASan: response,
# envelope, decoy_blocking); rotation (its 30 boundaries and 15 SIGKILLs are
# the plain run's; decoy_blocking and metrics cross boundaries under ASan);
# quarantine_large (size, not paths: quarantine_drift runs); examples (real
# daemons; the agent's paths are response's); manpage_numbers (the CLI's
# parser, which fuzz_policy and san-unit cover).
SAN_INTEGRATION_SKIP := rotator_nft rotator_instance_fw rotation quarantine_large examples \
	manpage_numbers
san-integration: fixture-keys
	@$(MAKE) --no-print-directory BUILD=$(SAN_BIN) OPT_CFLAGS="-O1 -g $(SAN_FLAGS)" \
		LDFLAGS="$(SAN_FLAGS)" all test-tools >/dev/null
	@BUILD=$(SAN_BIN) MTD_TEST_SANITIZED="$(SAN_FLAGS)" \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		MTD_TEST_BOUNDARIES=3 MTD_TEST_KILLS=3 MTD_TEST_REPLACEMENTS=10 MTD_TEST_QUARANTINE_DIRS=8000 \
		MTD_TEST_SKIP="$(SAN_INTEGRATION_SKIP)" tests/run-scripts san-integration tests/integration

# --- fuzzing (clang libFuzzer) -----------------------------------------------
FUZZ_CC ?= clang
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -g -O1
# The sources are compiled once for every target (instrumented, not linked
# with the fuzzer's main), into one archive per layer; each target links its
# own entry point with the layers it needs, and nothing else, given upper
# layer first so that the linker refuses a use the layers do not allow. The
# target sees the include paths of those layers only.
FUZZ_OBJ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -g -O1
FUZZ_LAYERS_fuzz_audit_record := common agent/audit
FUZZ_LAYERS_fuzz_conntrack := common rotator
FUZZ_LAYERS_fuzz_control := common agent/audit agent/control
FUZZ_LAYERS_fuzz_manifest := common agent/snapshot
FUZZ_LAYERS_fuzz_nflog := common rotator
FUZZ_LAYERS_fuzz_policy := common agent/policy
FUZZ_LAYERS_fuzz_seccomp_notify := common agent/audit agent/sandbox
FUZZ_LAYERS_fuzz_sock_reset := common agent/sandbox
reverse = $(if $(1),$(call reverse,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
fuzz_lib = $(BUILD)/fuzzobj/lib$(subst /,-,$(1)).a
fuzz_libs = $(foreach l,$(call reverse,$(FUZZ_LAYERS_$(1))),$(call fuzz_lib,$(l)))

$(BUILD)/fuzzobj/%.o: %.c | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(BASE_CFLAGS) $(FUZZ_OBJ_FLAGS) $(DEP_FLAGS) $(call layer_includes,$<) -c $< -o $@

define fuzz_layer_lib
$(call fuzz_lib,$(1)): $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(sort $(wildcard $(1)/*.c)))
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach l,$(LIB_LAYERS),$(eval $(call fuzz_layer_lib,$(l))))

define fuzz_target
ifeq ($(FUZZ_LAYERS_$(1)),)
$(BUILD)/fuzz/$(1):
	@echo "tests/fuzz/$(1).c: the Makefile has no FUZZ_LAYERS_$(1) (the layers it links)" >&2
	@exit 1
else
$(BUILD)/fuzz/$(1): tests/fuzz/$(1).c $(call fuzz_libs,$(1))
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(BASE_CFLAGS) -Wno-missing-prototypes $$(FUZZ_FLAGS) $$(DEP_FLAGS) \
		$(addprefix -I,$(FUZZ_LAYERS_$(1))) -o $$@ $$< $(call fuzz_libs,$(1)) $$(PKG_LIBS)
endif
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_target,$(t))))

fuzz: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS)) fixture-keys
	@FUZZ_RUNS="$(FUZZ_RUNS)" FUZZ_LOG_DIR="$(FUZZ_LOG_DIR)" \
		tests/run-fuzz $(BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The smoke runs a target per core at once (they share nothing but the CPU).
fuzz-smoke: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS)) fixture-keys
	@FUZZ_RUNS= FUZZ_LOG_DIR= FUZZ_JOBS=$$(nproc) tests/run-fuzz $(BUILD)/fuzz $(FUZZ_SMOKE_SECONDS) \
		$(FUZZ_TARGETS)

# Regenerate the netlink and seccomp seed corpora (committed; see gen_seeds.c).
fuzz-seeds: tests/fuzz/gen_seeds.c
	@mkdir -p $(BUILD)
	$(CC) $(BASE_CFLAGS) $(ALL_INCLUDES) -O1 -o $(BUILD)/gen_seeds $< $(PKG_LIBS)
	$(BUILD)/gen_seeds tests/fuzz/corpus

# --- benchmarks ----------------------------------------------------------------
$(BUILD)/bench/%: tests/bench/%.c $(LIBS) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEP_FLAGS) $(ALL_INCLUDES) -Itests/bench -o $@ $< $(LIBS) $(PKG_LIBS)

bench: all $(TEST_TOOLS) $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
	@BUILD=$(BUILD) tests/run-bench

# --- the shape of the tree (scripts/check-tree) --------------------------------
# The layer table as the objects are compiled (layer_includes, -I dropped), and
# the prefix table, each "folder: words; ..." for the scripts.
LAYER_TABLE = $(foreach l,$(LAYERS),$(l): $(patsubst -I%,%,$(call layer_includes,$(l)/probe.c));)
PREFIX_TABLE = $(foreach l,$(LAYERS),$(l): $(PREFIX_$(l));)
check-tree: $(patsubst %.c,$(BUILD)/obj/%.o,$(ALL_SRCS))
	@BUILD=$(BUILD) CC="$(CC)" PROBE_CFLAGS="$(ALL_CFLAGS)" \
		LAYER_TABLE="$(LAYER_TABLE)" PREFIX_TABLE="$(PREFIX_TABLE)" scripts/check-tree $^

# --- the two commands of the README -------------------------------------------
deps:
	@scripts/deps

check: deps
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@BUILD=$(BUILD) tests/check

demo: all $(TEST_TOOLS) fixture-keys
	@BUILD=$(BUILD) scripts/demo

# Both commands above, each as one invocation, on an overlay of / with the
# project's packages purged and a clean clone of HEAD (root, ~15 min).
fresh-check:
	@scripts/fresh-check

# --- install -------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(TMPFILESDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(EXAMPLESDIR) $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(DATADIR)/hooks
	install -m 0755 $(BUILD)/mtd-agent $(DESTDIR)$(SBINDIR)/mtd-agent
	install -m 0755 $(BUILD)/mtdctl $(DESTDIR)$(BINDIR)/mtdctl
	install -m 0755 $(BUILD)/mtd-client $(DESTDIR)$(BINDIR)/mtd-client
	install -m 0644 docs/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0755 $(BUILD)/mtd-crowdsec $(DESTDIR)$(SBINDIR)/mtd-crowdsec
	install -m 0644 docs/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 docs/*.8 $(DESTDIR)$(MANDIR)/man8/
	sed 's|@SBINDIR@|$(SBINDIR)|g; s|@BINDIR@|$(BINDIR)|g' systemd/mtd-agent.service.in \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/mtd-agent.service
	sed 's|@SBINDIR@|$(SBINDIR)|g; s|@DATADIR@|$(DATADIR)|g' systemd/mtd-crowdsec.service.in \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/mtd-crowdsec.service
	install -m 0644 systemd/mtd-agent.tmpfiles $(DESTDIR)$(TMPFILESDIR)/mtd-agent.conf
	install -m 0644 systemd/mtd-agent.sysusers $(DESTDIR)$(SYSUSERSDIR)/mtd-agent.conf
	install -m 0644 policies/examples/*.policy $(DESTDIR)$(EXAMPLESDIR)/
	install -m 0644 contrib/bash-completion/mtdctl $(DESTDIR)$(BASHCOMPDIR)/mtdctl
	install -m 0755 examples/hooks/webhook $(DESTDIR)$(DATADIR)/hooks/

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mtd-agent $(DESTDIR)$(BINDIR)/mtdctl $(DESTDIR)$(BINDIR)/mtd-client \
		$(DESTDIR)$(SBINDIR)/mtd-crowdsec $(DESTDIR)$(SYSTEMDUNITDIR)/mtd-crowdsec.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/mtd-agent.service \
		$(DESTDIR)$(TMPFILESDIR)/mtd-agent.conf $(DESTDIR)$(SYSUSERSDIR)/mtd-agent.conf \
		$(DESTDIR)$(BASHCOMPDIR)/mtdctl
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(wildcard docs/*.1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(wildcard docs/*.5))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(wildcard docs/*.8)))
	rm -rf $(DESTDIR)$(EXAMPLESDIR) $(DESTDIR)$(DATADIR)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-*

# what the compiler found each object and program to include (DEP_FLAGS)
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
