/* SPDX-License-Identifier: MIT */
/*
 * atomics.c - the runtime of the ThreadSanitizer instrumentation in a
 * TDP_SCHED build.  The library is compiled with -fsanitize=thread but
 * linked without libtsan: the compiler turns every atomic operation into
 * a call of __tsan_atomicN_OP, which lands here, and every plain access
 * into __tsan_readN/writeN, which do nothing.  Each atomic hook makes
 * the operation a scheduling point of a controlled thread and then
 * performs it, sequentially consistent (one thread runs at a time, so
 * the run explores interleavings, not weaker orderings: those are the
 * TSan build's and the free-running torture's job).
 *
 * The symbols and signatures are those of compiler-rt's
 * tsan_interface_atomic.h (memory orders as ints, 0 relaxed .. 5
 * seq_cst); gcc 12 and clang 14 emit the ones below.  A compiler that
 * emits one more fails to link, which is the check that this list is
 * whole.
 */
#include "sched/internal.h"

#include <stddef.h>

#define SC __ATOMIC_SEQ_CST
#define PT(k, a)                                                               \
	do {                                                                   \
		if (sched_ctl() && !sched_self->priv)                          \
			sched_point_ra(k, (const void *)(a),                   \
				       __builtin_return_address(0));           \
	} while (0)

#define RMW(N, T, op)                                                          \
	T __tsan_atomic##N##_##op(volatile T *a, T v, int mo);                 \
	T __tsan_atomic##N##_##op(volatile T *a, T v, int mo)                  \
	{                                                                      \
		PT(SK_RMW, a);                                                 \
		return __atomic_##op(a, v, SC);                                \
	}

#define ATOMICS(N, T)                                                          \
	T __tsan_atomic##N##_load(const volatile T *a, int mo);                \
	T __tsan_atomic##N##_load(const volatile T *a, int mo)                 \
	{                                                                      \
		PT(SK_LOAD, a);                                                \
		return __atomic_load_n(a, SC);                                 \
	}                                                                      \
	void __tsan_atomic##N##_store(volatile T *a, T v, int mo);             \
	void __tsan_atomic##N##_store(volatile T *a, T v, int mo)              \
	{                                                                      \
		PT(SK_STORE, a);                                               \
		__atomic_store_n(a, v, SC);                                    \
	}                                                                      \
	T __tsan_atomic##N##_exchange(volatile T *a, T v, int mo);             \
	T __tsan_atomic##N##_exchange(volatile T *a, T v, int mo)              \
	{                                                                      \
		PT(SK_RMW, a);                                                 \
		return __atomic_exchange_n(a, v, SC);                          \
	}                                                                      \
	RMW(N, T, fetch_add)                                                   \
	RMW(N, T, fetch_sub)                                                   \
	RMW(N, T, fetch_and)                                                   \
	RMW(N, T, fetch_or)                                                    \
	RMW(N, T, fetch_xor)                                                   \
	RMW(N, T, fetch_nand)                                                  \
	int __tsan_atomic##N##_compare_exchange_strong(volatile T *a, T *c,    \
						       T v, int mo, int fmo); \
	int __tsan_atomic##N##_compare_exchange_strong(volatile T *a, T *c,    \
						       T v, int mo, int fmo)  \
	{                                                                      \
		PT(SK_CAS, a);                                                 \
		return __atomic_compare_exchange_n(a, c, v, 0, SC, SC);        \
	}                                                                      \
	int __tsan_atomic##N##_compare_exchange_weak(volatile T *a, T *c, T v, \
						     int mo, int fmo);         \
	int __tsan_atomic##N##_compare_exchange_weak(volatile T *a, T *c, T v, \
						     int mo, int fmo)          \
	{                                                                      \
		PT(SK_CAS, a);                                                 \
		return __atomic_compare_exchange_n(a, c, v, 0, SC, SC);        \
	}                                                                      \
	T __tsan_atomic##N##_compare_exchange_val(volatile T *a, T c, T v,     \
						  int mo, int fmo);            \
	T __tsan_atomic##N##_compare_exchange_val(volatile T *a, T c, T v,     \
						  int mo, int fmo)             \
	{                                                                      \
		PT(SK_CAS, a);                                                 \
		__atomic_compare_exchange_n(a, &c, v, 0, SC, SC);              \
		return c;                                                      \
	}

ATOMICS(8, uint8_t)
ATOMICS(16, uint16_t)
ATOMICS(32, uint32_t)
ATOMICS(64, uint64_t)

void __tsan_atomic_thread_fence(int mo);
void __tsan_atomic_thread_fence(int mo)
{
	PT(SK_FENCE, NULL);
	__atomic_thread_fence(SC);
}

void __tsan_atomic_signal_fence(int mo);
void __tsan_atomic_signal_fence(int mo)
{
}

/* Plain accesses and the rest of the interface: nothing to do. */
#define NOP1(name)                                                             \
	void name(void *a);                                                    \
	void name(void *a)                                                     \
	{                                                                      \
	}
#define ACCESS(N)                                                              \
	NOP1(__tsan_read##N)                                                   \
	NOP1(__tsan_write##N)                                                  \
	NOP1(__tsan_unaligned_read##N)                                         \
	NOP1(__tsan_unaligned_write##N)                                        \
	NOP1(__tsan_volatile_read##N)                                          \
	NOP1(__tsan_volatile_write##N)
ACCESS(1)
ACCESS(2)
ACCESS(4)
ACCESS(8)
ACCESS(16)
NOP1(__tsan_func_entry)

void __tsan_func_exit(void);
void __tsan_func_exit(void)
{
}

void __tsan_init(void);
void __tsan_init(void)
{
}

void __tsan_read_range(void *a, size_t n);
void __tsan_read_range(void *a, size_t n)
{
}

void __tsan_write_range(void *a, size_t n);
void __tsan_write_range(void *a, size_t n)
{
}
