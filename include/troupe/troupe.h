#ifndef TROUPE_TROUPE_H
#define TROUPE_TROUPE_H

/*
 * troupe: an actor runtime in C. Include this one header.
 *
 *   version.h  versions and TR_API
 *   error.h    tr_err codes
 *   pid.h      actor addresses
 *   msg.h      messages, exit reasons, system message payloads
 *   actor.h    definitions, spawn, send, links, monitors, tr_blocking
 *   runtime.h  runtime lifecycle, calls from other threads, inboxes
 *   metrics.h  counters and the JSON snapshot
 *   timer.h    messages after a delay, periodic messages
 *   io.h       signals and name resolution on the I/O thread
 *   process.h  child processes: stdin, stdout/stderr lines, exit
 *   tcp.h      TCP listeners and connections as actors
 *   framer.h   cutting a byte stream into lines or length-prefixed frames
 */

#include <troupe/version.h>
#include <troupe/error.h>
#include <troupe/pid.h>
#include <troupe/msg.h>
#include <troupe/actor.h>
#include <troupe/runtime.h>
#include <troupe/metrics.h>
#include <troupe/timer.h>
#include <troupe/io.h>
#include <troupe/process.h>
#include <troupe/tcp.h>
#include <troupe/framer.h>

#endif /* TROUPE_TROUPE_H */
