/* Refused connects as fast as one core allows: each makes two resets (sent and received).
 * Usage: gen_refused ADDR PORT SECONDS [INTERVAL_US]; prints the number of connects. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s ADDR PORT SECONDS [INTERVAL_US]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    double end = now() + atof(argv[3]);
    long interval = argc > 4 ? atol(argv[4]) : 0;
    unsigned long n = 0;
    while (now() < end) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0)
            return 1;
        connect(s, (struct sockaddr *)&sa, sizeof(sa));  /* ECONNREFUSED is the point */
        close(s);
        n++;
        if (interval)
            usleep(interval);
    }
    printf("%lu\n", n);
    return 0;
}
