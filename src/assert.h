/* SPDX-License-Identifier: MIT */
/*
 * assert.h - assertions that stay on in every build.  A broken MMU rule is
 * a memory-safety problem for the guest (stale translations, lost data), so
 * the rules are checked in release builds too, like KVM_BUG_ON: they print
 * where and why and abort.
 */
#ifndef TDP_ASSERT_H
#define TDP_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

__attribute__((noreturn, cold, format(printf, 4, 5))) void
tdp_bug(const char *file, int line, const char *cond, const char *fmt, ...);

#define TDP_ASSERT(c)                                                          \
	do {                                                                   \
		if (__builtin_expect(!(c), 0))                                 \
			tdp_bug(__FILE__, __LINE__, #c, " ");                  \
	} while (0)

#define TDP_ASSERT_MSG(c, ...)                                                 \
	do {                                                                   \
		if (__builtin_expect(!(c), 0))                                 \
			tdp_bug(__FILE__, __LINE__, #c, __VA_ARGS__);          \
	} while (0)

#endif
