#include <stdio.h>
#include <string.h>
#include <tdpmmu.h>

int main(void)
{
	struct tdp_host *host;
	struct tdp_vm *vm;
	struct tdp_vcpu *cpu;
	struct tdp_stats st;
	uint64_t hva;
	char buf[32] = "hello, guest";

	if (tdp_host_create(NULL, &host) ||
	    tdp_host_mmap(host, 64 << 20, TDP_PROT_READ | TDP_PROT_WRITE,
			  TDP_HUGE_2M, 0, &hva) ||
	    tdp_vm_create(host, NULL, &vm))
		return 1;
	struct tdp_memslot slot = { .slot = 0, .gpa = 1 << 30,
				    .size = 64 << 20, .hva = hva };
	if (tdp_vm_set_memslot(vm, &slot) || tdp_vcpu_create(vm, 0, &cpu))
		return 1;
	tdp_vcpu_write(cpu, (1 << 30) + 100, buf, sizeof(buf));
	memset(buf, 0, sizeof(buf));
	tdp_host_read(host, hva + 100, buf, sizeof(buf));   /* host view */
	tdp_vm_get_stats(vm, &st);
	printf("%s: %llu fault(s), %llu x 2m mapping(s)\n", buf,
	       (unsigned long long)st.pf_fixed,
	       (unsigned long long)st.pages_2m);
	tdp_vcpu_destroy(cpu);
	tdp_vm_destroy(vm);
	tdp_host_destroy(host);
	return strcmp(buf, "hello, guest") != 0;
}
