/* SPDX-License-Identifier: MIT */
#include "assert.h"

#include <stdarg.h>

void tdp_bug(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tdpmmu BUG at %s:%d: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
