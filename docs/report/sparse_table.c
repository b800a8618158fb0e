/*
 * sparse_table: a program that uses a small part of a large initialised image.
 *
 * A 32 MiB table (initialised, so it is in the file; gcc puts the const volatile array in .data, the
 * writable file-backed segment: 8,192 pages) of which the program reads one byte in every 16th page
 * (512 pages, 2 MiB), then prints the sum. volatile keeps gcc from folding the reads into a constant. Natively and
 * under apager each read of a file page that is in the page cache is served with the kernel's
 * fault-around (up to 16 pages mapped per fault), so nearly the whole table becomes resident; under
 * dpager each first touch makes only its own page accessible. Used by docs/report/memory.sh.
 */
#include <stdio.h>

#define PAGE 4096
#define PAGES 8192
#ifndef STEP
#define STEP 16 /* memory.sh also builds it with -DSTEP=64, 256, 512 */
#endif

/* Non-zero at both ends so that the whole table is initialised data in the file, not bss. */
static const volatile unsigned char table[PAGES * PAGE] = {[0] = 1, [PAGES * PAGE - 1] = 2};

int main(void)
{
	unsigned long sum = 0;
	for (unsigned long p = 0; p < PAGES; p += STEP)
		sum += table[p * PAGE + 1] + 1;
	printf("read %d pages of %d, sum %lu\n", PAGES / STEP, PAGES, sum);
	return 0;
}
