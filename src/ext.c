/* SPDX-License-Identifier: MIT */
/*
 * ext.c - the external page table (see ext.h): a radix tree with the EPT
 * shape behind one mutex, refusing out-of-order use.
 */
#include "ext.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "assert.h"

/* One table: the entries at one level. */
struct ext_node {
	uint8_t kind[EXT_ENTRIES]; /* enum ext_kind */
	union {
		struct ext_node *child; /* EXT_TABLE */
		uint64_t pfn;		/* EXT_LEAF */
	} e[EXT_ENTRIES];
	unsigned present; /* entries not EXT_NONE */
	int level;	  /* level of the entries in this table */
};

struct ext_table {
	pthread_mutex_t lock;
	struct ext_node *root;
	int root_level;
	/* under lock */
	struct ext_counts counts;
};

static struct ext_node *node_alloc(int level)
{
	struct ext_node *n = calloc(1, sizeof(*n));

	if (n)
		n->level = level;
	return n;
}

static void node_free_all(struct ext_node *n)
{
	if (n->level > 1)
		for (unsigned i = 0; i < EXT_ENTRIES; i++)
			if (n->kind[i] == EXT_TABLE)
				node_free_all(n->e[i].child);
	free(n);
}

static unsigned entry_index(uint64_t gfn, int level)
{
	return (gfn >> (EXT_LEVEL_BITS * (level - 1))) & (EXT_ENTRIES - 1);
}

/* Does (gfn, level) name an entry of @x? */
static bool entry_valid(const struct ext_table *x, uint64_t gfn, int level)
{
	if (level < 1 || level > x->root_level)
		return false;
	if (gfn & (ext_level_pages(level) - 1))
		return false;
	return (gfn >> (EXT_LEVEL_BITS * x->root_level)) == 0;
}

/* The table holding entry (gfn, level), or NULL when a table on the path
 * to it is missing.  Under x->lock; (gfn, level) valid. */
static struct ext_node *holder(struct ext_table *x, uint64_t gfn, int level)
{
	struct ext_node *n = x->root;

	while (n->level > level) {
		unsigned i = entry_index(gfn, n->level);

		if (n->kind[i] != EXT_TABLE)
			return NULL;
		TDP_ASSERT(n->e[i].child->level == n->level - 1);
		n = n->e[i].child;
	}
	TDP_ASSERT(n->level == level);
	return n;
}

static int reject(struct ext_table *x, int err)
{
	x->counts.rejects++;
	return err;
}

static int done(struct ext_table *x)
{
	x->counts.ops++;
	return 0;
}

int ext_create(int root_level, struct ext_table **out)
{
	struct ext_table *x;
	int err;

	if (!out || root_level < EXT_MIN_ROOT_LEVEL ||
	    root_level > EXT_MAX_ROOT_LEVEL)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->root_level = root_level;
	x->root = node_alloc(root_level);
	if (!x->root) {
		free(x);
		return -ENOMEM;
	}
	err = pthread_mutex_init(&x->lock, NULL);
	if (err) {
		free(x->root);
		free(x);
		return -err;
	}
	*out = x;
	return 0;
}

void ext_destroy(struct ext_table *x)
{
	if (!x)
		return;
	node_free_all(x->root);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

/* The empty entry (gfn, level) that a link (@leaf false) or a leaf may
 * fill: its table in *@n, its index in *@i; or the errno to reject with.
 * Under x->lock. */
static int empty_entry(struct ext_table *x, uint64_t gfn, int level,
		       bool leaf, struct ext_node **n, unsigned *i)
{
	if ((leaf ? level != 1 : level < 2) || !entry_valid(x, gfn, level))
		return -EINVAL;
	*n = holder(x, gfn, level);
	if (!*n)
		return -ENOENT; /* its parent table first */
	*i = entry_index(gfn, level);
	return (*n)->kind[*i] != EXT_NONE ? -EEXIST : 0;
}

int ext_link_table(struct ext_table *x, uint64_t gfn, int level)
{
	struct ext_node *n, *child = NULL;
	unsigned i;
	int ret;

	TDP_ASSERT(x);
	pthread_mutex_lock(&x->lock);
	ret = empty_entry(x, gfn, level, false, &n, &i);
	if (!ret && !(child = node_alloc(level - 1)))
		ret = -ENOMEM;
	if (ret) {
		ret = reject(x, ret);
	} else {
		n->kind[i] = EXT_TABLE;
		n->e[i].child = child;
		n->present++;
		x->counts.tables++;
		ret = done(x);
	}
	pthread_mutex_unlock(&x->lock);
	return ret;
}

int ext_set_leaf(struct ext_table *x, uint64_t gfn, int level, uint64_t pfn)
{
	struct ext_node *n;
	unsigned i;
	int ret;

	TDP_ASSERT(x);
	pthread_mutex_lock(&x->lock);
	ret = empty_entry(x, gfn, level, true, &n, &i);
	if (ret) {
		ret = reject(x, ret);
	} else {
		n->kind[i] = EXT_LEAF;
		n->e[i].pfn = pfn;
		n->present++;
		x->counts.leaves++;
		ret = done(x);
	}
	pthread_mutex_unlock(&x->lock);
	return ret;
}

/* The present entry (gfn, level) of @kind that a removal may clear: its
 * table in *@n, its index in *@i; or the errno to reject with (removals
 * need the write lock).  Under x->lock. */
static int present_entry(struct ext_table *x, uint64_t gfn, int level,
			 enum ext_kind kind, bool write_locked,
			 struct ext_node **n, unsigned *i)
{
	if ((kind == EXT_LEAF ? level != 1 : level < 2) ||
	    !entry_valid(x, gfn, level))
		return -EINVAL;
	if (!write_locked)
		return -EPERM;
	*n = holder(x, gfn, level);
	*i = entry_index(gfn, level);
	return !*n || (*n)->kind[*i] != kind ? -ENOENT : 0;
}

/* Clear entry @i of @n (present), counted in *@count. */
static int clear_entry(struct ext_table *x, struct ext_node *n, unsigned i,
		       uint64_t *count)
{
	n->kind[i] = EXT_NONE;
	n->e[i].pfn = 0;
	TDP_ASSERT(n->present > 0);
	n->present--;
	TDP_ASSERT(*count > 0);
	(*count)--;
	return done(x);
}

int ext_remove_leaf(struct ext_table *x, uint64_t gfn, int level, uint64_t pfn,
		    bool write_locked)
{
	struct ext_node *n;
	unsigned i;
	int ret;

	TDP_ASSERT(x);
	pthread_mutex_lock(&x->lock);
	ret = present_entry(x, gfn, level, EXT_LEAF, write_locked, &n, &i);
	if (!ret && n->e[i].pfn != pfn)
		ret = -EINVAL; /* not the page the caller thinks */
	ret = ret ? reject(x, ret) : clear_entry(x, n, i, &x->counts.leaves);
	pthread_mutex_unlock(&x->lock);
	return ret;
}

int ext_free_table(struct ext_table *x, uint64_t gfn, int level,
		   bool write_locked)
{
	struct ext_node *n, *child = NULL;
	unsigned i;
	int ret;

	TDP_ASSERT(x);
	pthread_mutex_lock(&x->lock);
	ret = present_entry(x, gfn, level, EXT_TABLE, write_locked, &n, &i);
	if (!ret && (child = n->e[i].child)->present)
		ret = -EBUSY; /* its leaves and tables go first */
	if (ret) {
		ret = reject(x, ret);
	} else {
		ret = clear_entry(x, n, i, &x->counts.tables);
		free(child);
	}
	pthread_mutex_unlock(&x->lock);
	return ret;
}

enum ext_kind ext_lookup(struct ext_table *x, uint64_t gfn, int level,
			 uint64_t *pfn)
{
	enum ext_kind k = EXT_NONE;
	struct ext_node *n;
	unsigned i;

	TDP_ASSERT(x);
	pthread_mutex_lock(&x->lock);
	if (!entry_valid(x, gfn, level))
		goto out;
	n = holder(x, gfn, level);
	if (!n)
		goto out;
	i = entry_index(gfn, level);
	k = n->kind[i];
	if (k == EXT_LEAF && pfn)
		*pfn = n->e[i].pfn;
out:
	pthread_mutex_unlock(&x->lock);
	return k;
}

void ext_get_counts(struct ext_table *x, struct ext_counts *out)
{
	TDP_ASSERT(x && out);
	pthread_mutex_lock(&x->lock);
	*out = x->counts;
	pthread_mutex_unlock(&x->lock);
}
