/*
 * malloc_maps: where a freshly loaded program's malloc gets its memory.
 *
 * Prints the end of the bss (_end) and the program break before and after 300
 * small allocations of 1000 bytes (glibc serves them from the brk heap, which
 * it grows with brk(2) right after the bss), then the addresses of two blocks above
 * glibc's mmap threshold (128 KiB by default: each gets an mmap of its own),
 * and finally the program's own /proc/self/maps, so that one run shows both
 * the heap and the large blocks among the loader-built mappings.
 * Used by docs/report/malloc.sh for docs/REPORT.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char _end[];

int main(void)
{
	char *before = sbrk(0);
	enum { SMALL = 300 };
	static char *small[SMALL];
	for (int i = 0; i < SMALL; i++) {
		small[i] = malloc(1000);
		memset(small[i], i + 1, 1000);
	}
	char *after = sbrk(0);
	size_t big_len = 1 << 20, huge_len = 64 << 20;
	char *big = malloc(big_len);
	char *huge = malloc(huge_len);
	memset(big, 7, big_len);
	for (size_t i = 0; i < huge_len; i += 4096)
		huge[i] = 9;

	printf("_end (end of bss)         %p\n", (void *)_end);
	printf("sbrk(0) before malloc     %p\n", (void *)before);
	printf("300 x malloc(1000)        first %p, last %p\n", (void *)small[0],
	       (void *)small[SMALL - 1]);
	printf("sbrk(0) after them        %p (+%ld KiB)\n", (void *)after,
	       (long)(after - before) / 1024);
	printf("malloc(1 MiB)             %p\n", (void *)big);
	printf("malloc(64 MiB)            %p\n", (void *)huge);
	printf("--- /proc/self/maps\n");
	fflush(stdout);
	FILE *maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return 1;
	char line[512];
	while (fgets(line, sizeof line, maps))
		fputs(line, stdout);
	fclose(maps);
	free(huge);
	free(big);
	for (int i = 0; i < SMALL; i++)
		free(small[i]);
	return 0;
}
