# tdpmmu top-level entry points.  See README.md.
#   make deps   install missing build dependencies (apt-get, as root)
#   make demo   deps + release build + run `tdpmmu demo`
#   make check  deps + Debug ASan+UBSan build and TSan build, every test
#               through CTest in both; the controlled-scheduler build
#               (clean controlled tortures in every mode, every bug
#               injection caught with a fixed seed); the spin models
#   make check-asan / check-tsan / check-sched / check-models   one of them
#   make check-inject   the injections free-running (on demand: whether
#               the machine's interleaving meets a bug in 30 s is luck)
#   make build  release build only
#   make bench-report   run the benchmarks into docs/benchmarks.md (8-22 min;
#               installs gnuplot-nox, linux-perf and jq via bench-deps)

DEBS := cmake ninja-build pkg-config liburcu-dev libcmocka-dev clang gcc spin
# Only `make bench-report` needs these (bench-deps).
BENCH_DEBS := gnuplot-nox linux-perf jq
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps bench-deps build demo check check-asan check-tsan check-sched \
	check-models check-inject torture-report \
	bench-report clean format

all: build

deps bench-deps:
	@missing=""; \
	for p in $(if $(filter bench-deps,$@),$(BENCH_DEBS),$(DEBS)); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "$@: all present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "$@: installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "$@: missing$$missing; run: sudo apt-get install -y$$missing"; exit 1; fi

$(BUILD)/release/build.ninja:
	cmake -S . -B $(BUILD)/release -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/release/build.ninja
	cmake --build $(BUILD)/release -j $(JOBS)

demo: build
	$(BUILD)/release/tdpmmu demo

$(BUILD)/asan/build.ninja:
	cmake -S . -B $(BUILD)/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DTDP_SANITIZE=address,undefined -DTDP_WERROR=ON

check-asan: deps $(BUILD)/asan/build.ninja
	cmake --build $(BUILD)/asan -j $(JOBS)
	cd $(BUILD)/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -E '^torture_inject_'

# liburcu is not built with TSan; see tests/tsan.supp and src/rcu.h.
# The second runs with the legacy engine (*_legacy: the public-API suites
# and a migration) are left to the ASan build: the legacy engine's own
# concurrency (the lockless reverse-map walks) is raced under TSan by
# test_legacy, test_rmap and torture_clean_legacy_6s, and the 2-core
# budget of make check (12 min) has no room for running them twice.
# Likewise the _process runs of the suites: the process backend's own
# threads are raced under TSan by test_process, example_emulator and
# torture_clean_process_6s; and of the migrations between processes,
# TSan runs the post-copy one (the destination's faults wait for the
# stream's thread, the source serves requests beside its push), the
# others (single-threaded stream code) run under ASan.
# Both sanitizer suites run two tests at a time (JOBS): most tests leave a
# core idle part of the time, and none measures speed (their waits for
# another thread are bounds on a hang, of a minute).
$(BUILD)/tsan/build.ninja:
	cmake -S . -B $(BUILD)/tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DTDP_SANITIZE=thread -DTDP_INJECT=OFF -DTDP_WERROR=ON

check-tsan: deps $(BUILD)/tsan/build.ninja
	cmake --build $(BUILD)/tsan -j $(JOBS)
	cd $(BUILD)/tsan && \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure -j $(JOBS) \
	    -E '_(legacy|process)$$|^migrate_(two_process_precopy|two_process_postcopy_process|stream_fuzz)$$'

# The controlled scheduler (src/sched/sched.h): clean runs in every mode
# under both strategies and every bug injection with a fixed seed, each
# run twice and required to replay (tests/sched.cmake).  Deterministic:
# the same outcome on every run and machine.  The runs are independent
# single-threaded processes, so two run at once.
$(BUILD)/sched/build.ninja:
	cmake -S . -B $(BUILD)/sched -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DTDP_SCHED=ON -DTDP_INJECT=ON -DTDP_WERROR=ON

check-sched: deps $(BUILD)/sched/build.ninja
	cmake --build $(BUILD)/sched -j $(JOBS)
	cd $(BUILD)/sched && ctest --output-on-failure -j $(JOBS)

# The spin models of the root lifecycle and the rmap lock bit, and their
# buggy variants (models/check.sh).
check-models: deps
	models/check.sh

# The torture runs with a bug put back, free-running, each of which must be
# caught within 30 s, in a Debug build without sanitizers.  On demand:
# whether the machine's interleaving meets a race in 30 s is luck, so this
# is a measurement, not a gate (make check runs the injections under the
# controlled scheduler instead).
check-inject: deps $(BUILD)/inject/build.ninja
	cmake --build $(BUILD)/inject -j $(JOBS)
	cd $(BUILD)/inject && ctest --output-on-failure -j 1 -R '^torture_inject_'

check: check-asan check-tsan check-sched check-models

# Measure every bug injection over 20 seeds, controlled and free-running,
# into docs/torture.md (about an hour; SEEDS=n, FREE=0 for the controlled
# half only); INJ="name ..." measures only those and keeps the other rows.
$(BUILD)/inject/build.ninja:
	cmake -S . -B $(BUILD)/inject -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DTDP_INJECT=ON -DTDP_WERROR=ON

torture-report: deps $(BUILD)/sched/build.ninja $(BUILD)/inject/build.ninja
	cmake --build $(BUILD)/sched -j $(JOBS)
	cmake --build $(BUILD)/inject -j $(JOBS)
	scripts/torture-report.sh $(BUILD)/sched $(BUILD)/inject $(INJ)

# Benchmarks on the Release build (TDP_INJECT is off in Release) into
# docs/benchmarks.md and docs/img/*.png; 8-22 minutes on 2 cores
# (scripts/bench-report.sh says where each figure came from).
bench-report: build bench-deps
	scripts/bench-report.sh $(BUILD)/release

format:
	clang-format -i include/*.h src/*.[ch] src/host/*.[ch] tools/tdpmmu/*.[ch] tools/common/*.h tests/*.[ch]

clean:
	rm -rf $(BUILD)
