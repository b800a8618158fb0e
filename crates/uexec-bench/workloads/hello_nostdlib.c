/*
 * hello_nostdlib: hello world with no libc at all, built -static -nostdlib. Two system
 * calls (write, exit_group) from _start, so that what is left is the kernel's exec (or
 * the loader's work) and nothing else.
 */

static const char msg[] = "hello, world\n";

static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

__attribute__((noreturn)) void _start(void)
{
	long n = sys3(1 /* write */, 1, (long)msg, sizeof msg - 1);
	sys3(231 /* exit_group */, n == (long)(sizeof msg - 1) ? 0 : 1, 0, 0);
	__builtin_unreachable();
}
