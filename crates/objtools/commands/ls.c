/* ls [DIR]: the entries of DIR (default "."), one per line, sorted bytewise, directories marked with a
   trailing '/'; "." and ".." are left out. An error line on stderr and status 1 if DIR cannot be read. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_dir(int dirfd_, const struct dirent *e)
{
	if (e->d_type != DT_UNKNOWN && e->d_type != DT_LNK)
		return e->d_type == DT_DIR;
	struct stat st; /* unknown type, or a link: follow it as ls -F does not, but as a listing reader expects */
	return fstatat(dirfd_, e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : ".";
	DIR *d = opendir(path);
	if (!d) {
		fprintf(stderr, "ls: cannot open directory '%s': %s\n", path, strerror(errno));
		return 1;
	}
	size_t n = 0, cap = 64;
	char **names = malloc(cap * sizeof *names);
	struct dirent *e;
	while (names && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n == cap) {
			char **more = realloc(names, (cap *= 2) * sizeof *names);
			if (!more)
				break;
			names = more;
		}
		size_t len = strlen(e->d_name);
		char *s = malloc(len + 2);
		if (!s)
			break;
		memcpy(s, e->d_name, len);
		s[len] = is_dir(dirfd(d), e) ? '/' : '\0';
		s[len + 1] = '\0';
		names[n++] = s;
	}
	closedir(d);
	if (!names) {
		fprintf(stderr, "ls: out of memory\n");
		return 1;
	}
	qsort(names, n, sizeof *names, by_name);
	for (size_t i = 0; i < n; i++) {
		puts(names[i]);
		free(names[i]);
	}
	free(names);
	return 0;
}
