# Tests of a controlled-scheduler build (TDP_SCHED): filled in below.
