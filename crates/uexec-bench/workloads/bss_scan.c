/*
 * bss_scan: a 256 MiB bss, touched page by page in the pattern argv[1] names.
 *
 *   bss_scan PATTERN [rmw]     PATTERN: seq, sparse, stride, backward, random
 *
 *   seq       every page, in order
 *   sparse    one page in 64, in order
 *   stride    every 8th page (0, 8, 16, ...), then the same with offsets 1, 2, ... 7
 *   backward  every page, from the last to the first
 *   random    every page exactly once, in the order of a fixed permutation (Fisher-Yates
 *             shuffle driven by xorshift64 with a fixed seed)
 *
 * Each visit writes one byte of the page and reads it back (with `rmw`, adds to the byte
 * instead, so that the page's first access is a read, as in `x += ...`); the program prints the
 * number of pages visited and a checksum, the same for every run, so that the benchmark
 * can check that a loader ran it correctly. Exit status 2 on a bad pattern.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PAGE 4096u
#define SIZE (256u << 20)
#define NPAGES (SIZE / PAGE)

static unsigned char area[SIZE] __attribute__((aligned(4096)));
/* Only the random pattern touches this (256 KiB, 64 pages of bss of its own). */
static uint32_t order[NPAGES];

static uint64_t sum;
static unsigned long visits;
static int rmw;

static inline void visit(uint32_t p)
{
	volatile unsigned char *b = &area[(size_t)p * PAGE + (p % 64) * 8];
	if (rmw)
		*b += (unsigned char)(p * 31 + 7);
	else
		*b = (unsigned char)(p * 31 + 7);
	sum = sum * 1000003u + *b;
	visits++;
}

int main(int argc, char **argv)
{
	const char *pat = argc > 1 ? argv[1] : "seq";
	rmw = argc > 2 && strcmp(argv[2], "rmw") == 0;
	if (strcmp(pat, "seq") == 0) {
		for (uint32_t p = 0; p < NPAGES; p++)
			visit(p);
	} else if (strcmp(pat, "sparse") == 0) {
		for (uint32_t p = 0; p < NPAGES; p += 64)
			visit(p);
	} else if (strcmp(pat, "stride") == 0) {
		for (uint32_t off = 0; off < 8; off++)
			for (uint32_t p = off; p < NPAGES; p += 8)
				visit(p);
	} else if (strcmp(pat, "backward") == 0) {
		for (uint32_t p = NPAGES; p-- > 0;)
			visit(p);
	} else if (strcmp(pat, "random") == 0) {
		uint64_t x = 0x2545f4914f6cdd1dull;
		for (uint32_t i = 0; i < NPAGES; i++)
			order[i] = i;
		for (uint32_t i = NPAGES - 1; i > 0; i--) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			uint32_t j = (uint32_t)(x % (i + 1));
			uint32_t t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		for (uint32_t i = 0; i < NPAGES; i++)
			visit(order[i]);
	} else {
		fprintf(stderr, "bss_scan: unknown pattern %s (seq, sparse, stride, backward, random)\n", pat);
		return 2;
	}
	printf("%s pages=%lu checksum=%016llx\n", pat, visits, (unsigned long long)sum);
	return 0;
}
