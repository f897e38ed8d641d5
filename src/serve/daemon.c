/* SPDX-License-Identifier: MIT */
/*
 * daemon.c: the process of `loopd serve` (daemon.h): daemonising with a
 * readiness pipe, so that the launching process exits only once the
 * server is listening (`loopd serve ... && client` works); --user and
 * --group; the pidfile; the signals, taken synchronously by the main
 * thread only; and --exit-with-parent.
 *
 * V8. --exit-with-parent: the parent's death is delivered as SIGTERM
 *     (prctl PR_SET_PDEATHSIG).  The kernel sends it to the process, not
 *     to a thread, and SIGTERM is blocked in every thread
 *     (signals_block()), so it waits for the main thread's signalfd and
 *     the stop is that of any SIGTERM (E4).  It is set once the signals
 *     are blocked, and set again after --user/--group, because the
 *     kernel clears it when the credentials change.  After each setting,
 *     getppid() is compared with the parent seen at start: if the parent
 *     died before the setting took effect, loopd sends itself the
 *     SIGTERM the kernel would have sent, so the race has one outcome.
 *     The parent is the thread that started loopd (see nbdkit-captive(1)
 *     for parents with threads).
 */
#include "serve/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "util/log.h"

/* The write end of the readiness pipe, in the daemon until it is ready. */
static int ready_fd = -1;

int daemonise(int *status)
{
	int p[2], nul;
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0) {
		log_msg("pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		log_msg("fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		/* Parent: exit 0 once the child says it is listening. */
		close(p[1]);
		*status = read(p[0], &c, 1) == 1 ? 0 : 1;
		close(p[0]);
		return 1;
	}
	close(p[0]);
	ready_fd = p[1];
	setsid();
	nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		if (nul > 2)
			close(nul);
	}
	/* stderr stays: messages still reach the log the user chose. */
	return 0;
}

void signal_ready(void)
{
	if (ready_fd >= 0) {
		if (write(ready_fd, "r", 1) != 1)
			log_msg("cannot signal readiness: %s", strerror(errno));
		close(ready_fd);
		ready_fd = -1;
	}
}

int lookup_ids(const char *user, const char *group, struct ids *ids)
{
	char buf[16384];

	*ids = (struct ids){.user = user, .gid = getgid()};
	if (user) {
		struct passwd pwd, *pw = NULL;

		if (getpwnam_r(user, &pwd, buf, sizeof buf, &pw) != 0 || !pw) {
			log_msg("--user %s: no such user", user);
			return -1;
		}
		ids->uid = pw->pw_uid;
		ids->gid = pw->pw_gid;
	}
	if (group) {
		struct group grp, *gr = NULL;

		if (getgrnam_r(group, &grp, buf, sizeof buf, &gr) != 0 || !gr) {
			log_msg("--group %s: no such group", group);
			return -1;
		}
		ids->gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		log_msg("--user/--group: loopd must be started as root to "
			"switch to another user");
		return -1;
	}
	return 0;
}

int drop_privileges(const struct ids *ids)
{
	if ((ids->user ? initgroups(ids->user, ids->gid) : setgroups(0, NULL)) <
		    0 ||
	    setresgid(ids->gid, ids->gid, ids->gid) < 0) {
		log_msg("--group: cannot switch to group %u: %s",
			(unsigned)ids->gid, strerror(errno));
		return -1;
	}
	if (ids->user && setresuid(ids->uid, ids->uid, ids->uid) < 0) {
		log_msg("--user %s: cannot switch: %s", ids->user,
			strerror(errno));
		return -1;
	}
	if (ids->user && ids->uid != 0 && setuid(0) == 0) {
		log_msg("--user %s: root could be regained; stopping",
			ids->user);
		return -1;
	}
	log_msg("running as uid %u, gid %u", (unsigned)geteuid(),
		(unsigned)getegid());
	return 0;
}

int pidfile_write(const char *path)
{
	FILE *f = fopen(path, "w");
	int err = 0;

	if (!f)
		err = errno;
	else if (fprintf(f, "%d\n", (int)getpid()) < 0)
		err = errno;
	if (f && fclose(f) && !err)
		err = errno;
	if (err) {
		log_msg("%s: %s", path, strerror(err));
		return -1;
	}
	return 0;
}

void pidfile_remove(const char *path)
{
	unlink(path);
}

int signals_block(void)
{
	sigset_t mask;
	int sfd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		log_msg("signalfd: %s", strerror(errno));
	return sfd;
}

int parent_watch(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0) {
		log_msg("--exit-with-parent: prctl: %s", strerror(errno));
		return -1;
	}
	if (getppid() != parent) {
		/* V8: it died first; this is the signal it would have sent. */
		log_msg("--exit-with-parent: the parent (PID %d) has exited",
			(int)parent);
		kill(getpid(), SIGTERM);
	}
	return 0;
}
