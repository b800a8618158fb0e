/*
 * hello: the smallest useful libc program, built static against glibc and, when musl-gcc
 * exists, against musl. What it measures is the cost of starting and ending a process:
 * the loader's own start-up, mapping the image, building the stack, libc's start-up.
 */
#include <stdio.h>

int main(void)
{
	puts("hello, world");
	return 0;
}
