/* The sample image's only program: says who it runs as. Built static, so the
 * image needs nothing else: no shell, no /etc, no libc (a scratch image). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    gid_t groups[64];
    int n = getgroups(64, groups);
    printf("showid: uid=%d gid=%d groups=", (int)getuid(), (int)getgid());
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", (int)groups[i]);
    printf(" USER=%s HOME=%s pid=%d\n", getenv("USER") ? getenv("USER") : "-",
           getenv("HOME") ? getenv("HOME") : "-", (int)getpid());
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "NoNewPrivs", 10) || !strncmp(line, "CapEff", 6)) printf("showid: %s", line);
    if (f) fclose(f);
    printf("showid: args:");
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    return 0;
}
