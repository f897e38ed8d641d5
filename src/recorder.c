/* SPDX-License-Identifier: MIT */
/* TEMPORARY link shim until the recorder lands: overwrite this file. */
#include "recorder.h"

#include <errno.h>
#include <stdio.h>

int recorder_open(const char *path, struct export *exp, struct recorder **out,
		  char *err, size_t errlen)
{
	(void)path;
	(void)exp;
	(void)out;
	snprintf(err, errlen, "recording is not built yet");
	return -ENOSYS;
}
void recorder_recv(struct recorder *rec, uint32_t conn,
		   const struct nbd_request *nr, const void *payload)
{
}
void recorder_reply(struct recorder *rec, uint32_t conn,
		    const struct nbd_request *nr, int status)
{
}
void recorder_sync_begin(struct recorder *rec)
{
}
void recorder_sync_end(struct recorder *rec, int res)
{
}
void recorder_mark(struct recorder *rec, const char *label)
{
}
int recorder_ctl_fd(struct recorder *rec)
{
	return -1;
}
void recorder_ctl_handle(struct recorder *rec)
{
}
int recorder_close(struct recorder *rec)
{
	return 0;
}
