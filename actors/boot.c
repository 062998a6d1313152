/* Waiting for a started actor's answer (see boot.h). */
#include "boot.h"

#include <string.h>

tr_err
tr__await_start(tr_inbox *ib, tr_pid pid,
		bool (*status_of)(const tr_received *r, tr_err *status))
{
	for (;;) {
		tr_received r;
		tr_err status;

		memset(&r, 0, sizeof(r));
		if (tr_inbox_recv(ib, -1, &r) < 0) {
			return TR_ECLOSED;
		}
		bool mine = tr_pid_eq(r.from, pid) && status_of(&r, &status);
		tr_received_fini(&r);
		if (mine) {
			return status;
		}
	}
}
