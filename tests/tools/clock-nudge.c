/* SPDX-License-Identifier: MIT */
/* clock-nudge: set CLOCK_REALTIME to its own current value. The time does not
 * change (a few microseconds at most), but the kernel reports a clock set to
 * every TFD_TIMER_CANCEL_ON_SET timer: how a test checks that the agent
 * re-arms its boundaries after a clock jump without moving the host's clock. */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <time.h>

int main(void)
{
	struct timespec now;

	if (clock_gettime(CLOCK_REALTIME, &now) < 0 || clock_settime(CLOCK_REALTIME, &now) < 0) {
		fprintf(stderr, "clock-nudge: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
