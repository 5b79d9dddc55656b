# Tests of the command-line tool and of the documentation.

# The README must quote examples/embed.c verbatim.
add_test(NAME readme_example_in_sync
  COMMAND ${CMAKE_COMMAND} -DREADME=${PROJECT_SOURCE_DIR}/README.md
          -DEXAMPLE=${PROJECT_SOURCE_DIR}/examples/embed.c
          -P ${CMAKE_CURRENT_SOURCE_DIR}/readme_check.cmake)

# A short demo run: must verify every byte.
if(TARGET tdpmmu_cli)
  add_test(NAME cli_demo_short COMMAND tdpmmu_cli demo --mem 64M --seconds 2)
  set_tests_properties(cli_demo_short PROPERTIES
    PASS_REGULAR_EXPRESSION "all [0-9]+ bytes verified" TIMEOUT 300)
  add_test(NAME cli_unknown_command COMMAND tdpmmu_cli frobnicate)
  # the controlled scheduler exists only in a TDP_SCHED build
  add_test(NAME cli_torture_sched_unavailable
           COMMAND tdpmmu_cli torture --sched random --quiet)
  set_tests_properties(cli_torture_sched_unavailable PROPERTIES
    PASS_REGULAR_EXPRESSION "needs a build configured with -DTDP_SCHED=ON")
  set_tests_properties(cli_unknown_command PROPERTIES WILL_FAIL TRUE)

  # Pre-copy live migration, a few seconds in each dirty-logging mode
  # (the bandwidth limit makes the rounds long enough to dirty pages):
  # the destination must match the source and the writers' model.
  foreach(mode default dbit manual)
    if(mode STREQUAL "default")
      set(flag "")
    else()
      set(flag "--${mode}")
    endif()
    add_test(NAME cli_migrate_${mode}
             COMMAND tdpmmu_cli migrate --mem 64M --bandwidth 32M ${flag})
    set_tests_properties(cli_migrate_${mode} PROPERTIES
      PASS_REGULAR_EXPRESSION "verified: all [0-9]+ pages"
      FAIL_REGULAR_EXPRESSION "MISMATCH|FAILED" TIMEOUT 300)
  endforeach()
  # dirty rings (collected, reset, then copied each round), fed by
  # write-protect faults or by PML; writers meet the soft limit
  add_test(NAME cli_migrate_ring
           COMMAND tdpmmu_cli migrate --mem 64M --bandwidth 32M --ring)
  add_test(NAME cli_migrate_ring_pml
           COMMAND tdpmmu_cli migrate --mem 64M --bandwidth 32M --ring
                   --dbit)
  set_tests_properties(cli_migrate_ring cli_migrate_ring_pml PROPERTIES
    PASS_REGULAR_EXPRESSION "verified: all [0-9]+ pages"
    FAIL_REGULAR_EXPRESSION "MISMATCH|FAILED" TIMEOUT 300)
  add_test(NAME cli_migrate_bad_ring
           COMMAND tdpmmu_cli migrate --ring --manual)
  add_test(NAME cli_migrate_bad_pml COMMAND tdpmmu_cli migrate --pml)
  set_tests_properties(cli_migrate_bad_ring cli_migrate_bad_pml PROPERTIES
    WILL_FAIL TRUE)
  add_test(NAME cli_migrate_legacy
           COMMAND tdpmmu_cli migrate --mem 64M --bandwidth 32M
                   --engine legacy)
  set_tests_properties(cli_migrate_legacy PROPERTIES
    PASS_REGULAR_EXPRESSION "verified: all [0-9]+ pages"
    FAIL_REGULAR_EXPRESSION "MISMATCH|FAILED" TIMEOUT 300)
  add_test(NAME cli_migrate_bad_option COMMAND tdpmmu_cli migrate --rate fast)
  set_tests_properties(cli_migrate_bad_option PROPERTIES WILL_FAIL TRUE)
endif()

# The free-running torture, clean, in every mode: under the sanitizers of
# the build (ASan+UBSan: use after free under real concurrency; TSan: the
# orderings the controlled scheduler cannot see, since it runs one thread
# at a time).  The controlled build (tests/sched.cmake) runs every mode
# and every injection deterministically; these stay short (12 s and 6 s:
# the 2-core budget of make check runs each under two sanitizers).  In test builds
# also one run per injected historical bug, free-running (make
# check-inject; tests/torture_inject.cmake).
if(TARGET tdpmmu_cli)
  add_test(NAME torture_clean_12s
           COMMAND tdpmmu_cli torture --duration 12 --vcpus 2 --seed 1 --quiet)
  set_tests_properties(torture_clean_12s PROPERTIES
    PASS_REGULAR_EXPRESSION "torture: PASSED" TIMEOUT 600)
  # the other dirty-logging modes (the 12 s run uses write protection;
  # dbit is PML-fed, ring and ring-pml fill dirty rings that the tracker
  # harvests and resets),
  # the legacy engine (reverse maps, lockless rmap aging) and a
  # confidential VM (private memslots, conversions, hole punches, mirror
  # roots and the external table: I11, I13), the process backend and NX
  # huge pages (fetches, recovery passes)
  foreach(mode "dbit:--log dbit" "wp-lazy:--log wp-lazy" "off:--log off"
               "ring:--log ring" "ring-pml:--log ring-pml"
               "legacy:--engine legacy" "confidential:--confidential"
               "process:--host process" "nx:--nx")
    string(REPLACE ":" ";" m "${mode}")
    list(GET m 0 name)
    list(GET m 1 opts)
    separate_arguments(opts UNIX_COMMAND "${opts}")
    add_test(NAME torture_clean_${name}_6s
             COMMAND tdpmmu_cli torture --duration 6 --vcpus 2 --seed 2
                     ${opts} --quiet)
    set_tests_properties(torture_clean_${name}_6s PROPERTIES
      PASS_REGULAR_EXPRESSION "torture: PASSED" TIMEOUT 300
      SKIP_REGULAR_EXPRESSION "torture: SKIPPED")
  endforeach()
  # live migration between two processes over loopback TCP, verified
  # byte for byte on both sides (tests/migrate_net.sh)
  add_test(NAME migrate_two_process_precopy
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/migrate_net.sh
                   $<TARGET_FILE:tdpmmu_cli>
                   ${CMAKE_CURRENT_BINARY_DIR}/migrate_precopy -- --mem 16M)
  set_tests_properties(migrate_two_process_precopy PROPERTIES TIMEOUT 300)
  # post-copy right after the bulk copy (many pages left to fault in),
  # into a destination on the process backend (its missing pages come
  # through tdp_host_set_missing; a skip where userfaultfd is missing)
  add_test(NAME migrate_two_process_postcopy
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/migrate_net.sh
                   $<TARGET_FILE:tdpmmu_cli>
                   ${CMAKE_CURRENT_BINARY_DIR}/migrate_postcopy
                   -- --mem 16M --rate 100 --postcopy 0)
  set_tests_properties(migrate_two_process_postcopy PROPERTIES TIMEOUT 300)
  add_test(NAME migrate_two_process_postcopy_process
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/migrate_net.sh
                   $<TARGET_FILE:tdpmmu_cli>
                   ${CMAKE_CURRENT_BINARY_DIR}/migrate_postcopy_process
                   --host process -- --mem 16M --rate 100 --postcopy 1)
  set_tests_properties(migrate_two_process_postcopy_process PROPERTIES
    TIMEOUT 300 SKIP_RETURN_CODE 77)
  # a recorded stream: replayed, then 200 mutations of it, every one
  # refused (the destination never crashes nor accepts wrong memory)
  add_test(NAME migrate_stream_fuzz
           COMMAND sh -c "$0 migrate --mem 2M --rate 100 --record $1 && $0 migrate --replay $1 && $0 migrate --fuzz $1 --iterations 200"
                   $<TARGET_FILE:tdpmmu_cli>
                   ${CMAKE_CURRENT_BINARY_DIR}/migrate_fuzz.stream)
  set_tests_properties(migrate_stream_fuzz PROPERTIES TIMEOUT 300
    PASS_REGULAR_EXPRESSION "fuzz: all 200 corrupt streams refused")
  add_test(NAME cli_migrate_exclusive
           COMMAND tdpmmu_cli migrate --to 127.0.0.1:1 --listen 127.0.0.1:0)
  set_tests_properties(cli_migrate_exclusive PROPERTIES
    PASS_REGULAR_EXPRESSION "exclude each other")
  add_test(NAME cli_migrate_bad_listen
           COMMAND tdpmmu_cli migrate --listen nowhere)
  set_tests_properties(cli_migrate_bad_listen PROPERTIES
    PASS_REGULAR_EXPRESSION "bad --listen 'nowhere'")
  # --host: a bad name, and the process backend under --sched
  add_test(NAME cli_torture_bad_host
           COMMAND tdpmmu_cli torture --host nowhere --quiet)
  set_tests_properties(cli_torture_bad_host PROPERTIES
    PASS_REGULAR_EXPRESSION "--host must be pool or process")
  add_test(NAME cli_torture_process_sched
           COMMAND tdpmmu_cli torture --host process --sched random --quiet)
  set_tests_properties(cli_torture_process_sched PROPERTIES
    PASS_REGULAR_EXPRESSION "cannot run under --sched|needs a build configured")
  if(TDP_INJECT)
    # tests/injections.list: every injection, with the torture options
    # that run its code path
    file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/injections.list inj_lines
         REGEX "^[a-z]")
    foreach(line ${inj_lines})
      string(REPLACE " " ";" words "${line}")
      list(GET words 0 inj)
      list(REMOVE_AT words 0)
      string(REPLACE ";" " " inj_args "${words}")
      add_test(NAME torture_inject_${inj}
               COMMAND ${CMAKE_COMMAND} -DCLI=$<TARGET_FILE:tdpmmu_cli>
                       -DINJ=${inj} "-DARGS=${inj_args}"
                       -P ${CMAKE_CURRENT_SOURCE_DIR}/torture_inject.cmake)
      set_tests_properties(torture_inject_${inj} PROPERTIES TIMEOUT 150)
    endforeach()
  endif()
endif()

# `tdpmmu bench`: a few seconds each with small memory; every subcommand
# with --json must verify its data and report its phases and percentiles.
if(TARGET tdpmmu_cli)
  set(_bench_keys "\"result\":\"pass\".*\"phases\":.*\"ns_per_op\":.*\"latency_ns\":.*\"p50\":.*\"p99\":.*\"p999\":.*\"max\":")
  add_test(NAME cli_bench_populate
           COMMAND tdpmmu_cli bench populate -v 2 -b 8M -i 2 --json)
  add_test(NAME cli_bench_populate_compare
           COMMAND tdpmmu_cli bench populate -v 2 -b 8M -s 2m -w 50 -a
                   --baseline exclusive,floor --compare --json)
  add_test(NAME cli_bench_access
           COMMAND tdpmmu_cli bench access -v 2 -b 8M -o -a --json)
  add_test(NAME cli_bench_memslot
           COMMAND tdpmmu_cli bench memslot -v 2 -b 8M -x 8 -i 2 --json)
  add_test(NAME cli_bench_mmu_stress
           COMMAND tdpmmu_cli bench mmu-stress -v 2 -b 8M -x 2 --json)
  add_test(NAME cli_bench_translate
           COMMAND tdpmmu_cli bench translate -b 8M -i 5 --baseline floor
                   --compare --json)
  # dirty-log in both modes (and manual protect with several slots and
  # huge folios): every written page must be reported, or it exits 1
  add_test(NAME cli_bench_dirty_log_wp
           COMMAND tdpmmu_cli bench dirty-log -v 2 -b 8M -i 3
                   --baseline nofast,nosplit --compare --json)
  add_test(NAME cli_bench_dirty_log_dbit
           COMMAND tdpmmu_cli bench dirty-log -v 2 -b 8M -i 3 -m dbit --json)
  add_test(NAME cli_bench_dirty_log_manual
           COMMAND tdpmmu_cli bench dirty-log -v 2 -b 8M -i 2 -M -x 3 -s 2m
                   -w 50 --json)
  # the aging phases, lockless and locked
  add_test(NAME cli_bench_access_aging
           COMMAND tdpmmu_cli bench access -v 2 -b 8M
                   --baseline locked-aging --compare --json)
  # aging while the vCPUs keep faulting, in the legacy engine with lockless
  # and locked reverse-map aging (seed 002)
  add_test(NAME cli_bench_access_legacy_fault
           COMMAND tdpmmu_cli bench access -v 2 -b 8M
                   --baseline legacy,legacy-locked-aging --compare --json)
  add_test(NAME cli_bench_fast_zap
           COMMAND tdpmmu_cli bench fast-zap -v 2 -b 64M -s 2m -i 3 --json)
  add_test(NAME cli_bench_dirty_log_ring
           COMMAND tdpmmu_cli bench dirty-log -v 2 -b 8M -i 3 --ring --json)
  add_test(NAME cli_bench_dirty_log_ring_pml
           COMMAND tdpmmu_cli bench dirty-log -v 2 -b 8M -i 3 --ring -m pml
                   --json)
  add_test(NAME cli_bench_dirty_harvest
           COMMAND tdpmmu_cli bench dirty-harvest -v 1 -b 16M -i 3
                   --baseline dbit,pml,ring,ring-pml --compare --json)
  add_test(NAME cli_bench_dirty_log_bad_ring
           COMMAND tdpmmu_cli bench dirty-log --ring -M)
  add_test(NAME cli_bench_dirty_harvest_bad_size
           COMMAND tdpmmu_cli bench dirty-harvest -b 1G)
  set_tests_properties(cli_bench_dirty_log_bad_ring
    cli_bench_dirty_harvest_bad_size PROPERTIES WILL_FAIL TRUE)
  add_test(NAME cli_bench_nx_recovery
           COMMAND tdpmmu_cli bench nx-recovery -v 1 -b 64M -i 3 --json)
  # interleaved rounds: every design once per round, medians and
  # per-round ratios with their range; populate's steady phases and the
  # scaling summary
  add_test(NAME cli_bench_populate_rounds
           COMMAND tdpmmu_cli bench populate -v 2 -b 8M --baseline floor
                   --compare --rounds 2 --json)
  set_tests_properties(cli_bench_populate_rounds PROPERTIES TIMEOUT 120
    PASS_REGULAR_EXPRESSION "\"result\":\"pass\".*\"round\":2.*\"name\":\"Populate memory \\(steady\\)\".*\"passes\":.*\"name\":\"Populate memory, 1 vCPU \\(steady\\)\".*\"rounds\":{\"n\":2,\"designs\":\\[{\"impl\":\"tdp\".*\"summary\":{\"scaling\":{\"median\":.*\"impl\":\"floor\".*\"ratio_ns_per_op\":{.*\"ratio_summary\":{\"scaling\":{\"median\":")
  set_tests_properties(cli_bench_populate cli_bench_populate_compare
    cli_bench_access cli_bench_memslot cli_bench_mmu_stress cli_bench_translate
    cli_bench_dirty_log_wp cli_bench_dirty_log_dbit cli_bench_dirty_log_manual
    cli_bench_access_aging cli_bench_access_legacy_fault cli_bench_fast_zap
    cli_bench_dirty_log_ring cli_bench_dirty_log_ring_pml cli_bench_dirty_harvest
    PROPERTIES PASS_REGULAR_EXPRESSION "${_bench_keys}" TIMEOUT 120)
  set_tests_properties(cli_bench_populate_compare PROPERTIES
    PASS_REGULAR_EXPRESSION "\"result\":\"pass\".*\"compare\":\\[{\"baseline\":\"exclusive\",\"ratios\":{[^}]*\"Populate memory\":.*\"baseline\":\"floor\"")
  set_tests_properties(cli_bench_translate PROPERTIES
    PASS_REGULAR_EXPRESSION "\"result\":\"pass\".*\"tlb_misses_per_access\":.*\"walk_hot_ns\":")
  set(_dlog_keys "\"result\":\"pass\".*\"dirty_mode\":\"MODE\".*\"name\":\"Enabling dirty logging\".*\"eager_splits\":.*\"name\":\"Iteration 1 dirty memory\".*\"pages_dirtied_per_s\":.*\"pf_fast\":.*\"name\":\"Iteration 1 get dirty log\".*\"harvest_ns_per_page\":.*\"name\":\"Disabling dirty logging\".*\"huge_recovered\":.*\"recover_flushes\":.*\"summary\":{.*\"harvest_ns_per_page\":.*\"pf_fast_per_iter\":")
  string(REPLACE "MODE" "wp" _dlog_wp "${_dlog_keys}")
  string(REPLACE "MODE" "dbit" _dlog_dbit "${_dlog_keys}")
  set_tests_properties(cli_bench_dirty_log_wp PROPERTIES
    PASS_REGULAR_EXPRESSION "${_dlog_wp}.*\"compare\":\\[{\"baseline\":\"nofast\",\"ratios\":{[^}]*\"Iteration 1 dirty memory\":.*\"baseline\":\"nosplit\"")
  set_tests_properties(cli_bench_dirty_log_dbit PROPERTIES
    PASS_REGULAR_EXPRESSION "${_dlog_dbit}")
  set_tests_properties(cli_bench_dirty_log_manual PROPERTIES
    PASS_REGULAR_EXPRESSION "\"result\":\"pass\".*\"manual_protect\":true.*\"name\":\"Iteration 2 clear dirty log\".*\"clear_ms_avg\":")
  set_tests_properties(cli_bench_access_aging PROPERTIES
    PASS_REGULAR_EXPRESSION "\"result\":\"pass\".*\"impl\":\"tdp\".*\"name\":\"Mark memory idle\".*\"young_pct\":.*\"name\":\"Writing to idle memory\".*\"name\":\"Reading from idle memory\".*\"name\":\"Aging while vCPUs run\".*\"vcpu_accesses_per_s\":.*\"vcpu_rate_ratio\":.*\"impl\":\"locked-aging\".*\"compare\":\\[{\"baseline\":\"locked-aging\",\"ratios\":{[^}]*\"Mark memory idle\":.*\"vcpu_rate_ratios\":{\"Aging while vCPUs run\":")
  set_tests_properties(cli_bench_access_legacy_fault PROPERTIES
    PASS_REGULAR_EXPRESSION "\"result\":\"pass\".*\"impl\":\"tdp\".*\"name\":\"Aging while vCPUs fault\".*\"vcpu_faults_per_s\":[1-9].*\"name\":\"vCPUs fault without aging\".*\"vcpu_fault_rate_ratio\":.*\"impl\":\"legacy\".*\"impl\":\"legacy-locked-aging\".*\"fault_ms_per_pass\":.*\"compare\":\\[{\"baseline\":\"legacy\".*\"vcpu_fault_rate_ratios\":{\"Aging while vCPUs fault\":.*\"baseline\":\"legacy-locked-aging\"")
  set_tests_properties(cli_bench_nx_recovery PROPERTIES TIMEOUT 120
    PASS_REGULAR_EXPRESSION "\"bench\":\"nx-recovery\",\"result\":\"pass\".*\"name\":\"NX recovery while vCPUs fetch\".*\"zapped_per_pass\":.*\"summary\":{\"nx_pass_us_p50\":[0-9.e+-]+,\"nx_pass_us_p99\":[0-9.e+-]+,\"nx_zapped_per_pass\":[0-9.e+-]+,\"nx_vcpu_rate_in_pass\":[0-9.e+-]+,\"nx_vcpu_rate_between\":")
  set_tests_properties(cli_bench_fast_zap PROPERTIES
    PASS_REGULAR_EXPRESSION "\"bench\":\"fast-zap\",\"result\":\"pass\".*\"name\":\"Fast zap while vCPUs run\".*\"zapped_leaves_per_zap\":.*\"reload_us_p99\":.*\"summary\":{\"fast_zap_us_p50\":[0-9.e+-]+,\"fast_zap_us_p99\":[0-9.e+-]+,\"fast_zap_us_max\":[0-9.e+-]+,\"reload_us_p50\":[0-9.e+-]+,\"reload_us_p99\":[0-9.e+-]+,\"reload_us_max\":")
  # usage errors exit 2
  add_test(NAME cli_bench_bad_option COMMAND tdpmmu_cli bench populate -v 0)
  add_test(NAME cli_bench_unknown_baseline
           COMMAND tdpmmu_cli bench populate -b 8M --baseline nosuch)
  add_test(NAME cli_bench_bad_cpus COMMAND tdpmmu_cli bench populate -b 8M -c 99999)
  add_test(NAME cli_bench_bad_dirty_mode
           COMMAND tdpmmu_cli bench dirty-log -b 8M -m dirty)
  add_test(NAME cli_bench_baseline_unsupported
           COMMAND tdpmmu_cli bench populate -b 8M --baseline nofast)
  add_test(NAME cli_bench_bad_rounds
           COMMAND tdpmmu_cli bench populate -b 8M --rounds 0)
  set_tests_properties(cli_bench_bad_rounds cli_bench_bad_option
    cli_bench_unknown_baseline
    cli_bench_bad_cpus cli_bench_bad_dirty_mode cli_bench_baseline_unsupported
    PROPERTIES WILL_FAIL TRUE TIMEOUT 60)
  add_test(NAME cli_bench_help COMMAND tdpmmu_cli bench --help)
  set_tests_properties(cli_bench_help PROPERTIES
    PASS_REGULAR_EXPRESSION "populate.*access.*memslot.*mmu-stress.*dirty-log.*translate.*-m MODE.*-M .*baselines:.*tdp.*exclusive.*floor.*nofast.*nosplit.*locked-aging")
endif()
