/*
 * rmap.pml - the reverse-map head lock bit of tdpmmu (src/rmap.h's locking
 * rules; seed 002), checked exhaustively with spin.  models/check.sh runs
 * it; the prose is in docs/protocols.md, "Models checked with spin".
 *
 * One head, four entries (sptes), descriptors of two slots (RMAP_DESC_CAP
 * is 13 in C; 2 slots and 4 entries give every shape and every path:
 * empty, one bare entry, one descriptor, a head descriptor in front of a
 * full one, an add into a partly used head descriptor, and both ways a
 * remove frees a descriptor).  The head is one word,
 * (pointer << 2) | RMAP_LOCKED | RMAP_MANY, with pointers as small
 * numbers: entry 1..4 or descriptor 1..3.
 *
 * Proctypes and the C code each one models:
 *   writer      a thread holding mmu_lock for write (the only one, so
 *               mmu_lock itself is not modelled) running up to NOPS of:
 *                 src/rmap.c:rmap_add (the peek outside the head lock,
 *                   desc_alloc, write_lock = head_lock, the three cases,
 *                   write_unlock);
 *                 a zap of one entry: clear the entry, then
 *                   src/rmap.c:rmap_remove (head_lock, find the entry, fill
 *                   the hole from the head descriptor, write_unlock, then
 *                   desc_free), then free the table holding the entry
 *                   (the caller's rule in rmap.h: remove, then free);
 *                 src/rmap.c:rmap_zap_all (head_lock, clear every entry,
 *                   write_unlock(0), desc_free each descriptor), then the
 *                   tables.
 *   reader(r)   a lockless aging walk, src/rmap.c:rmap_walk_lockless:
 *               rmap_lock_readonly (= head_lock), rmap_iter_first /
 *               rmap_iter_next (desc_check, sptep_check), the lockless load
 *               of each entry (rmap.h:rmap_lockless_load; what the walk
 *               then does with a present entry is not modelled),
 *               rmap_unlock_readonly.  Two of them.
 *
 * Properties.  Every assertion carries a tag in brackets on its line;
 * check.sh reads the tag of the line a counterexample stops at.
 *   [desc-uaf]     a reader never reads a descriptor after it was freed
 *                  (desc_check's magic check).
 *   [spte-uaf]     a reader never loads an entry whose table was freed.
 *   [free-walked]  the writer never frees a descriptor a reader is in.
 *   [torn]         a reader's walk is never torn: every slot it reads
 *                  holds an entry (sptep_check), no entry twice, and it
 *                  sees exactly the entries the head held when it locked.
 *   [desc-shape]   every descriptor a walker enters is well formed: 1..CAP
 *                  entries, CAP if it is not the head one (desc_check).
 *   [unlock-ro]    the head is unchanged when a reader unlocks it
 *                  (rmap_unlock_readonly's assertion).
 *   [locked-changed] the head a writer locks is the one it peeked at
 *                  before locking (rmap_add's assertion: only writers
 *                  change heads, and they exclude each other).
 *   [writer]       the writer's own assertions (what it removes is there;
 *                  it never publishes a locked value).
 *   [model]        the model's bounds are big enough (ND descriptors).
 *   [present]      (LOCKLESS_ASSERT only) every entry walked is present:
 *                  the assertion of the walk under mmu_lock
 *                  (rmap_locked_first / rmap_locked_next), which is NOT a
 *                  property of a lockless walk; the variant shows why.
 *   Invalid end states (deadlocks) are errors too: every run terminates.
 *
 * Variants (-DVARIANT_...), each of which must produce a counterexample
 * (check.sh searches them breadth first, so the trail is a shortest one):
 *   EARLY_UNLOCK      (d) the reader releases the lock bit after reading
 *                     the first entry, before it finished the walk.
 *                     Expected: [torn] (a zap moves the head descriptor's
 *                     last entry into the hole and clears its slot, and
 *                     the reader reads the cleared slot).
 *   EARLY_UNLOCK_BEFORE_MORE  (d') the same bug, releasing after the head
 *                     descriptor and before following ->more.  Expected:
 *                     [free-walked] (a zap takes the list from two
 *                     entries back to one bare entry and frees the
 *                     descriptor the reader is still in).
 *   UNLOCKED_UPDATE   a writer that does not take the lock bit ("mmu_lock
 *                     is held for write"; INJ_RMAP_UNLOCKED_UPDATE).
 *                     Expected: [spte-uaf] (the reader holds a bare entry
 *                     whose table the writer removed and freed).
 *   LOCKLESS_ASSERT   seed 002 before the split: the lockless walk asserts
 *                     every entry present, as the walk under mmu_lock does
 *                     (INJ_RMAP_LOCKLESS_ASSERT).  Expected: [present] (it
 *                     meets an entry a zap cleared and is waiting to
 *                     remove).
 *
 * Abstracted away: what aging does with an entry (the compare-exchange
 * that clears Accessed), the locked walkers (for_each_rmap_spte,
 * rmap_count: they run under mmu_lock, where nothing changes), other
 * heads, spinning (a wait for the lock bit is a blocking guard; the
 * sched_yield / cpu_relax loop is not modelled), the ENOMEM path, memory
 * ordering (the acquire CAS and release store are modelled as atomic
 * steps), and reuse of freed memory (a freed descriptor stays dead, so
 * a read of it is always caught, where C's magic check might miss one
 * malloc reused).
 */

#define NE    4		/* entries */
#define ND    3		/* descriptors (never reused) */
#define CAP   2		/* slots per descriptor */
#define NOPS  6		/* writer operations */

#define MANY   1
#define LOCKED 2
#define PTR(v) ((v) >> 2)
#define BIT(e) (1 << (e))

/* ---- the head ---- */
byte head = 0;

/* ---- descriptors, 1..ND (0 is NULL) ---- */
bool dlive[ND + 1];		/* allocated, magic intact */
byte dcount[ND + 1];
byte dmore[ND + 1];
byte dsp[(ND + 1) * CAP];	/* sptes[i] of descriptor d: dsp[d * CAP + i] */
byte nalloc = 0;

/* ---- entries, 1..NE ---- */
bool present[NE + 1];		/* the entry is a present spte */
bool tfreed[NE + 1];		/* the table holding it was freed */
byte est[NE + 1];		/* writer's view: 0 new, 1 mapped, 2 gone */

/* ---- ghosts ---- */
byte members = 0;		/* BIT(e) of every entry the head holds */
byte walking[ND + 1];		/* readers inside descriptor d */

/* head_lock, for writers and lockless readers alike: wait while locked;
 * an empty head is returned as 0 and not locked; else set RMAP_LOCKED
 * (the compare-exchange loop as its one successful step). */
inline head_lock(v) {
	atomic {
		!(head & LOCKED) ->
		v = head;
		if
		:: v != 0 -> head = v | LOCKED
		:: else
		fi
	}
}

/* write_lock / write_unlock (publish a new value, unlocking) */
inline write_lock(v) {
#ifdef VARIANT_UNLOCKED_UPDATE
	v = head & ~LOCKED
#else
	head_lock(v)
#endif
}

inline write_unlock(new, newmembers) {
	atomic {
		assert(!(new & LOCKED));		/* [writer] */
		head = new;
		members = newmembers
	}
}

inline desc_alloc(d) {
	atomic {
		assert(nalloc < ND);			/* [model] */
		nalloc++;
		d = nalloc;
		dlive[d] = 1;
		dcount[d] = 0;
		dmore[d] = 0;
		dsp[d * CAP] = 0;
		dsp[d * CAP + 1] = 0
	}
}

inline desc_free(d) {
	atomic {
		assert(walking[d] == 0);		/* [free-walked] */
		dlive[d] = 0
	}
}

/* rmap_add(entry e) */
inline rmap_add(e) {
	/* the peek: only writers change the head's value and its list */
	atomic {
		peek = head & ~LOCKED;
		fresh = 0;
		if
		:: peek != 0 && (!(peek & MANY) || dcount[PTR(peek)] == CAP) ->
			desc_alloc(fresh)
		:: else
		fi
	}
	write_lock(val);
	assert(val == peek);				/* [locked-changed] */
	if
	:: val == 0 ->
		new = e << 2;
	:: val != 0 && !(val & MANY) ->
		dsp[fresh * CAP] = PTR(val);
		dsp[fresh * CAP + 1] = e;
		dcount[fresh] = 2;
		new = (fresh << 2) | MANY
	:: val & MANY ->
		d = PTR(val);
		assert(dlive[d] && dcount[d] >= 1);	/* [desc-shape] */
		if
		:: dcount[d] < CAP ->
			/* d->sptes[d->count++] = sptep */
			dsp[d * CAP + dcount[d]] = e;
			dcount[d]++;
			new = val
		:: else ->
			/* a new head descriptor in front of the full one */
			dsp[fresh * CAP] = e;
			dcount[fresh] = 1;
			dmore[fresh] = d;
			new = (fresh << 2) | MANY
		fi
	fi;
	write_unlock(new, members | BIT(e));
	est[e] = 1
}

/* rmap_remove(entry e) */
inline rmap_remove(e) {
	write_lock(val);
	gone = 0;
	if
	:: !(val & MANY) ->
		assert(val != 0 && PTR(val) == e);	/* [writer] */
		new = 0
	:: else ->
		h = PTR(val);
		/* find the slot holding e (the writer's own reads) */
		atomic {
			d = h;
			i = 0;
			do
			:: d == 0 -> assert(false)	/* [writer] not in the list */
			:: d != 0 && i == dcount[d] -> d = dmore[d]; i = 0
			:: d != 0 && i < dcount[d] && dsp[d * CAP + i] == e -> break
			:: d != 0 && i < dcount[d] && dsp[d * CAP + i] != e -> i++
			od
		}
		/* last = --h->count; d->sptes[i] = h->sptes[last];
		 * h->sptes[last] = NULL */
		dcount[h]--;
		dsp[d * CAP + i] = dsp[h * CAP + dcount[h]];
		dsp[h * CAP + dcount[h]] = 0;
		new = val;
		if
		:: dcount[h] == 0 ->
			assert(dmore[h] != 0);		/* [writer] */
			gone = h;
			new = (dmore[h] << 2) | MANY
		:: dcount[h] == 1 && dmore[h] == 0 ->
			gone = h;	/* back to a single entry */
			new = dsp[h * CAP] << 2
		:: else
		fi
	fi;
	write_unlock(new, members & ~BIT(e));
	if
	:: gone != 0 -> desc_free(gone)
	:: else
	fi
}

/* rmap_zap_all, with the zap callback clearing each entry */
inline rmap_zap_all() {
	write_lock(val);
	if
	:: val == 0	/* an empty head is not locked */
	:: else ->
		/* clear every entry, with the head locked */
		atomic {
			i = 1;
			do
			:: i <= NE ->
				if
				:: members & BIT(i) -> present[i] = 0
				:: else
				fi;
				i++
			:: else -> break
			od
		}
		write_unlock(0, 0);
		/* then free the descriptors, following ->more */
		d = 0;
		if
		:: val & MANY -> d = PTR(val)
		:: else
		fi;
		do
		:: d != 0 -> i = dmore[d]; desc_free(d); d = i
		:: else -> break
		od;
		/* and the tables of the entries */
		atomic {
			i = 1;
			do
			:: i <= NE ->
				if
				:: est[i] == 1 -> tfreed[i] = 1; est[i] = 2
				:: else
				fi;
				i++
			:: else -> break
			od
		}
	fi
}

active proctype writer()
{
	byte nops = 0, nxt = 1, e, peek, val, new, fresh, d, h, i, gone;

	do
	:: else -> break	/* NOPS done, or nothing left to do */
	:: nops < NOPS && nxt <= NE ->
		rmap_add(nxt);
		nxt++;
		nops++
	:: nops < NOPS && members != 0 ->
		/* zap one entry: clear it, remove it, free its table */
		if
		:: est[1] == 1 -> e = 1
		:: est[2] == 1 -> e = 2
		:: est[3] == 1 -> e = 3
		:: est[4] == 1 -> e = 4
		fi;
		present[e] = 0;
		rmap_remove(e);
		atomic { tfreed[e] = 1; est[e] = 2 };
		nops++
	:: nops < NOPS && members != 0 ->
		rmap_zap_all();
		nops++
	od
}

/* rmap_unlock_readonly: store back the value locked; once only (the
 * early-unlock variants call it in the middle of the walk). */
inline unlock_readonly() {
	if
	:: v != 0 && !released ->
		atomic {
			assert(head == (v | LOCKED));		/* [unlock-ro] */
			head = v
		};
		released = 1
	:: else
	fi
}

/* The walker's per-entry work: sptep_check, the lockless load of the
 * entry (present or not: a zap may be halfway, and the C walk skips it;
 * what it does with a present one is not modelled), and the ghost checks
 * of a torn walk. */
inline visit(e) {
	assert(e != 0);					/* [torn] */
	atomic {
		assert(!tfreed[e]);			/* [spte-uaf] */
#ifdef VARIANT_LOCKLESS_ASSERT
		assert(present[e]);			/* [present] */
#endif
		assert((snap & BIT(e)) && !(seen & BIT(e)));	/* [torn] */
		seen = seen | BIT(e)
	}
#ifdef VARIANT_EARLY_UNLOCK
	/* the bug: the lock bit goes back after the first entry */
	unlock_readonly()
#endif
}

proctype reader(byte r)
{
	byte v, snap, seen, d, pos, cnt, e;
	bool released;

	/* rmap_lock_readonly; the ghost snapshot of what the head holds,
	 * and of the descriptor this reader now has a pointer to */
	atomic {
		head_lock(v);
		snap = members;
		if
		:: v & MANY -> walking[PTR(v)]++
		:: else
		fi
	}
	if
	:: v == 0
	:: v != 0 && !(v & MANY) ->
		e = PTR(v);
		visit(e)
	:: v & MANY ->
		/* rmap_iter_first */
		d = PTR(v);
		pos = 0;
		atomic {
			assert(dlive[d]);			/* [desc-uaf] */
			assert(dcount[d] >= 1 && dcount[d] <= CAP)	/* [desc-shape] */
		}
		atomic { assert(dlive[d]); e = dsp[d * CAP] }	/* [desc-uaf] */
		visit(e);
		/* rmap_iter_next, until it returns NULL */
		do
		:: d == 0 -> break
		:: else ->
			pos++;
			atomic { assert(dlive[d]); cnt = dcount[d] }	/* [desc-uaf] */
			if
			:: pos < cnt ->
				atomic { assert(dlive[d]); e = dsp[d * CAP + pos] }	/* [desc-uaf] */
				visit(e)
			:: else ->
#ifdef VARIANT_EARLY_UNLOCK_BEFORE_MORE
				/* the bug: the lock bit goes back after the
				 * head descriptor, before d->more is read */
				unlock_readonly();
#endif
				atomic {
					assert(dlive[d]);		/* [desc-uaf] */
					walking[d]--;
					d = dmore[d];
					if
					:: d != 0 -> walking[d]++
					:: else
					fi
				}
				pos = 0;
				if
				:: d != 0 ->
					atomic {
						assert(dlive[d]);	/* [desc-uaf] */
						assert(dcount[d] == CAP)	/* [desc-shape] */
					}
					atomic { assert(dlive[d]); e = dsp[d * CAP] }	/* [desc-uaf] */
					visit(e)
				:: else
				fi
			fi
		od
	fi;
	assert(seen == snap);				/* [torn] */
	unlock_readonly()
}

init
{
	atomic {
		run reader(0);
		run reader(1)
	}
}
