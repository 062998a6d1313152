/*
 * Public pid accessors. Threads: any (pure functions of the value).
 */
#include "runtime/pid.h"

#include <inttypes.h>
#include <stdio.h>

uint32_t
tr_pid_node(tr_pid p)
{
	return tr__pid_node(p.v);
}

uint32_t
tr_pid_slot(tr_pid p)
{
	return tr__pid_slot(p.v);
}

uint32_t
tr_pid_generation(tr_pid p)
{
	return (uint32_t)((p.v >> TR__PID_SLOT_BITS) & TR__PID_GEN_MASK);
}

char *
tr_pid_format(tr_pid p, char *buf, unsigned len)
{
	if (buf == NULL || len == 0) {
		return buf;
	}
	snprintf(buf, len, "<%" PRIu32 ".%" PRIu32 ".%" PRIu32 ">",
		 tr_pid_node(p), tr_pid_slot(p), tr_pid_generation(p));
	return buf;
}
