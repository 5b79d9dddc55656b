/* SPDX-License-Identifier: MIT */
/*
 * util.c - option parsing shared by the subcommands (cli.h).  The clock
 * and the random numbers are header-only, shared with the tests
 * (tools/common).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tdpmmu.h"

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	v = strtoull(s, &end, 0);
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_size_in(const char *s, uint64_t align, uint64_t max,
		      uint64_t *out)
{
	uint64_t v;

	if (cli_parse_size(s, &v) || !v || v % align || v > max)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_u64(const char *s, int base, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, base);
	if (errno || *end || *out > max)
		return -1;
	return 0;
}

int cli_parse_engine(const char *s, unsigned *out)
{
	if (!strcmp(s, "tdp"))
		*out = TDP_ENGINE_TDP;
	else if (!strcmp(s, "legacy"))
		*out = TDP_ENGINE_LEGACY;
	else
		return -1;
	return 0;
}

int cli_parse_host(const char *s, unsigned *out)
{
	if (!strcmp(s, "pool"))
		*out = TDP_HOST_POOL;
	else if (!strcmp(s, "process"))
		*out = TDP_HOST_PROCESS;
	else
		return -1;
	return 0;
}
