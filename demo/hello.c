/* The demo program of `make demo`: prints its arguments, a line from its auxiliary vector and where its
 * program break starts, so the mapping log above it can be read against what the program sees. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char _end[];

int main(int argc, char **argv)
{
	printf("hello from %s, pid %d\n", argv[0], (int)getpid());
	for (int i = 1; i < argc; i++)
		printf("  argv[%d] = %s\n", i, argv[i]);
	printf("  AT_EXECFN = %s, AT_PLATFORM = %s\n", (char *)getauxval(AT_EXECFN),
	       (char *)getauxval(AT_PLATFORM));
	if ((char *)sbrk(0) >= _end)
		printf("  program break starts after the end of the bss\n");
	else
		printf("  program break starts below the image: for a static-pie the kernel (and uexec) moves it\n"
		       "  to ELF_ET_DYN_BASE, out of the mmap area where the image lies\n");
	return 0;
}
