/* SPDX-License-Identifier: MIT */
/* restart-bench: the baseline of bench_response.sh — a plain supervisor's
 * kill-and-restart (the equivalent of systemd's Restart=always with
 * RestartSec=0, without the envelope): it runs COMMAND, and N times kills it
 * with SIGKILL, notices the death (waitpid), starts it again and times from
 * the kill until the new process accepts on 127.0.0.1:PORT. Prints the
 * median and p95 in ms.
 *
 *   restart-bench N PORT COMMAND... */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int accepting(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r == 0;
}

static pid_t start(char **argv)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = argc > 3 ? atoi(argv[1]) : 0;
	uint16_t port = argc > 3 ? (uint16_t)atoi(argv[2]) : 0;
	double *t;
	pid_t pid;

	if (n <= 0 || port == 0) {
		fprintf(stderr, "usage: restart-bench N PORT COMMAND...\n");
		return 2;
	}
	t = calloc((size_t)n, sizeof(*t));
	pid = start(argv + 3);
	for (int tries = 0; !accepting(port); tries++) {
		if (tries > 5000)
			return 1;
		usleep(1000);
	}
	for (int i = 0; i < n; i++) {
		double t0 = now_ms();

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = start(argv + 3);
		while (!accepting(port)) {
			if (now_ms() - t0 > 5000)
				return 1;
			usleep(100);
		}
		t[i] = now_ms() - t0;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("%.2f %.2f\n", t[n / 2], t[(int)(n * 0.95)]);
	return 0;
}
