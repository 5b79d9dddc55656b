/*
 * root.pml - the root lifecycle of tdpmmu (root.h's reference rules, I3),
 * checked exhaustively with spin.  models/check.sh runs it; the prose is in
 * docs/protocols.md, "Models checked with spin".
 *
 * One root, as it is after vCPU 0 allocated it: refcount 2 (the MMU's own
 * reference and vCPU 0's), valid, on the root list, with entries.
 *
 * Proctypes and the C code each one models:
 *   vcpu(id)            src/vcpu.c:vcpu_load_roots -> src/root.c:
 *                       root_get_or_alloc / get_valid_root (read lock +
 *                       list_lock, skip invalid roots, root_get); guest mode
 *                       (src/hw.c walks the root with no lock and no RCU:
 *                       the reference is all that keeps it); a fault
 *                       (src/fault.c: read lock, give up if the root is
 *                       invalid, else src/mmu.c:tdp_mmu_map adds entries);
 *                       src/vcpu.c:vcpu_drop_roots -> src/root.c:root_put.
 *                       vCPU 0 starts with the allocating reference.
 *   invalidate_and_zap  src/vm.c:invalidate_and_zap: src/root.c:
 *                       roots_invalidate (write lock: if the root is valid,
 *                       set scheduled_to_zap and invalid), then src/mmu.c:
 *                       tdp_mmu_zap_invalidated_roots (read lock): the loop
 *                       for_each_root_yield_safe over ROOTS_ALL, i.e.
 *                       src/root.c:root_next (RCU list walk + root_get, and
 *                       root_put of the previous root), the atomic_exchange
 *                       of scheduled_to_zap, src/mmu.c:zap_root, and the
 *                       root_put of the MMU's own reference.  Two of them
 *                       run: two invalidators and two zappers.
 *   rcu_reader          src/age.c:tdp_mmu_age_range and src/translate.c:
 *                       valid_root_rcu (for_each_root_rcu: no mmu_lock, no
 *                       reference, RCU read-side section only).
 *   rcu_gp              liburcu's call_rcu machinery behind src/pt.c:
 *                       pt_free_page_rcu / pt_free_rcu_cb: a queued free
 *                       runs after every read-side section that was open
 *                       when it was queued has ended.
 *   end_check           src/vm.c:tdp_vm_destroy's tdp_rcu_barrier and
 *                       src/root.c:roots_destroy: the state once everyone
 *                       is done and every queued free has run.
 *   i3_monitor          a global invariant, checked in every state.
 * Inline helpers: root_get = src/root.c:root_get (increment unless zero),
 * root_put = root_put, root_free = root_free (asserts, list_del under
 * list_lock, pt_free_page_rcu).
 *
 * Properties.  Every assertion carries a tag in brackets on its line;
 * check.sh reads the tag of the line a counterexample stops at.
 *   [uaf]           no use after free: a reference holder or an RCU reader
 *                   never touches a freed root (every read of the root's
 *                   memory asserts it is not freed).
 *   [free-held]     the root is unlinked and queued for freeing only when
 *                   no one holds a reference (ghost count refs_held): the
 *                   holder-side form of [uaf], caught at the free itself.
 *   [double-free]   the root is freed at most once.
 *   [underflow]     the refcount never goes below 0 (root_put's assertion
 *                   old > 0; the monitor checks refcount >= 0 too).
 *   [last-valid]    the last put finds the root invalid (root_free's
 *                   "last put of a valid root").
 *   [empty]         the last put finds the root empty (root_assert_empty).
 *   [get-valid]     a get of a valid root cannot fail (get_valid_root).
 *   [mmu-ref-twice] the MMU's own reference is dropped at most once.
 *   [i3]            I3 in DESIGN.md: a valid root always holds the MMU's
 *                   own reference (and so refcount >= 1).
 *   [no-leak]       at the end, once no reference is held, the root has
 *                   been freed.
 *   [freed-iff]     at the end, the root was freed exactly once iff it
 *                   ended invalid with refcount 0.
 *   ltl no_leak     liveness form of [no-leak]: whenever no reference is
 *                   held, the root is eventually freed (pan -a).
 *   Invalid end states (deadlocks) are errors too: every run terminates.
 *
 * Variants (-DVARIANT_...), each of which must produce a counterexample:
 *   DEC_NOT_ONE        (a) seed 001: put as refcount_dec_not_one, and when
 *                      the count was 1, force it to 0 and free
 *                      (INJ_PUT_DEC_NOT_ONE).  Expected: [free-held].
 *   PUT_LEAK           (b) seed 000: the iterator's put of the previous
 *                      root drops the reference and never frees
 *                      (INJ_ROOT_LEAK_AFTER_YIELD).  Expected: [no-leak]
 *                      and the ltl no_leak.
 *   INVALIDATE_CHECK_THEN_ACT (c) the invalidation decides on a load of
 *                      `invalid` made outside the write-locked section
 *                      that stores it: two invalidators both see the root
 *                      valid, both schedule its zap, and the MMU's
 *                      reference is dropped twice.  Expected:
 *                      [mmu-ref-twice].
 *   ZAP_TAKE_CHECK_THEN_ACT (c') the same race where the C code actually
 *                      has its exchange: scheduled_to_zap read and cleared
 *                      in two steps by two zappers (read lock).  Expected:
 *                      [mmu-ref-twice].
 *   FREE_NO_GRACE      the last put frees at once instead of after a grace
 *                      period (INJ_FREE_WITHOUT_GRACE).  Expected: [uaf].
 *
 * Abstracted away: other roots (a vCPU that finds no valid root would
 * allocate a new one; here it just has none), the tables under the root
 * (one bit, `populated`), yields inside zap_root (they do not change
 * what is checked: faults cannot add entries to an invalid root), the
 * vCPU request/kick protocol (modelled elsewhere: docs/protocols.md),
 * memory ordering (C11 seq_cst/acq_rel atomics are modelled as
 * interleavings of atomic steps), and compare-exchange retry loops (each
 * modelled as its one successful step).
 */

#define NVCPU 2
#define NIZ   2		/* invalidate_and_zap threads */
#define NRCU  3		/* read-side slots: rcu_reader, and each root_next */
#define NUSERS (NVCPU + NIZ + 1)

/* ---- the root (struct tdp_pt_page of a root) ---- */
short refcount = 2;	/* the MMU's own + vCPU 0's */
bool invalid = 0;
bool scheduled = 0;	/* scheduled_to_zap */
bool populated = 1;	/* the tree holds entries */
bool on_list = 1;	/* linked on mmu->roots */
bool freed = 0;		/* memory given back (pt_free_page) */
byte nfree = 0;		/* times freed */

/* ---- ghosts ---- */
bool mmu_ref = 1;	/* the MMU still holds its own reference */
byte refs_held = 2;	/* references held by someone: MMU, vCPUs, iterators */
byte finished = 0;	/* users that returned */

/* ---- locks and RCU ----
 * mmu_lock: `readers` counts the threads inside a read-locked section of
 * several steps.  A write-locked section is always one step here
 * (roots_invalidate), taken only when readers == 0, and so is a read-
 * locked section of one step, which therefore needs no count.  list_lock:
 * both of its sections (get_valid_root's lookup, root_free's unlink) are
 * one step each, which is their mutual exclusion. */
byte readers = 0;	/* mmu_lock: readers inside */
bool in_cs[NRCU];	/* inside an RCU read-side section */
byte cb_pending = 0;	/* call_rcu callbacks queued, not yet run */

inline read_lock()        { readers++ }
inline read_unlock()      { readers-- }
inline rcu_read_lock(s)   { in_cs[s] = 1 }
inline rcu_read_unlock(s) { in_cs[s] = 0 }

/* root.c:root_get: refcount_inc_not_zero (its CAS loop as one step). */
inline root_get(ok) {
	atomic {
		assert(!freed);				/* [uaf] */
		if
		:: refcount > 0 -> refcount++; refs_held++; ok = 1
		:: else -> ok = 0
		fi
	}
}

/* pt.c:pt_free_page, run by the RCU callback (or at once). */
inline do_free() {
	atomic {
		assert(nfree == 0);			/* [double-free] */
		nfree++;
		freed = 1
	}
}

/* root.c:root_free: the last put.  One step: its assertions read fields
 * nobody writes any more (the root is invalid and zapped), list_lock is
 * held around the unlink alone, and call_rcu only queues. */
inline root_free() {
	atomic {
		assert(refs_held == 0);			/* [free-held] */
		assert(invalid);			/* [last-valid] */
		assert(!populated);			/* [empty] */
		on_list = 0;	/* tdp_rcu_list_del under list_lock */
#ifdef VARIANT_FREE_NO_GRACE
		do_free()
#else
		cb_pending++	/* pt_free_page_rcu -> tdp_call_rcu */
#endif
	}
}

/* root.c:root_put.  @old, @last: the caller's scratch locals. */
inline root_put(old, last) {
#ifdef VARIANT_DEC_NOT_ONE
	/* put_dec_not_one_buggy: decrement unless the count is 1 ... */
	atomic {
		assert(!freed);				/* [uaf] */
		refs_held--;
		if
		:: refcount != 1 -> refcount--; last = 0
		:: else -> last = 1
		fi
	}
	if
	:: last ->
		/* ... and if it was 1, force it to 0: a get may have come in
		 * between, and its reference is wiped out here. */
		refcount = 0;
		root_free()
	:: else
	fi
#else
	atomic {
		assert(!freed);				/* [uaf] */
		refs_held--;
		old = refcount;
		refcount--;
		assert(old > 0)				/* [underflow] */
	}
	if
	:: old == 1 -> root_free()
	:: else
	fi
#endif
}

/* The iterator's put of the previous root, in root.c:root_next. */
inline iter_put(old, last) {
#ifdef VARIANT_PUT_LEAK
	/* INJ_ROOT_LEAK_AFTER_YIELD: decrement, never free */
	atomic {
		assert(!freed);				/* [uaf] */
		refs_held--;
		refcount--
	}
#else
	root_put(old, last)
#endif
}

/*
 * Steps.  Each atomic block below is one step of the model.  Where a C
 * sequence is one block, it is because it is a lock acquisition (which
 * may be delayed to just before what follows), at most one access to
 * shared state that others change concurrently, and releases (which may
 * be done early): Lipton's reduction, so no behaviour of the C code is
 * lost.  An RCU read_lock is an acquisition, its unlock a release.
 */

proctype vcpu(byte id)
{
	bool have = (id == 0);	/* vCPU 0 allocated the root */
	bool ok, last;
	short old;

	if
	:: !have ->
		/* vcpu_load_roots: vm_walk_lock (read), root_get_or_alloc:
		 * list_lock, get_valid_root; invalid and the list are stable
		 * under both locks, the refcount is not */
		atomic {
			if
			:: on_list ->
				assert(!freed);			/* [uaf] */
				if
				:: !invalid ->
					root_get(ok);
					assert(ok);		/* [get-valid] */
					have = ok
				:: else	/* would allocate another root */
				fi
			:: else
			fi
		}
	:: else
	fi;
	if
	:: have ->
		/* guest mode: hw.c walks root->spt, no lock, no RCU */
		assert(!freed);					/* [uaf] */
		/* a fault: fault_lock (read), retry if the root is invalid,
		 * else tdp_mmu_map */
		atomic {
			assert(!freed);				/* [uaf] */
			if
			:: !invalid -> populated = 1
			:: else
			fi
		}
		/* vcpu_drop_roots: vm_walk_lock (read), root_put */
		read_lock();
		root_put(old, last);
		atomic { read_unlock(); finished++ }
	:: else -> finished++
	fi
}

proctype invalidate_and_zap(byte id)
{
	byte s = id + 1;	/* this thread's RCU slot */
	bool got, took, v, last;
	short old;

	/* roots_invalidate: the write lock; for_each_root_locked (the write
	 * lock pins the list); if valid: schedule the zap, invalidate */
#ifdef VARIANT_INVALIDATE_CHECK_THEN_ACT
	/* the check in an earlier section (an RCU walk of the list) ... */
	atomic {
		if
		:: on_list ->
			assert(!freed);				/* [uaf] */
			v = invalid
		:: else -> v = 1
		fi
	}
	/* ... the store in the write-locked walk, without checking again */
	atomic {
		readers == 0 ->
		if
		:: on_list && !v ->
			assert(!freed);				/* [uaf] */
			scheduled = 1;
			invalid = 1
		:: else
		fi
	}
#else
	atomic {
		readers == 0 ->
		if
		:: on_list ->
			assert(!freed);				/* [uaf] */
			if
			:: !invalid -> scheduled = 1; invalid = 1
			:: else
			fi
		:: else
		fi
	}
#endif

	/* tdp_mmu_zap_invalidated_roots(shared): read lock; root_next(NULL):
	 * an RCU walk of the list, then root_get */
	atomic { read_lock(); rcu_read_lock(s); v = on_list }
	if
	:: v -> root_get(got)
	:: else -> got = 0
	fi;
	rcu_read_unlock(s);
	if
	:: got ->
		/* exactly one zapper takes each scheduled root */
#ifdef VARIANT_ZAP_TAKE_CHECK_THEN_ACT
		atomic { assert(!freed); took = scheduled }	/* [uaf] */
		if
		:: took -> assert(!freed); scheduled = 0	/* [uaf] */
		:: else
		fi;
#else
		atomic {
			assert(!freed);				/* [uaf] */
			took = scheduled;
			scheduled = 0
		}
#endif
		if
		:: took ->
			/* zap_root: every entry, inside RCU, with a reference */
			atomic { assert(!freed); populated = 0 }	/* [uaf] */
			/* only now may the MMU's own reference go */
			atomic {
				assert(mmu_ref);		/* [mmu-ref-twice] */
				mmu_ref = 0
			}
			root_put(old, last)
		:: else
		fi;
		/* root_next(root): reads root->link.next under RCU (the
		 * put's own check covers it: freed never goes back to 0),
		 * then puts the root */
		iter_put(old, last)
	:: else
	fi;
	atomic { read_unlock(); finished++ }
}

proctype rcu_reader()
{
	bool v;

	/* rcu_read_lock, the first list entry */
	atomic { rcu_read_lock(0); v = on_list }
	if
	:: v ->
		/* root->as_id, invalid, mirror; then (valid) the walk of
		 * root->spt in age_root */
		atomic { assert(!freed); v = invalid }		/* [uaf] */
		if
		:: !v -> assert(!freed)				/* [uaf] */
		:: else
		fi
	:: else
	fi;
	atomic { rcu_read_unlock(0); finished++ }
}

/* A grace period, as liburcu waits for one: each slot in turn must be
 * seen outside a section (a section open when the callback was queued
 * has then ended; waiting for later ones too only delays the free). */
active proctype rcu_gp()
{
end:
	do
	:: cb_pending > 0 ->
		!in_cs[0];
		!in_cs[1];
		!in_cs[2];
		atomic { do_free(); cb_pending-- }
	od
}

active proctype end_check()
{
	atomic { finished == NUSERS && cb_pending == 0 };
	assert(nfree == 1 || refs_held > 0);			/* [no-leak] */
	assert((nfree == 1) == (invalid && refcount == 0));	/* [freed-iff] */
}

active proctype i3_monitor()
{
end:
	atomic {
		!(invalid || (mmu_ref && refcount >= 1)) || refcount < 0 ->
		assert(refcount >= 0);				/* [underflow] */
		assert(invalid || (mmu_ref && refcount >= 1))	/* [i3] */
	}
}

init
{
	atomic {
		run vcpu(0);
		run vcpu(1);
		run invalidate_and_zap(0);
		run invalidate_and_zap(1);
		run rcu_reader()
	}
}

ltl no_leak { [] ((refs_held == 0) -> <> (nfree == 1)) }
