/* SPDX-License-Identifier: MIT */
/*
 * host/proc.c - the process backend (TDP_HOST_PROCESS): the embedded pool
 * with its frames in a memfd and its hva -> pfn mapping mirrored into the
 * real address space of this process, so that an hva is a pointer the
 * program can use.
 *
 * Memory:
 *  - The frames are the pages of one memfd, pfn N at offset N * 4096; the
 *    pool maps the whole memfd shared as its frame base (the "physical"
 *    view the VMs and the copies of tdp_host_read/write use).
 *  - tdp_host_mmap reserves the hva range in the process (PROT_NONE,
 *    aligned to the folio size) and the pool takes it as a fixed range.
 *  - The mirror (pool_mirror_ops, called by the pool with its mmap lock
 *    held for write wherever hva -> pfn changes) maps each run of present
 *    pages with consecutive pfns shared from the memfd at the pfn's
 *    offset, with the VMA's protection (read and write; execute is the
 *    guest's business), and each run of pages that are not present (never
 *    touched, swapped out, or being migrated or swapped out right now:
 *    @block) as anonymous memory registered with userfaultfd in
 *    missing-page mode.  Guest-private memory stays a PROT_NONE
 *    reservation: the host never touches it.
 *  - A touch of a page that is not present arrives here as a userfaultfd
 *    message; this backend's server thread takes the mmap lock for write, faults
 *    the page in as host_gup would (allocate, or swap in), which maps it
 *    shared through the mirror, and wakes the toucher.  So a touch during
 *    a migration or a swap-out waits until the operation is over, as a
 *    Linux page fault waits on a migration entry.
 *  - The program's own writes through its pointers are not seen by the
 *    host, so every page is dirty for reclaim (page_dirty): swap-out always
 *    writes the page.  Freed frames are poisoned as in the pool; a new
 *    frame is zeroed by punching it out of the memfd (pool_frames.c).
 *
 * Locking: the mirror runs under the pool's mmap lock (write).  Of the
 * backend's two threads, the reader takes only the queue's mutex (never
 * the mmap lock: see proc_reader) and the server takes the queue's mutex
 * and, without it, the mmap lock for write.  Lifetime: the threads and
 * the real mappings live from proc_host_create until the pool's destroy
 * calls proc_fini.
 */
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "host/pool_internal.h"

/* Touches waiting to be served, in the order the reader got them. */
struct touch {
	uint64_t addr;
	bool write;
};

struct fault_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct touch *q; /* a ring of cap entries */
	size_t head, n, cap;
	bool stop;
};

/* hva ranges that tdp_host_munmap gave up, still reserved (PROT_NONE):
 * nothing else in the process takes them while the host lives, so a
 * TDP_MAP_FIXED mmap can map there again (the torture does).  Under the
 * pool's mmap lock. */
struct range {
	uint64_t start, end;
};

struct proc {
	struct pool pool; /* first: to_pool, and pool_destroy frees it */
	struct range *retired;
	size_t nr_retired, cap_retired;
	int uffd;
	int stop_fd; /* eventfd: the reader's stop signal */
	pthread_t reader, server;
	struct fault_queue fq;
};

static struct proc *to_proc(struct pool *h)
{
	TDP_ASSERT(h->memfd >= 0);
	return (struct proc *)h;
}

static int real_prot(unsigned prot)
{
	int p = 0;

	if (prot & TDP_PROT_READ)
		p |= PROT_READ;
	if (prot & TDP_PROT_WRITE)
		p |= PROT_READ | PROT_WRITE;
	return p;
}

/* Is [start, end) covered by retired ranges? */
static bool retired_covers(struct proc *p, uint64_t start, uint64_t end)
{
	while (start < end) {
		size_t i;

		for (i = 0; i < p->nr_retired; i++)
			if (p->retired[i].start <= start &&
			    start < p->retired[i].end)
				break;
		if (i == p->nr_retired)
			return false;
		start = p->retired[i].end;
	}
	return true;
}

/* Room for one more retired range.  -ENOMEM if there is none. */
static int retired_grow(struct proc *p)
{
	size_t cap = p->cap_retired ? 2 * p->cap_retired : 16;
	struct range *r;

	if (p->nr_retired < p->cap_retired)
		return 0;
	r = realloc(p->retired, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	p->retired = r;
	p->cap_retired = cap;
	return 0;
}

/* Take [start, end) out of the retired ranges.  -ENOMEM if a split found
 * no room (nothing changed then). */
static int retired_remove(struct proc *p, uint64_t start, uint64_t end)
{
	if (retired_grow(p))
		return -ENOMEM;
	for (size_t i = 0; i < p->nr_retired; i++) {
		struct range *r = &p->retired[i];

		if (r->end <= start || end <= r->start)
			continue;
		if (r->start < start && end < r->end) {
			p->retired[p->nr_retired++] =
				(struct range){end, r->end};
			r->end = start;
		} else if (r->start < start) {
			r->end = start;
		} else if (end < r->end) {
			r->start = end;
		} else {
			*r = p->retired[--p->nr_retired];
			i--;
		}
	}
	return 0;
}

static int proc_reserve(struct pool *h, uint64_t len, uint64_t align,
			bool fixed, uint64_t *hva)
{
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	struct proc *p = to_proc(h);
	uint8_t *m, *a;

	if (fixed) {
		if (retired_covers(p, *hva, *hva + len))
			/* our own reservation, PROT_NONE already */
			return retired_remove(p, *hva, *hva + len);
		m = mmap((void *)(uintptr_t)*hva, len, PROT_NONE,
			 flags | MAP_FIXED_NOREPLACE, -1, 0);
		if (m == MAP_FAILED)
			return errno == EEXIST ? -EEXIST : -ENOMEM;
		if ((uintptr_t)m != *hva) { /* a kernel without NOREPLACE */
			munmap(m, len);
			return -EEXIST;
		}
		return 0;
	}
	if (len > UINT64_MAX - align)
		return -ENOMEM;
	m = mmap(NULL, len + align, PROT_NONE, flags, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	a = (uint8_t *)ALIGN_UP((uintptr_t)m, align);
	if (a > m)
		munmap(m, (size_t)(a - m));
	if (m + len + align > a + len)
		munmap(a + len, (size_t)(m + len + align - (a + len)));
	*hva = (uintptr_t)a;
	return 0;
}

static void proc_unreserve(struct pool *h, uint64_t hva, uint64_t len)
{
	(void)h;
	munmap((void *)(uintptr_t)hva, len);
}

/*
 * The mirror changes the mapping of memory that other threads may be
 * touching at that moment; the kernel orders each touch after the change
 * (a touch of a missing page waits in userfaultfd until the server wakes
 * it).  ThreadSanitizer's mmap interceptor takes the call for a write of
 * the whole range, which it would then report against every concurrent
 * touch: the mirror makes the system calls itself, which TSan does not
 * see (and which change no byte of guest memory).
 */
static void *sys_mmap(void *addr, uint64_t len, int prot, int flags, int fd,
		      off_t off)
{
	return (void *)syscall(SYS_mmap, addr, (size_t)len, prot, flags, fd,
			       off);
}

static void *sys_mremap(void *old, uint64_t len, void *addr)
{
	return (void *)syscall(SYS_mremap, old, (size_t)len, (size_t)len,
			       MREMAP_MAYMOVE | MREMAP_FIXED, addr);
}

static void map_or_die(void *want, void *got, uint64_t len)
{
	TDP_ASSERT_MSG(got == want,
		       "process backend: cannot map %llu bytes at %p (%s); "
		       "too many mappings? (vm.max_map_count)",
		       (unsigned long long)len, want, strerror(errno));
}

/* Map [start, end) of @v: present pages from @pfn on, else missing. */
static void map_run(struct proc *p, const struct host_vma *v, uint64_t start,
		    uint64_t end, bool present, uint64_t pfn)
{
	void *a = (void *)(uintptr_t)start;
	int prot = real_prot(v->prot);
	void *got;

	if (present) {
		got = sys_mmap(a, end - start, prot, MAP_SHARED | MAP_FIXED,
			       p->pool.memfd, (off_t)(pfn << HOST_PAGE_SHIFT));
		map_or_die(a, got, end - start);
		return;
	}
	if (!prot) {
		got = sys_mmap(a, end - start, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
				       MAP_NORESERVE,
			       -1, 0);
		map_or_die(a, got, end - start);
		return;
	}
	/* Registered before it takes the place of the old mapping (mremap
	 * moves it there in one step), so no touch ever reaches a missing
	 * page that userfaultfd does not catch.  Mapping it in place and
	 * registering it afterwards left a window in which a touch got a
	 * private zero page (test_touch_under_churn read 0). */
	{
		struct uffdio_register r = {
			.range = {.len = end - start},
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		void *scratch = mmap(NULL, end - start, prot,
				     MAP_PRIVATE | MAP_ANONYMOUS |
					     MAP_NORESERVE,
				     -1, 0);

		TDP_ASSERT_MSG(scratch != MAP_FAILED,
			       "process backend: mmap: %s", strerror(errno));
		r.range.start = (uintptr_t)scratch;
		TDP_ASSERT_MSG(!ioctl(p->uffd, UFFDIO_REGISTER, &r),
			       "process backend: userfaultfd register: %s",
			       strerror(errno));
		got = sys_mremap(scratch, end - start, a);
		map_or_die(a, got, end - start);
	}
}

static void proc_sync(struct pool *h, uint64_t start, uint64_t end, bool block)
{
	struct proc *p = to_proc(h);

	for (size_t i = vma_lower(h, start);
	     i < h->nr_vmas && h->vmas[i].start < end; i++) {
		const struct host_vma *v = &h->vmas[i];
		uint64_t a = start > v->start ? start : v->start;
		uint64_t b = end < v->end ? end : v->end;

		if (v->guest_private)
			continue;
		while (a < b) {
			uint64_t e = block ? 0 : pte_get(h, a);
			bool present = pte_present(e);
			uint64_t run = a + PAGE_SIZE_;

			while (run < b) {
				uint64_t f = block ? 0 : pte_get(h, run);

				if (pte_present(f) != present ||
				    (present &&
				     pte_pfn(f) != pte_pfn(e) +
							   ((run - a) >>
							    HOST_PAGE_SHIFT)))
					break;
				run += PAGE_SIZE_;
			}
			map_run(p, v, a, run, present, pte_pfn(e));
			a = run;
		}
	}
}

/* munmap: the range becomes PROT_NONE (a touch gets SIGSEGV, as after
 * munmap(2)) and stays reserved for this host (struct range). */
static void proc_unmap(struct pool *h, uint64_t start, uint64_t end)
{
	struct proc *p = to_proc(h);
	void *a = (void *)(uintptr_t)start;

	map_or_die(a,
		   sys_mmap(a, end - start, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
				    MAP_NORESERVE,
			    -1, 0),
		   end - start);
	if (retired_grow(p)) { /* give it back to the process instead */
		munmap(a, end - start);
		return;
	}
	p->retired[p->nr_retired++] = (struct range){start, end};
}

static void proc_fini(struct pool *h)
{
	struct proc *p = to_proc(h);
	uint64_t one = 1;

	TDP_ASSERT(write(p->stop_fd, &one, sizeof(one)) == sizeof(one));
	pthread_join(p->reader, NULL);
	pthread_mutex_lock(&p->fq.lock);
	p->fq.stop = true;
	pthread_cond_signal(&p->fq.cond);
	pthread_mutex_unlock(&p->fq.lock);
	pthread_join(p->server, NULL);
	free(p->fq.q);
	pthread_cond_destroy(&p->fq.cond);
	pthread_mutex_destroy(&p->fq.lock);
	for (size_t i = 0; i < h->nr_vmas; i++)
		munmap((void *)(uintptr_t)h->vmas[i].start,
		       h->vmas[i].end - h->vmas[i].start);
	for (size_t i = 0; i < p->nr_retired; i++)
		munmap((void *)(uintptr_t)p->retired[i].start,
		       p->retired[i].end - p->retired[i].start);
	free(p->retired);
	close(p->uffd);
	close(p->stop_fd);
}

static const struct pool_mirror_ops proc_mirror_ops = {
	.reserve = proc_reserve,
	.unreserve = proc_unreserve,
	.sync = proc_sync,
	.unmap = proc_unmap,
	.fini = proc_fini,
};

/* A touch of the page at @addr that is not present: fault it in (which
 * maps it through the mirror) and wake the toucher.  A page that vanished
 * or cannot be faulted in is left as it is: the toucher faults again
 * (and gets SIGSEGV if the range was unmapped). */
static void proc_fault(struct proc *p, uint64_t addr, bool write)
{
	struct pool *h = &p->pool;
	uint64_t hva = ALIGN_DOWN(addr, PAGE_SIZE_);
	struct uffdio_range r = {.start = hva, .len = PAGE_SIZE_};
	struct host_vma *v;

	TDP_ASSERT(!mmap_write_lock(h));
	v = vma_find(h, hva);
	if (v && !v->guest_private && populate_page(h, v, hva) == 0) {
		uint64_t pfn = pte_pfn(pte_get(h, hva));

		/* a touch by the process is a host access */
		frame_set_accessed(h, pfn, 1);
		if (write)
			frame_set_dirty(h, pfn, 1);
	}
	mmap_write_unlock(h);
	ioctl(p->uffd, UFFDIO_WAKE, &r);
}

/*
 * Two threads.  The reader only reads messages and queues the touches: it
 * never waits for the mmap lock, because the mremap of map_run waits,
 * under that lock, until its UFFD_EVENT_REMAP message has been read.  The
 * server takes the queue in order and serves each touch under the lock.
 */
static void *proc_reader(void *arg)
{
	struct proc *p = arg;
	struct fault_queue *fq = &p->fq;
	struct pollfd fds[2] = {{.fd = p->uffd, .events = POLLIN},
				{.fd = p->stop_fd, .events = POLLIN}};

	for (;;) {
		struct uffd_msg msg;

		if (poll(fds, 2, -1) < 0)
			continue; /* EINTR */
		if (fds[1].revents)
			return NULL;
		if (read(p->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue; /* EAGAIN: woken for nothing */
		/* UFFD_EVENT_REMAP: map_run's own (or the program's, which
		 * the rules of tdpmmu.h forbid); nothing to do once read */
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		pthread_mutex_lock(&fq->lock);
		if (fq->n == fq->cap) {
			size_t cap = fq->cap ? 2 * fq->cap : 64;
			struct touch *q = malloc(cap * sizeof(*q));

			TDP_ASSERT_MSG(q, "process backend: out of memory");
			for (size_t i = 0; i < fq->n; i++)
				q[i] = fq->q[(fq->head + i) % fq->cap];
			free(fq->q);
			fq->q = q;
			fq->cap = cap;
			fq->head = 0;
		}
		fq->q[(fq->head + fq->n) % fq->cap] = (struct touch){
			.addr = msg.arg.pagefault.address,
			.write = msg.arg.pagefault.flags &
				 UFFD_PAGEFAULT_FLAG_WRITE,
		};
		fq->n++;
		pthread_cond_signal(&fq->cond);
		pthread_mutex_unlock(&fq->lock);
	}
}

static void *proc_server(void *arg)
{
	struct proc *p = arg;
	struct fault_queue *fq = &p->fq;

	pthread_mutex_lock(&fq->lock);
	for (;;) {
		struct touch t;

		while (!fq->n && !fq->stop)
			pthread_cond_wait(&fq->cond, &fq->lock);
		if (!fq->n)
			break;
		t = fq->q[fq->head];
		fq->head = (fq->head + 1) % fq->cap;
		fq->n--;
		pthread_mutex_unlock(&fq->lock);
		proc_fault(p, t.addr, t.write);
		pthread_mutex_lock(&fq->lock);
	}
	pthread_mutex_unlock(&fq->lock);
	return NULL;
}

/* A userfaultfd, by the system call or, where that is closed to this
 * process, by /dev/userfaultfd; -1 if neither works. */
static int uffd_open(void)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_EVENT_REMAP};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return -1;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd < 0)
			return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	return fd;
}

int proc_host_create(const struct tdp_host_config *cfg, struct tdp_host **out)
{
	uint64_t bytes = cfg ? cfg->mem_bytes : 0;
	struct proc *p;
	int memfd, ret;

	if (!out || bytes > POOL_MAX)
		return -EINVAL;
	bytes = bytes ? ALIGN_UP(bytes, POOL_ALIGN) : POOL_DEFAULT;
	memfd = memfd_create("tdpmmu-guest-ram", MFD_CLOEXEC);
	if (memfd < 0)
		return -EOPNOTSUPP;
	if (ftruncate(memfd, (off_t)bytes)) {
		close(memfd);
		return -ENOMEM;
	}
	p = aligned_alloc(_Alignof(struct proc),
			  (sizeof(*p) + _Alignof(struct proc) - 1) &
				  ~(_Alignof(struct proc) - 1));
	if (!p) {
		close(memfd);
		return -ENOMEM;
	}
	memset(p, 0, sizeof(*p));
	p->uffd = uffd_open();
	if (p->uffd < 0) {
		ret = -EOPNOTSUPP;
		goto free_proc;
	}
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (p->stop_fd < 0) {
		ret = -ENOMEM;
		goto close_uffd;
	}
	pthread_mutex_init(&p->fq.lock, NULL);
	pthread_cond_init(&p->fq.cond, NULL);
	ret = pool_init(&p->pool, bytes, memfd);
	if (ret)
		goto close_stop;
	if (pthread_create(&p->reader, NULL, proc_reader, p)) {
		ret = -ENOMEM;
		goto destroy_pool;
	}
	if (pthread_create(&p->server, NULL, proc_server, p)) {
		uint64_t one = 1;

		TDP_ASSERT(write(p->stop_fd, &one, sizeof(one)) ==
			   sizeof(one));
		pthread_join(p->reader, NULL);
		ret = -ENOMEM;
		goto destroy_pool;
	}
	p->pool.mirror = &proc_mirror_ops;
	*out = &p->pool.host;
	return 0;

destroy_pool:
	/* the pool is set up: its destroy undoes it (mirror-less), closes
	 * the memfd and frees p */
	close(p->uffd);
	close(p->stop_fd);
	p->pool.host.ops->destroy(&p->pool.host);
	return ret;
close_stop:
	close(p->stop_fd);
close_uffd:
	close(p->uffd);
free_proc:
	free(p);
	close(memfd);
	return ret;
}
