/* semdump: a table of the system's System V semaphore sets, read through semctl: id, key, number of
   semaphores, each one's value, and the processes waiting on each (waiting for an increase / for zero). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
	struct seminfo *__buf;
};

#ifndef SEM_STAT_ANY
#define SEM_STAT_ANY SEM_STAT
#endif

int main(void)
{
	struct seminfo info;
	union semun arg = {.__buf = &info};
	int max = semctl(0, 0, SEM_INFO, arg);
	if (max < 0) {
		fprintf(stderr, "semdump: semctl(SEM_INFO): %s\n", strerror(errno));
		return 1;
	}
	printf("%-10s %-10s %-5s %-24s %s\n", "SEMID", "KEY", "NSEMS", "VALUES", "WAITING(N/Z)");
	for (int i = 0; i <= max; i++) {
		struct semid_ds ds;
		arg.buf = &ds;
		int id = semctl(i, 0, SEM_STAT_ANY, arg);
		if (id < 0)
			continue;
		char values[256] = "", waiting[256] = "";
		size_t vl = 0, wl = 0;
		for (unsigned long s = 0; s < ds.sem_nsems; s++) {
			const char *sep = s ? "," : "";
			int v = semctl(id, (int)s, GETVAL);
			int nc = semctl(id, (int)s, GETNCNT);
			int zc = semctl(id, (int)s, GETZCNT);
			if (vl < sizeof values)
				vl += (size_t)snprintf(values + vl, sizeof values - vl, "%s%d", sep, v);
			if (wl < sizeof waiting)
				wl += (size_t)snprintf(waiting + wl, sizeof waiting - wl, "%s%d/%d", sep, nc, zc);
		}
		printf("%-10d 0x%08x %-5lu %-24s %s\n", id, (unsigned)ds.sem_perm.__key, (unsigned long)ds.sem_nsems,
		       values, waiting);
	}
	return 0;
}
