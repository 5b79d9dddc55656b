# tdpmmu top-level entry points.  See README.md.
#   make deps   install missing build dependencies (apt-get, as root)
#   make demo   deps + release build + run `tdpmmu demo`
#   make check  deps + Debug ASan+UBSan build and TSan build, every test
#               through CTest in both, and the bug-injection tortures in a
#               Debug build
#   make check-asan / make check-tsan   one of the two
#   make build  release build only
#   make bench-report   run the benchmarks into docs/benchmarks.md (~5 min;
#               installs gnuplot-nox, linux-perf and jq via bench-deps)

DEBS := cmake ninja-build pkg-config liburcu-dev libcmocka-dev clang gcc
# Only `make bench-report` needs these (bench-deps).
BENCH_DEBS := gnuplot-nox linux-perf jq
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps bench-deps build demo check check-asan check-tsan check-inject torture-report \
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
	  ctest --output-on-failure -j 1 -E '^torture_inject_'

# liburcu is not built with TSan; see tests/tsan.supp and src/rcu.h.
# The second runs with the legacy engine (*_legacy: the public-API suites
# and a migration) are left to the ASan build: the legacy engine's own
# concurrency (the lockless reverse-map walks) is raced under TSan by
# test_legacy, test_rmap and torture_clean_legacy_20s, and the 2-core
# budget of make check (15 min) has no room for running them twice.
$(BUILD)/tsan/build.ninja:
	cmake -S . -B $(BUILD)/tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DTDP_SANITIZE=thread -DTDP_INJECT=OFF -DTDP_WERROR=ON

check-tsan: deps $(BUILD)/tsan/build.ninja
	cmake --build $(BUILD)/tsan -j $(JOBS)
	cd $(BUILD)/tsan && \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure -j 1 -E '_legacy$$'

# The torture runs with a bug put back, each of which must be caught within
# 30 s, run in a Debug build without sanitizers: the bugs are races, and at
# sanitizer speed the torture meets them several times more slowly.  (The
# clean tortures and the deterministic injection scenarios, test_inject,
# run under both sanitizers above.)
check-inject: deps $(BUILD)/inject/build.ninja
	cmake --build $(BUILD)/inject -j $(JOBS)
	cd $(BUILD)/inject && ctest --output-on-failure -j 1 -R '^torture_inject_'

check: check-asan check-tsan check-inject

# Measure every bug injection over 5 seeds into docs/torture.md (~15 min);
# INJ="name ..." measures only those and keeps the table's other rows.
$(BUILD)/inject/build.ninja:
	cmake -S . -B $(BUILD)/inject -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DTDP_INJECT=ON -DTDP_WERROR=ON

torture-report: deps $(BUILD)/inject/build.ninja
	cmake --build $(BUILD)/inject -j $(JOBS)
	scripts/torture-report.sh $(BUILD)/inject $(INJ)

# Benchmarks on the Release build (TDP_INJECT is off in Release) into
# docs/benchmarks.md and docs/img/*.png; under 10 minutes on 2 cores.
bench-report: build bench-deps
	scripts/bench-report.sh $(BUILD)/release

format:
	clang-format -i include/*.h src/*.[ch] src/host/*.[ch] tools/tdpmmu/*.[ch] tests/*.[ch]

clean:
	rm -rf $(BUILD)
