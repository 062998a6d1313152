/*
 * SQLite's own errors at every call site of the store (after SQLite's
 * *fault.test and tests/fault/fault_alloc.c): for N = 1, 2, 3, ... the
 * N-th SQLite-level operation of a run fails, and the store's promises
 * are checked each time, until a run ends without reaching its fault,
 * which means every operation of the run was failed once. Operations
 * are counted per phase of the run (the open, the requests, the stop;
 * see enum phase), so that the open and the stop, which do the same in
 * every run, are covered whatever the requests did.
 *
 *     test_store_fault [NAME [K/M]]    K/M: this process takes the
 *                                      points K, K + M, K + 2M, ...
 *
 * Two kinds of operation, both through SQLite's public interfaces:
 *   vfs     a VFS registered as the default one, which hands every call
 *           to the real one except the N-th (open, read, write, truncate,
 *           sync, file size, lock, unlock, reserved-lock check, shared
 *           memory map, lock and unmap, access, delete, full pathname,
 *           close): that one returns SQLite's I/O error for its kind,
 *           SQLITE_FULL for every other write, SQLITE_BUSY for a lock
 *           (which the busy timeout retries);
 *   malloc  SQLite's allocator (SQLITE_CONFIG_MALLOC, set before SQLite
 *           initializes), whose N-th allocation or reallocation fails.
 * The VFS sweeps run at both durabilities, on a new file and on a file
 * with data and a WAL left to recover, and once more with every
 * operation failing from the N-th on (a disk that went away).
 *
 * A run: a store is started, and a few writer actors each run a script
 * of requests on it, one at a time each (so their writes are gathered
 * into shared transactions): puts, appends with the expected sequence
 * number and one out of turn, a log append, a snapshot save, a get, a
 * journal read, a trim, a snapshot load, a log query, a delete, a prune,
 * the stats. Each run checks:
 *   - every request gets exactly one outcome, within a generous deadline
 *     (a failure), and a reply or a TR_MSG_STORE_ERROR whose status says
 *     SQLite refused and whose text names the file, never
 *     TR_MSG_REQUEST_FAILED (the store must live) nor TR_EINVAL; a read
 *     that succeeds returns what was written; one fault fails at most
 *     the requests of one transaction;
 *   - a start that fails is a TR_MSG_STORE_ERROR that names the file, the
 *     store is gone, and no file is left open (the process's descriptors
 *     are counted) nor locked;
 *   - then, with the faults off, SQLite opens the file: its integrity
 *     check passes, it is in WAL mode, every write acknowledged is there
 *     with its bytes, nothing is there that was not written, a write
 *     answered with an error may be there or not (a commit can fail
 *     after its frames reached the file) but only with its own bytes, a
 *     journal has no gap and its head is its last event, the data the
 *     file had before the run is all there; and a store opens it.
 * ASan (leaks) and the exit status cover "never crashes".
 */
#include <troupe/troupe.h>
#include <troupe/actors/store.h>

#include <dirent.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Generous, for the sanitizer builds on a busy machine: reaching one of
 * these deadlines is a failure. */
#define FX_REPLY_MS 60000
#include "harness.h"
#include "fixture.h"

#define WAIT_MS 60000

/* No run should need more; reaching it means the sweep never ended. */
#define MAX_POINTS 20000

#define WRITERS 3

/* ------------------------------------------------------------------ */
/* Injection                                                           */

enum mode { MODE_NONE, MODE_VFS, MODE_MALLOC };

enum op_kind {
	K_OPEN,
	K_DELETE,
	K_ACCESS,
	K_FULLPATH,
	K_CLOSE,
	K_READ,
	K_WRITE,
	K_TRUNCATE,
	K_SYNC,
	K_FILESIZE,
	K_LOCK,
	K_UNLOCK,
	K_CHECKLOCK,
	K_SHMMAP,
	K_SHMLOCK,
	K_SHMUNMAP,
	K_MALLOC,
	K_N
};

static const char *const kind_name[K_N] = {
	"open",    "delete", "access",  "fullpath", "close",  "read",
	"write",   "trunc",  "sync",    "filesize", "lock",   "unlock",
	"chklock", "shmmap", "shmlock", "shmunmap", "malloc",
};

/*
 * A run has three phases, and operations are counted in each from 1: the
 * open (until the start's answer), the requests, the stop (from
 * tr_stop() on). The store's thread is idle at each boundary. The open
 * and the stop do the same operations in every run, so every one of them
 * is reached; how many transactions the requests take depends on how
 * the writers' requests meet (group commit), so that phase is swept up
 * to the longest run seen.
 */
enum phase { PH_OPEN = 1, PH_WORK, PH_STOP, PH_N };

static const char *const phase_name[PH_N] = {
	[PH_OPEN] = "open",
	[PH_WORK] = "requests",
	[PH_STOP] = "stop",
};

static _Atomic int mode;
static _Atomic int phase;         /* the run's phase */
static _Atomic int fail_phase;    /* the phase whose operation fails */
static _Atomic uint64_t fail_at;  /* the operation that fails; 0: none */
static _Atomic uint64_t calls;    /* operations of fail_phase counted */
static _Atomic uint64_t hit_kind; /* K_N + 1 until the fault is reached */
static _Atomic bool persist;      /* every operation after it fails too */
static uint64_t kinds_hit[K_N];   /* over a sweep: faults by kind */

static bool
reached(void)
{
	return atomic_load(&hit_kind) < K_N;
}

static void
arm(int m, int ph, uint64_t n, bool all_after)
{
	atomic_store(&persist, all_after);
	atomic_store(&phase, PH_OPEN);
	atomic_store(&fail_phase, ph);
	atomic_store(&calls, 0);
	atomic_store(&hit_kind, K_N + 1);
	atomic_store(&fail_at, n);
	atomic_store(&mode, m);
}

static void
disarm(void)
{
	atomic_store(&mode, MODE_NONE);
	atomic_store(&fail_at, 0);
}

/* Counts an operation of @m; true when it is the one to fail. */
static bool
fault(int m, enum op_kind k)
{
	if (atomic_load(&mode) != m) {
		return false;
	}
	int ph = atomic_load(&phase), fp = atomic_load(&fail_phase);
	if (ph != fp) {
		/* A disk that went away stays away. */
		return ph > fp && atomic_load(&persist) && reached();
	}
	uint64_t n = atomic_fetch_add(&calls, 1) + 1;
	uint64_t at = atomic_load(&fail_at);
	if (n == at) {
		atomic_store(&hit_kind, (uint64_t)k);
		return true;
	}
	return at != 0 && n > at && atomic_load(&persist);
}

static bool
vfault(enum op_kind k)
{
	return fault(MODE_VFS, k);
}

/* ---- the VFS ---------------------------------------------------------- */

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;

struct ffile {
	sqlite3_file base;
	sqlite3_file *real; /* follows this struct, real_vfs->szOsFile */
};

#define REAL(f) (((struct ffile *)(f))->real)

static int
f_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods->xClose(REAL(f));
	/* Closed either way: a failed close must not leave a descriptor. */
	return vfault(K_CLOSE) ? SQLITE_IOERR_CLOSE : rc;
}

static int
f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	if (vfault(K_READ)) {
		return SQLITE_IOERR_READ;
	}
	return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

static int
f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	static _Atomic unsigned alt;

	if (vfault(K_WRITE)) {
		/* Half a disk error, half a full disk. */
		return atomic_fetch_add(&alt, 1) % 2 ? SQLITE_FULL
						     : SQLITE_IOERR_WRITE;
	}
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}

static int
f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	if (vfault(K_TRUNCATE)) {
		return SQLITE_IOERR_TRUNCATE;
	}
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
f_sync(sqlite3_file *f, int flags)
{
	if (vfault(K_SYNC)) {
		return SQLITE_IOERR_FSYNC;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
f_filesize(sqlite3_file *f, sqlite3_int64 *out)
{
	if (vfault(K_FILESIZE)) {
		return SQLITE_IOERR_FSTAT;
	}
	return REAL(f)->pMethods->xFileSize(REAL(f), out);
}

static int
f_lock(sqlite3_file *f, int level)
{
	if (vfault(K_LOCK)) {
		return level == SQLITE_LOCK_SHARED || atomic_load(&persist)
			       ? SQLITE_IOERR_LOCK
			       : SQLITE_BUSY;
	}
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int
f_unlock(sqlite3_file *f, int level)
{
	if (vfault(K_UNLOCK)) {
		return SQLITE_IOERR_UNLOCK;
	}
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int
f_checklock(sqlite3_file *f, int *out)
{
	if (vfault(K_CHECKLOCK)) {
		return SQLITE_IOERR_CHECKRESERVEDLOCK;
	}
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int
f_filecontrol(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
f_sectorsize(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
f_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
f_shmmap(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	if (vfault(K_SHMMAP)) {
		*pp = NULL;
		return SQLITE_IOERR_SHMMAP;
	}
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int
f_shmlock(sqlite3_file *f, int off, int n, int flags)
{
	/* An unlock cannot fail in the real one either. A lock that stays
	 * busy would make every transaction wait its busy timeout, and
	 * SQLite's WAL reader retry for seconds: a disk that went away
	 * fails instead. */
	if ((flags & SQLITE_SHM_LOCK) && vfault(K_SHMLOCK)) {
		return atomic_load(&persist) ? SQLITE_IOERR_SHMLOCK
					     : SQLITE_BUSY;
	}
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void
f_shmbarrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int
f_shmunmap(sqlite3_file *f, int del)
{
	int rc = REAL(f)->pMethods->xShmUnmap(REAL(f), del);
	return vfault(K_SHMUNMAP) ? SQLITE_IOERR_SHMMAP : rc;
}

static int
f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int
f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_io = {
	.iVersion = 3,
	.xClose = f_close,
	.xRead = f_read,
	.xWrite = f_write,
	.xTruncate = f_truncate,
	.xSync = f_sync,
	.xFileSize = f_filesize,
	.xLock = f_lock,
	.xUnlock = f_unlock,
	.xCheckReservedLock = f_checklock,
	.xFileControl = f_filecontrol,
	.xSectorSize = f_sectorsize,
	.xDeviceCharacteristics = f_devchar,
	.xShmMap = f_shmmap,
	.xShmLock = f_shmlock,
	.xShmBarrier = f_shmbarrier,
	.xShmUnmap = f_shmunmap,
	.xFetch = f_fetch,
	.xUnfetch = f_unfetch,
};

static int
v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct ffile *ff = (struct ffile *)f;

	(void)v;
	ff->real = (sqlite3_file *)(ff + 1);
	f->pMethods = NULL;
	if (vfault(K_OPEN)) {
		return SQLITE_CANTOPEN;
	}
	int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
	if (ff->real->pMethods != NULL) {
		f->pMethods = &fault_io;
	}
	return rc;
}

static int
v_delete(sqlite3_vfs *v, const char *name, int sync)
{
	(void)v;
	if (vfault(K_DELETE)) {
		return SQLITE_IOERR_DELETE;
	}
	return real_vfs->xDelete(real_vfs, name, sync);
}

static int
v_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	(void)v;
	if (vfault(K_ACCESS)) {
		return SQLITE_IOERR_ACCESS;
	}
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int
v_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
	(void)v;
	if (vfault(K_FULLPATH)) {
		return SQLITE_CANTOPEN;
	}
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *
v_dlopen(sqlite3_vfs *v, const char *name)
{
	(void)v;
	return real_vfs->xDlOpen(real_vfs, name);
}

static void
v_dlerror(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	real_vfs->xDlError(real_vfs, n, out);
}

static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
	(void)v;
	return real_vfs->xDlSym(real_vfs, h, sym);
}

static void
v_dlclose(sqlite3_vfs *v, void *h)
{
	(void)v;
	real_vfs->xDlClose(real_vfs, h);
}

static int
v_random(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int
v_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return real_vfs->xSleep(real_vfs, us);
}

static int
v_time(sqlite3_vfs *v, double *out)
{
	(void)v;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int
v_lasterror(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xGetLastError(real_vfs, n, out);
}

static int
v_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
	(void)v;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

/* ---- the allocator ---------------------------------------------------- */

static sqlite3_mem_methods real_mem;

static void *
m_malloc(int n)
{
	return fault(MODE_MALLOC, K_MALLOC) ? NULL : real_mem.xMalloc(n);
}

static void
m_free(void *p)
{
	real_mem.xFree(p);
}

static void *
m_realloc(void *p, int n)
{
	return fault(MODE_MALLOC, K_MALLOC) ? NULL : real_mem.xRealloc(p, n);
}

static int
m_size(void *p)
{
	return real_mem.xSize(p);
}

static int
m_roundup(int n)
{
	return real_mem.xRoundup(n);
}

static int
m_init(void *p)
{
	return real_mem.xInit(p);
}

static void
m_shutdown(void *p)
{
	real_mem.xShutdown(p);
}

/* Before anything else uses SQLite: the allocator can only be set
 * before sqlite3_initialize(), which sqlite3_vfs_find() calls. */
static void
install(void)
{
	sqlite3_mem_methods mm;

	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK) {
		fprintf(stderr, "cannot read SQLite's allocator\n");
		exit(1);
	}
	mm = real_mem;
	mm.xMalloc = m_malloc;
	mm.xFree = m_free;
	mm.xRealloc = m_realloc;
	mm.xSize = m_size;
	mm.xRoundup = m_roundup;
	mm.xInit = m_init;
	mm.xShutdown = m_shutdown;
	mm.pAppData = real_mem.pAppData;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mm) != SQLITE_OK ||
	    sqlite3_initialize() != SQLITE_OK) {
		fprintf(stderr, "cannot set SQLite's allocator\n");
		exit(1);
	}
	real_vfs = sqlite3_vfs_find(NULL);
	if (real_vfs == NULL) {
		fprintf(stderr, "no default VFS\n");
		exit(1);
	}
	fault_vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(struct ffile) + real_vfs->szOsFile,
		.mxPathname = real_vfs->mxPathname,
		.zName = "troupe-fault",
		.xOpen = v_open,
		.xDelete = v_delete,
		.xAccess = v_access,
		.xFullPathname = v_fullpath,
		.xDlOpen = v_dlopen,
		.xDlError = v_dlerror,
		.xDlSym = v_dlsym,
		.xDlClose = v_dlclose,
		.xRandomness = v_random,
		.xSleep = v_sleep,
		.xCurrentTime = v_time,
		.xGetLastError = v_lasterror,
		.xCurrentTimeInt64 = v_time64,
	};
	if (sqlite3_vfs_register(&fault_vfs, 1) != SQLITE_OK) {
		fprintf(stderr, "cannot register the VFS\n");
		exit(1);
	}
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

static char dir[256];

/* In $TMPDIR, or in memory where there is a tmpfs for it: thousands of
 * runs each create, sync and delete a database. */
static void
dir_make(void)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || base[0] == '\0') {
		base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm"
							    : "/tmp";
	}
	snprintf(dir, sizeof(dir), "%s/troupe-sqlfault-XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "cannot make a temporary directory\n");
		exit(1);
	}
}

static void
dir_clear(bool remove_dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0) {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	}
	if (d != NULL) {
		closedir(d);
	}
	if (remove_dir) {
		rmdir(dir);
	}
}

/* The process's open descriptors. */
static int
fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (d == NULL) {
		return -1;
	}
	while (readdir(d) != NULL) {
		n++;
	}
	closedir(d);
	return n;
}

/* Removes a database and its companions. */
static void
db_remove(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	char p[512];

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		unlink(p);
	}
}

static void
file_copy(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb");
	FILE *out = fopen(to, "wb");
	char b[8192];
	size_t n;

	if (in == NULL || out == NULL) {
		fprintf(stderr, "cannot copy %s to %s\n", from, to);
		exit(1);
	}
	while ((n = fread(b, 1, sizeof(b), in)) > 0) {
		if (fwrite(b, 1, n, out) != n) {
			fprintf(stderr, "cannot copy %s to %s\n", from, to);
			exit(1);
		}
	}
	fclose(in);
	fclose(out);
}

/* ------------------------------------------------------------------ */
/* The workload                                                        */

enum step_kind {
	S_PUT,
	S_APPEND,
	S_LOG,
	S_SNAP_SAVE,
	S_GET,
	S_READ,
	S_TRIM,
	S_SNAP_LOAD,
	S_LOG_QUERY,
	S_DELETE,
	S_PRUNE,
	S_STATS,
};

/* Each writer's script; a put or a get names its key by a step's index
 * (the put's own, or the one it reads or deletes); an append with key 1
 * asks for a sequence number out of turn, which the store refuses after
 * its savepoint began (a ROLLBACK TO in the batch). */
static const struct step {
	enum step_kind kind;
	int key;
} script[] = {
	{ S_PUT, 0 },       { S_APPEND, 0 }, { S_APPEND, 0 },
	{ S_LOG, 0 },       { S_PUT, 4 },    { S_SNAP_SAVE, 0 },
	{ S_APPEND, 0 },    { S_GET, 0 },    { S_READ, 0 },
	{ S_TRIM, 0 },      { S_APPEND, 0 }, { S_SNAP_LOAD, 5 },
	{ S_LOG_QUERY, 3 }, { S_DELETE, 4 }, { S_PRUNE, 0 },
	{ S_APPEND, 1 },    { S_STATS, 0 },
};

#define STEPS    ((int)(sizeof(script) / sizeof(script[0])))
#define TRIM_TO  1
#define LOG_KIND "fault"

/* The outcome of one step. */
struct att {
	bool sent;
	int got;        /* outcomes taken: exactly one */
	uint32_t type;  /* the outcome's message type */
	int32_t status; /* TR_OK, an error's status, or 1: none */
	uint64_t value; /* a TR_MSG_STORE_REPLY's value */
	uint64_t seq;   /* append: asked (0: any); snapshot: saved */
	int bad;        /* a read that returned something else */
	char text[TR_STORE_ERROR_SIZE]; /* an error's text, for the report */
};

static struct att atts[WRITERS][STEPS];
static _Atomic int finished; /* writers at the end of their script */
static _Atomic int strays;   /* outcomes nobody waits for */
static const char *run_path; /* the database of the run */

static bool
acked(const struct att *a)
{
	return a->sent && a->got == 1 && a->status == TR_OK;
}

/* Answered with an error: it may have committed or not. */
static bool sqlite_status(int32_t st);

static bool
doubt(const struct att *a)
{
	return a->sent && a->got == 1 && sqlite_status(a->status);
}

/* The bytes a step writes: @n bytes that name the writer and the step. */
static size_t
gen(unsigned char *out, int w, int step)
{
	size_t n = script[step].kind == S_PUT ? (step == 4 ? 3000u : 200u)
		   : script[step].kind == S_SNAP_SAVE ? 700u
						      : 40u + (size_t)step;
	for (size_t i = 0; i < n; i++) {
		out[i] = (unsigned char)(w * 131 + step * 17 + (int)i * 7);
	}
	out[0] = (unsigned char)w;
	out[1] = (unsigned char)step;
	return n;
}

static bool
same_bytes(int w, int step, const void *p, size_t n)
{
	unsigned char want[4096];
	size_t wn = gen(want, w, step);

	return n == wn && memcmp(p, want, n) == 0;
}

static int
log_body(char *out, size_t n, int w)
{
	return snprintf(out, n, "{\"writer\":%d,\"what\":\"fault\"}", w);
}

/*
 * Whether event @seq of writer @w's journal, with bytes @p, can be
 * there: it is the bytes of an append that was acknowledged with that
 * sequence number, or of one answered with an error (in doubt).
 */
static bool
event_ok(int w, uint64_t seq, const void *p, size_t n)
{
	for (int s = 0; s < STEPS; s++) {
		const struct att *a = &atts[w][s];
		if (script[s].kind != S_APPEND || !same_bytes(w, s, p, n)) {
			continue;
		}
		if ((acked(a) && a->value == seq) || doubt(a)) {
			return true;
		}
	}
	return false;
}

/* The journal's lowest sequence number that a trim may have deleted
 * (0: none), and whether a trim is sure to have run. */
static uint64_t
trim_bound(int w, int upto, bool *sure)
{
	uint64_t b = 0;

	*sure = false;
	for (int s = 0; s < upto; s++) {
		if (script[s].kind == S_TRIM &&
		    (acked(&atts[w][s]) || doubt(&atts[w][s]))) {
			b = TRIM_TO;
			*sure = *sure || acked(&atts[w][s]);
		}
	}
	return b;
}

/* Checks a page of the journal read at step @upto. */
static bool
page_ok(int w, int upto, const tr_msg *m)
{
	const tr_store_events *p = m->data;
	bool sure;
	uint64_t bound = trim_bound(w, upto, &sure);

	if (m->size < sizeof(*p) ||
	    m->size < sizeof(*p) + p->count * sizeof(tr_store_event)) {
		return false;
	}
	for (uint32_t i = 0; i < p->count; i++) {
		const tr_store_event *e = &p->events[i];
		if ((i > 0 && e->seq != p->events[i - 1].seq + 1) ||
		    e->offset + e->size > m->size || e->seq > p->last_seq ||
		    !event_ok(w, e->seq,
			      (const unsigned char *)m->data + e->offset,
			      e->size)) {
			return false;
		}
	}
	for (int s = 0; s < upto; s++) {
		const struct att *a = &atts[w][s];
		if (script[s].kind != S_APPEND || !acked(a) ||
		    a->value <= bound) {
			continue;
		}
		bool found = false;
		for (uint32_t i = 0; i < p->count; i++) {
			found = found || p->events[i].seq == a->value;
		}
		if (!found || a->value > p->last_seq) {
			return false;
		}
	}
	return true;
}

struct writer {
	tr_pid store;
	int idx;
	int step;      /* the step in flight */
	tr_ref ref;    /* its reference */
	uint64_t last; /* the last sequence number acknowledged */
	bool any_seq;  /* after a TR_EEXIST: appends take the next one */
};

static int
writer_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	memcpy(state, arg, sizeof(struct writer));
	return 0;
}

/* Makes step w->step's request. */
static void
writer_send(tr_ctx *cx, struct writer *w)
{
	static _Thread_local _Alignas(
		16) unsigned char buf[sizeof(tr_store_put_req) + 4096];
	int s = w->step;
	struct att *a = &atts[w->idx][s];
	const struct step *st = &script[s];
	uint32_t type = 0;
	size_t n = 0;

	memset(buf, 0, sizeof(buf));
	switch (st->kind) {
	case S_PUT: {
		tr_store_put_req *q = (void *)buf;
		snprintf(q->id, sizeof(q->id), "kv/%d/%d", w->idx, s);
		q->size = gen(q->data, w->idx, s);
		type = TR_MSG_STORE_PUT;
		n = sizeof(*q) + q->size;
		break;
	}
	case S_APPEND: {
		tr_store_append_req *q = (void *)buf;
		snprintf(q->id, sizeof(q->id), "j/%d", w->idx);
		q->seq = st->key == 1 ? w->last + 100
			 : w->any_seq ? 0
				      : w->last + 1;
		q->size = gen(q->data, w->idx, s);
		a->seq = q->seq;
		type = TR_MSG_STORE_APPEND;
		n = sizeof(*q) + q->size;
		break;
	}
	case S_LOG: {
		tr_store_log_req *q = (void *)buf;
		q->time_ms = 1000 + w->idx;
		snprintf(q->kind, sizeof(q->kind), LOG_KIND);
		snprintf(q->actor, sizeof(q->actor), "w%d", w->idx);
		q->size = (uint64_t)log_body(q->body, 256, w->idx);
		type = TR_MSG_STORE_LOG_APPEND;
		n = sizeof(*q) + q->size;
		break;
	}
	case S_SNAP_SAVE: {
		tr_store_snapshot_req *q = (void *)buf;
		snprintf(q->id, sizeof(q->id), "j/%d", w->idx);
		q->seq = w->last;
		q->size = gen(q->data, w->idx, s);
		a->seq = q->seq;
		type = TR_MSG_STORE_SNAPSHOT_SAVE;
		n = sizeof(*q) + q->size;
		break;
	}
	case S_GET:
	case S_DELETE:
	case S_SNAP_LOAD: {
		tr_store_key_req *q = (void *)buf;
		if (st->kind == S_SNAP_LOAD) {
			snprintf(q->id, sizeof(q->id), "j/%d", w->idx);
		} else {
			snprintf(q->id, sizeof(q->id), "kv/%d/%d", w->idx,
				 st->key);
		}
		type = st->kind == S_GET      ? TR_MSG_STORE_GET
		       : st->kind == S_DELETE ? TR_MSG_STORE_DELETE
					      : TR_MSG_STORE_SNAPSHOT_LOAD;
		n = sizeof(*q);
		break;
	}
	case S_READ: {
		tr_store_read_req *q = (void *)buf;
		snprintf(q->id, sizeof(q->id), "j/%d", w->idx);
		type = TR_MSG_STORE_READ;
		n = sizeof(*q);
		break;
	}
	case S_TRIM: {
		tr_store_trim_req *q = (void *)buf;
		snprintf(q->id, sizeof(q->id), "j/%d", w->idx);
		q->to_seq = TRIM_TO;
		a->seq = TRIM_TO;
		type = TR_MSG_STORE_TRIM;
		n = sizeof(*q);
		break;
	}
	case S_LOG_QUERY: {
		tr_store_log_query *q = (void *)buf;
		snprintf(q->kind, sizeof(q->kind), LOG_KIND);
		type = TR_MSG_STORE_LOG_QUERY;
		n = sizeof(*q);
		break;
	}
	case S_PRUNE: {
		tr_store_prune_req *q = (void *)buf;
		q->keep = 1000; /* deletes nothing: a call site, not a loss */
		type = TR_MSG_STORE_LOG_PRUNE;
		n = sizeof(*q);
		break;
	}
	case S_STATS:
		type = TR_MSG_STORE_STATS;
		break;
	}
	a->sent = true;
	if (tr_request(cx, w->store, type, buf, n, 0, &w->ref) != TR_OK) {
		a->got = 1;
		a->status = 1;
		snprintf(a->text, sizeof(a->text), "tr_request failed");
		w->ref.v = 0;
	}
}

/* Checks what a read step got. */
static int
read_bad(struct writer *w, const tr_msg *m)
{
	int s = w->step;
	const struct step *st = &script[s];
	const struct att *src = &atts[w->idx][st->key];

	switch (st->kind) {
	case S_GET: {
		const tr_store_value *v =
			TR_MSG_AS_FAM(m, tr_store_value, size, data);
		return v == NULL || !(acked(src) || doubt(src)) ||
		       !same_bytes(w->idx, st->key, v->data, v->size);
	}
	case S_SNAP_LOAD: {
		const tr_store_snapshot *v =
			TR_MSG_AS_FAM(m, tr_store_snapshot, size, data);
		return v == NULL || !(acked(src) || doubt(src)) ||
		       v->seq != src->seq ||
		       !same_bytes(w->idx, st->key, v->data, v->size);
	}
	case S_READ:
		return !page_ok(w->idx, s, m);
	case S_LOG_QUERY: {
		const tr_store_log_page *p = m->data;
		char body[256];
		int bn = log_body(body, sizeof(body), w->idx);
		bool found = false;
		if (m->size < sizeof(*p) ||
		    m->size < sizeof(*p) +
				      p->count * sizeof(tr_store_log_record)) {
			return 1;
		}
		for (uint32_t i = 0; i < p->count; i++) {
			const tr_store_log_record *r = &p->records[i];
			if (r->id == src->value &&
			    r->body_offset + r->body_size <= m->size &&
			    r->body_size == (uint64_t)bn &&
			    memcmp((const char *)m->data + r->body_offset, body,
				   (size_t)bn) == 0) {
				found = true;
			}
		}
		return acked(src) && !found;
	}
	default:
		return 0;
	}
}

/* The outcome of the step in flight. */
static void
writer_take(struct writer *w, const tr_msg *m)
{
	int s = w->step;
	struct att *a = &atts[w->idx][s];
	const struct step *st = &script[s];

	a->got++;
	a->type = m->type;
	a->status = TR_OK;
	if (m->type == TR_MSG_STORE_ERROR) {
		const tr_store_error *e = TR_MSG_AS(m, tr_store_error);
		a->status = e != NULL ? e->status : 1;
		if (e != NULL) {
			snprintf(a->text, sizeof(a->text), "%s", e->text);
		}
	} else if (m->type == TR_MSG_STORE_REPLY) {
		const tr_store_reply *r = TR_MSG_AS(m, tr_store_reply);
		a->value = r != NULL ? r->value : UINT64_MAX;
	} else if (m->type == TR_MSG_STORE_VALUE ||
		   m->type == TR_MSG_STORE_EVENTS ||
		   m->type == TR_MSG_STORE_SNAPSHOT ||
		   m->type == TR_MSG_STORE_LOG ||
		   m->type == TR_MSG_STORE_STATS_REPLY) {
		a->bad = read_bad(w, m);
	} else {
		a->status = 1; /* TR_MSG_REQUEST_FAILED or a stranger */
	}
	if (st->kind == S_APPEND && a->status == TR_OK) {
		w->last = a->value;
	}
	if (st->kind == S_APPEND && st->key == 0 && a->status == TR_EEXIST) {
		w->any_seq = true;
	}
}

static void
writer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct writer *w = state;

	if (m->type == 1 && !(m->flags & TR_MSG_F_REPLY)) {
		w->step = 0;
		writer_send(cx, w);
	} else if ((m->flags & TR_MSG_F_REPLY) && w->ref.v != 0 &&
		   m->ref.v == w->ref.v) {
		w->ref.v = 0;
		writer_take(w, m);
		w->step++;
		if (w->step < STEPS) {
			writer_send(cx, w);
		}
	} else {
		atomic_fetch_add(&strays, 1);
		return;
	}
	/* A request that could not be made has its outcome already. */
	while (w->step < STEPS && w->ref.v == 0 && atts[w->idx][w->step].sent) {
		w->step++;
		if (w->step < STEPS) {
			writer_send(cx, w);
		}
	}
	if (w->step == STEPS) {
		w->step++;
		atomic_fetch_add(&finished, 1);
	}
}

static const tr_actor_def writer_def = {
	.size = sizeof(tr_actor_def),
	.name = "sqlfault-writer",
	.state_size = sizeof(struct writer),
	.init = writer_init,
	.handle = writer_handle,
	.arg_size = sizeof(struct writer),
};

/* ------------------------------------------------------------------ */
/* One run                                                             */

struct tally {
	unsigned runs;
	unsigned open_failed;   /* the start answered an error */
	unsigned req_errors;    /* requests answered with an error */
	unsigned doubtful_seen; /* errored writes found on disk */
};

static uint32_t durability; /* of the sweep's stores */

/* The points this process fails: share_first, then every share_step-th
 * ("K/M" after the test's name: points K, K + M, ...), so that M
 * processes share a sweep. */
static uint64_t share_first = 1, share_step = 1;

static tr_store_config
config(const char *path)
{
	tr_store_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.path = path;
	c.durability = durability;
	return c;
}

static void
stop_wait(struct fx *f, tr_pid p)
{
	(void)tr_stop(tr_runtime_ctx(f->rt), p, TR_EXIT_SHUTDOWN);
	WAIT_UNTIL(!tr_actor_alive(f->rt, p), WAIT_MS);
}

/* Starts a store; TR_OK and its pid, or the error's status. */
static int
start_store(struct fx *f, const char *path, tr_pid *out, char *text, size_t tn)
{
	tr_store_config c = config(path);
	tr_ref ref = { 0 };
	tr_received r;
	int st;

	*out = TR_PID_NONE;
	text[0] = '\0';
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_store_start(tr_inbox_ctx(f->ib), &c, out, &ref));
	CHECK_OK(tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, &r));
	if (r.type == TR_MSG_STORE_REPLY) {
		st = TR_OK;
	} else if (r.type == TR_MSG_STORE_ERROR) {
		const tr_store_error *e = TR_MSG_AS(&r, tr_store_error);
		CHECK(e != NULL);
		st = e != NULL ? e->status : 1;
		snprintf(text, tn, "%s", e != NULL ? e->text : "");
	} else {
		fprintf(stderr, "  start: outcome of type 0x%x\n", r.type);
		CHECK(false);
		st = 1;
	}
	tr_received_fini(&r);
	return st;
}

/* The status an error may have when SQLite failed under the request. */
static bool
sqlite_status(int32_t st)
{
	return st == TR_ESYS || st == TR_EFULL || st == TR_ETIMEDOUT ||
	       st == TR_ENOMEM || st == TR_EREJECTED;
}

static int run_failures; /* checks failed in this run */

#define RCHECK(cond, ...)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);      \
			fprintf(stderr, __VA_ARGS__);                          \
			fprintf(stderr, "\n");                                 \
			harness_failed_checks++;                               \
			run_failures++;                                        \
		}                                                              \
	} while (0)

/* Of the requests SQLite failed, those failed with their transaction's
 * BEGIN or COMMIT. */
static int failed_batch;

/* The outcomes the writers took; returns how many SQLite failed. */
static int
check_outcomes(struct tally *t)
{
	int failed = 0;

	failed_batch = 0;

	for (int w = 0; w < WRITERS; w++) {
		bool doubt_append = false;
		for (int s = 0; s < STEPS; s++) {
			const struct att *a = &atts[w][s];
			RCHECK(a->sent && a->got == 1,
			       "writer %d step %d: %d outcomes", w, s, a->got);
			RCHECK(a->status != 1,
			       "writer %d step %d: outcome type 0x%x (%s)", w,
			       s, a->type, a->text);
			RCHECK(!(script[s].kind == S_APPEND &&
				 script[s].key == 1 && acked(a)),
			       "writer %d step %d: an append out of turn "
			       "acknowledged",
			       w, s);
			RCHECK(a->bad == 0,
			       "writer %d step %d: a read returned what was "
			       "not written",
			       w, s);
			if (a->status == TR_OK || a->status == 1) {
				continue;
			}
			bool own = false;
			/* What may be refused for a reason of its own. */
			if (a->status == TR_ENOENT) {
				const struct att *src = &atts[w][script[s].key];
				own = (script[s].kind == S_GET ||
				       script[s].kind == S_SNAP_LOAD) &&
				      !acked(src);
			} else if (a->status == TR_EEXIST) {
				own = script[s].kind == S_APPEND &&
				      (doubt_append || script[s].key == 1);
			}
			RCHECK(own || sqlite_status(a->status),
			       "writer %d step %d: status %s: %s", w, s,
			       tr_err_name(a->status), a->text);
			RCHECK(own || strstr(a->text, run_path) != NULL,
			       "writer %d step %d: the error does not name "
			       "the file: %s",
			       w, s, a->text);
			if (script[s].kind == S_APPEND && !own) {
				doubt_append = true;
			}
			failed += !own;
			failed_batch +=
				!own &&
				(strstr(a->text, ": commit: ") != NULL ||
				 strstr(a->text, ": cannot begin a "
						 "transaction: ") != NULL);
		}
	}
	t->req_errors += (unsigned)failed;
	return failed;
}

/* ---- a file with data, and a WAL to recover ------------------------ */

/*
 * The "existing file" sweep starts each run on a copy of a database
 * that holds values and a journal, with a WAL that a process left behind
 * (copied while its connection was open): the store's open reads a real
 * schema and recovers the WAL under the fault.
 */
static sqlite3_stmt *prep(sqlite3 *db, const char *sql);

static bool seeded;
static char seed_db[300];

#define SEEDS 10

static size_t
seed_bytes(unsigned char *out, int k)
{
	size_t n = 100 + (size_t)k * 300;

	for (size_t i = 0; i < n; i++) {
		out[i] = (unsigned char)(k * 29 + (int)i * 3);
	}
	return n;
}

static void
seed_call(struct fx *f, tr_pid s, uint32_t type, const void *p, size_t n)
{
	tr_ref ref = { 0 };
	tr_received r;

	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_request(tr_inbox_ctx(f->ib), s, type, p, n, 0, &ref));
	CHECK_OK(tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, TR_MSG_STORE_REPLY);
	tr_received_fini(&r);
}

static int
start_store(struct fx *f, const char *path, tr_pid *out, char *text, size_t tn);
static void stop_wait(struct fx *f, tr_pid p);

static void
make_seed(struct fx *f)
{
	static _Alignas(16) unsigned char b[sizeof(tr_store_put_req) + 4096];
	char src[300], p[320], text[TR_STORE_ERROR_SIZE];
	tr_pid s;

	snprintf(src, sizeof(src), "%s/seed-src.db", dir);
	snprintf(seed_db, sizeof(seed_db), "%s/seed.db", dir);
	CHECK_EQ_INT(start_store(f, src, &s, text, sizeof(text)), TR_OK);
	for (int k = 0; k < SEEDS; k++) {
		tr_store_put_req *q = (void *)b;
		memset(b, 0, sizeof(b));
		snprintf(q->id, sizeof(q->id), "seed/%d", k);
		q->size = seed_bytes(q->data, k);
		seed_call(f, s, TR_MSG_STORE_PUT, q, sizeof(*q) + q->size);
	}
	for (int k = 0; k < 5; k++) {
		tr_store_append_req *q = (void *)b;
		memset(b, 0, sizeof(b));
		snprintf(q->id, sizeof(q->id), "seed/j");
		q->size = seed_bytes(q->data, k);
		seed_call(f, s, TR_MSG_STORE_APPEND, q, sizeof(*q) + q->size);
	}
	stop_wait(f, s);
	/* One more transaction, in the WAL only, and the files copied
	 * before the connection closes (and checkpoints). */
	sqlite3 *db = NULL;
	CHECK(sqlite3_open_v2(src, &db, SQLITE_OPEN_READWRITE,
			      real_vfs->zName) == SQLITE_OK);
	CHECK(sqlite3_exec(db,
			   "INSERT INTO troupe_kv (id, value) VALUES "
			   "('seed/wal', x'0102')",
			   NULL, NULL, NULL) == SQLITE_OK);
	file_copy(src, seed_db);
	snprintf(text, sizeof(text), "%s-wal", src);
	snprintf(p, sizeof(p), "%s-wal", seed_db);
	file_copy(text, p);
	sqlite3_close(db);
	db_remove(src);
}

/* A copy of the seed at @path. */
static void
seed_copy(const char *path)
{
	char a[320], b[320];

	file_copy(seed_db, path);
	snprintf(a, sizeof(a), "%s-wal", seed_db);
	snprintf(b, sizeof(b), "%s-wal", path);
	file_copy(a, b);
}

/* What the seed holds is all there. */
static void
check_seed(sqlite3 *db)
{
	unsigned char want[4096];
	sqlite3_stmt *s = prep(db, "SELECT value FROM troupe_kv "
				   "WHERE id = ?1");
	char id[32];

	for (int k = 0; k <= SEEDS && s != NULL; k++) {
		size_t n = k < SEEDS ? seed_bytes(want, k) : 2;
		if (k == SEEDS) {
			want[0] = 1;
			want[1] = 2;
			snprintf(id, sizeof(id), "seed/wal");
		} else {
			snprintf(id, sizeof(id), "seed/%d", k);
		}
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
		RCHECK(sqlite3_step(s) == SQLITE_ROW &&
			       (size_t)sqlite3_column_bytes(s, 0) == n &&
			       memcmp(sqlite3_column_blob(s, 0), want, n) == 0,
		       "%s: the seed's value is gone", id);
	}
	sqlite3_finalize(s);
	s = prep(db, "SELECT seq, data FROM troupe_journal "
		     "WHERE id = 'seed/j' ORDER BY seq");
	int k = 0;
	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		size_t n = seed_bytes(want, k);
		RCHECK(sqlite3_column_int64(s, 0) == k + 1 &&
			       (size_t)sqlite3_column_bytes(s, 1) == n &&
			       memcmp(sqlite3_column_blob(s, 1), want, n) == 0,
		       "seed/j: event %d changed", k + 1);
		k++;
	}
	RCHECK(k == 5, "seed/j: %d events, not 5", k);
	sqlite3_finalize(s);
}

/* ---- what is in the file, read with the faults off ----------------------- */

static sqlite3_stmt *
prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "  prepare %s: %s\n", sql, sqlite3_errmsg(db));
		CHECK(false);
	}
	return s;
}

static void
check_kv(sqlite3 *db, struct tally *t)
{
	sqlite3_stmt *s = prep(db, "SELECT id, value FROM troupe_kv");

	/* What is there was written. */
	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		int w = -1, k = -1;
		const char *id = (const char *)sqlite3_column_text(s, 0);
		if (seeded && id != NULL && strncmp(id, "seed/", 5) == 0) {
			continue; /* check_seed() */
		}
		RCHECK(id != NULL && sscanf(id, "kv/%d/%d", &w, &k) == 2 &&
			       w >= 0 && w < WRITERS && k >= 0 && k < STEPS &&
			       script[k].kind == S_PUT,
		       "a key nobody wrote: %s", id != NULL ? id : "(null)");
		if (w < 0 || w >= WRITERS || k < 0 || k >= STEPS) {
			continue;
		}
		const struct att *a = &atts[w][k];
		RCHECK(acked(a) || doubt(a), "%s: never acknowledged", id);
		RCHECK(same_bytes(w, k, sqlite3_column_blob(s, 1),
				  (size_t)sqlite3_column_bytes(s, 1)),
		       "%s: other bytes", id);
		t->doubtful_seen += doubt(a);
		for (int d = 0; d < STEPS; d++) {
			RCHECK(!(script[d].kind == S_DELETE &&
				 script[d].key == k && acked(&atts[w][d])),
			       "%s: there after its delete was acknowledged",
			       id);
		}
	}
	sqlite3_finalize(s);
	/* What was acknowledged is there. */
	s = prep(db, "SELECT count(*) FROM troupe_kv WHERE id = ?1");
	for (int w = 0; w < WRITERS && s != NULL; w++) {
		for (int k = 0; k < STEPS; k++) {
			if (script[k].kind != S_PUT || !acked(&atts[w][k])) {
				continue;
			}
			bool deleted = false;
			for (int d = 0; d < STEPS; d++) {
				deleted = deleted ||
					  (script[d].kind == S_DELETE &&
					   script[d].key == k &&
					   (acked(&atts[w][d]) ||
					    doubt(&atts[w][d])));
			}
			char id[32];
			snprintf(id, sizeof(id), "kv/%d/%d", w, k);
			sqlite3_reset(s);
			sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
			int n = sqlite3_step(s) == SQLITE_ROW
					? sqlite3_column_int(s, 0)
					: -1;
			RCHECK(n == 1 || (deleted && n == 0),
			       "%s: acknowledged, %d rows", id, n);
		}
	}
	sqlite3_finalize(s);
}

static void
check_journals(sqlite3 *db, struct tally *t)
{
	sqlite3_stmt *ev = prep(db, "SELECT seq, data FROM troupe_journal "
				    "WHERE id = ?1 ORDER BY seq");
	/* The head as the store reads it: the last event, or what a trim
	 * that took them all left in troupe_journal_head. */
	sqlite3_stmt *hd = prep(
		db, "SELECT max(coalesce((SELECT last_seq FROM "
		    "troupe_journal_head WHERE id = ?1), 0), coalesce((SELECT "
		    "max(seq) FROM troupe_journal WHERE id = ?1), 0))");
	sqlite3_stmt *all = prep(db, "SELECT count(*) FROM troupe_journal "
				     "WHERE id NOT LIKE 'j/%' AND "
				     "id NOT LIKE 'seed/%'");

	if (ev == NULL || hd == NULL || all == NULL) {
		goto out;
	}
	RCHECK(sqlite3_step(all) == SQLITE_ROW &&
		       sqlite3_column_int(all, 0) == 0,
	       "a journal nobody wrote");
	for (int w = 0; w < WRITERS; w++) {
		char id[32];
		uint64_t head = 0, prev = 0, lo = 0, attempts = 0;
		bool sure;
		uint64_t bound = trim_bound(w, STEPS, &sure);

		snprintf(id, sizeof(id), "j/%d", w);
		sqlite3_reset(hd);
		sqlite3_bind_text(hd, 1, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(hd) == SQLITE_ROW) {
			head = (uint64_t)sqlite3_column_int64(hd, 0);
		}
		for (int s = 0; s < STEPS; s++) {
			const struct att *a = &atts[w][s];
			attempts += script[s].kind == S_APPEND && a->sent;
			if (script[s].kind == S_APPEND && acked(a)) {
				RCHECK(a->value <= head,
				       "%s: event %llu acknowledged, head %llu",
				       id, (unsigned long long)a->value,
				       (unsigned long long)head);
			}
		}
		RCHECK(head <= attempts, "%s: head %llu after %llu appends", id,
		       (unsigned long long)head, (unsigned long long)attempts);
		sqlite3_reset(ev);
		sqlite3_bind_text(ev, 1, id, -1, SQLITE_TRANSIENT);
		while (sqlite3_step(ev) == SQLITE_ROW) {
			uint64_t seq = (uint64_t)sqlite3_column_int64(ev, 0);
			const void *p = sqlite3_column_blob(ev, 1);
			size_t n = (size_t)sqlite3_column_bytes(ev, 1);
			RCHECK(prev == 0 || seq == prev + 1,
			       "%s: a gap from %llu to %llu", id,
			       (unsigned long long)prev,
			       (unsigned long long)seq);
			RCHECK(event_ok(w, seq, p, n),
			       "%s: event %llu was not written so", id,
			       (unsigned long long)seq);
			RCHECK(!(sure && seq <= bound),
			       "%s: event %llu there after its trim", id,
			       (unsigned long long)seq);
			for (int s = 0; s < STEPS; s++) {
				const struct att *a = &atts[w][s];
				if (script[s].kind == S_APPEND && doubt(a) &&
				    same_bytes(w, s, p, n)) {
					t->doubtful_seen++;
				}
			}
			lo = lo == 0 ? seq : lo;
			prev = seq;
		}
		RCHECK(prev == 0 || prev == head,
		       "%s: last event %llu, head %llu", id,
		       (unsigned long long)prev, (unsigned long long)head);
		RCHECK(prev != 0 || head <= bound, "%s: no event, head %llu",
		       id, (unsigned long long)head);
		for (int s = 0; s < STEPS; s++) {
			const struct att *a = &atts[w][s];
			if (script[s].kind != S_APPEND || !acked(a) ||
			    a->value <= bound) {
				continue;
			}
			RCHECK(lo != 0 && a->value >= lo && a->value <= prev,
			       "%s: acknowledged event %llu missing", id,
			       (unsigned long long)a->value);
		}
	}
out:
	sqlite3_finalize(ev);
	sqlite3_finalize(hd);
	sqlite3_finalize(all);
}

static void
check_snapshots(sqlite3 *db, struct tally *t)
{
	sqlite3_stmt *s = prep(db, "SELECT id, seq, data FROM troupe_snapshot");
	bool seen[WRITERS] = { false };

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		int w = -1, k = 5;
		const char *id = (const char *)sqlite3_column_text(s, 0);
		RCHECK(id != NULL && sscanf(id, "j/%d", &w) == 1 && w >= 0 &&
			       w < WRITERS,
		       "a snapshot nobody saved: %s",
		       id != NULL ? id : "(null)");
		if (w < 0 || w >= WRITERS) {
			continue;
		}
		const struct att *a = &atts[w][k];
		seen[w] = true;
		RCHECK(acked(a) || doubt(a), "%s: snapshot never saved", id);
		RCHECK((uint64_t)sqlite3_column_int64(s, 1) == a->seq &&
			       same_bytes(w, k, sqlite3_column_blob(s, 2),
					  (size_t)sqlite3_column_bytes(s, 2)),
		       "%s: another snapshot", id);
		t->doubtful_seen += doubt(a);
	}
	sqlite3_finalize(s);
	for (int w = 0; w < WRITERS; w++) {
		RCHECK(seen[w] || !acked(&atts[w][5]),
		       "j/%d: acknowledged snapshot missing", w);
	}
}

static void
check_log(sqlite3 *db, struct tally *t)
{
	sqlite3_stmt *s =
		prep(db, "SELECT rid, kind, actor, body FROM troupe_log");
	bool seen[WRITERS] = { false };

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		int w = -1;
		char body[256];
		const char *actor = (const char *)sqlite3_column_text(s, 2);
		const char *b = (const char *)sqlite3_column_text(s, 3);
		RCHECK(actor != NULL && sscanf(actor, "w%d", &w) == 1 &&
			       w >= 0 && w < WRITERS,
		       "a record nobody appended");
		if (w < 0 || w >= WRITERS) {
			continue;
		}
		const struct att *a = &atts[w][3];
		log_body(body, sizeof(body), w);
		RCHECK(!seen[w], "w%d: two records", w);
		seen[w] = true;
		RCHECK(acked(a) || doubt(a), "w%d: a record never appended", w);
		RCHECK(!acked(a) ||
			       (uint64_t)sqlite3_column_int64(s, 0) == a->value,
		       "w%d: record %lld, acknowledged as %llu", w,
		       (long long)sqlite3_column_int64(s, 0),
		       (unsigned long long)a->value);
		RCHECK(b != NULL && strcmp(b, body) == 0 &&
			       strcmp((const char *)sqlite3_column_text(s, 1),
				      LOG_KIND) == 0,
		       "w%d: another record", w);
		t->doubtful_seen += doubt(a);
	}
	sqlite3_finalize(s);
	for (int w = 0; w < WRITERS; w++) {
		RCHECK(seen[w] || !acked(&atts[w][3]),
		       "w%d: acknowledged record missing", w);
	}
}

static void
check_file(const char *path, bool opened, struct tally *t)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
				 real_vfs->zName);
	if (rc != SQLITE_OK) {
		/* Only a store that never created its file. */
		RCHECK(!opened, "%s: cannot open: %s", path,
		       db != NULL ? sqlite3_errmsg(db) : "no memory");
		sqlite3_close(db);
		return;
	}
	/* No lock is left behind: the writer's lock is free at once. */
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE; COMMIT", NULL, NULL, &err);
	RCHECK(rc == SQLITE_OK, "%s: still locked: %s", path,
	       err != NULL ? err : "");
	sqlite3_free(err);
	sqlite3_stmt *s = prep(db, "PRAGMA integrity_check");
	RCHECK(s != NULL && sqlite3_step(s) == SQLITE_ROW &&
		       strcmp((const char *)sqlite3_column_text(s, 0), "ok") ==
			       0,
	       "%s: integrity check: %s", path,
	       s != NULL ? (const char *)sqlite3_column_text(s, 0) : "");
	sqlite3_finalize(s);
	if (seeded) {
		check_seed(db);
	}
	if (opened) {
		s = prep(db, "PRAGMA journal_mode");
		RCHECK(s != NULL && sqlite3_step(s) == SQLITE_ROW &&
			       strcmp((const char *)sqlite3_column_text(s, 0),
				      "wal") == 0,
		       "%s: not in WAL mode", path);
		sqlite3_finalize(s);
		check_kv(db, t);
		check_journals(db, t);
		check_snapshots(db, t);
		check_log(db, t);
	}
	sqlite3_close(db);
}

/*
 * One run with the fault armed by the caller: start, the writers, a
 * stop; then, unarmed, what is in the file and a new start on it.
 */
static void
run_once(struct fx *f, int m, int ph, uint64_t n, bool all_after,
	 const char *path, struct tally *t)
{
	tr_pid store, w[WRITERS];
	char text[TR_STORE_ERROR_SIZE];
	int fds = fd_count();

	memset(atts, 0, sizeof(atts));
	atomic_store(&finished, 0);
	atomic_store(&strays, 0);
	run_path = path;
	t->runs++;
	if (seeded) {
		seed_copy(path);
	}
	arm(m, ph, n, all_after);
	int st = start_store(f, path, &store, text, sizeof(text));
	atomic_store(&phase, PH_WORK);
	if (st != TR_OK) {
		t->open_failed++;
		RCHECK(st < 0 && sqlite_status(st), "start: status %d: %s", st,
		       text);
		RCHECK(strstr(text, path) != NULL,
		       "start: the error does not name the file: %s", text);
		/* It stops by itself. */
		WAIT_UNTIL(!tr_actor_alive(f->rt, store), WAIT_MS);
	} else {
		for (int i = 0; i < WRITERS; i++) {
			struct writer a = { .store = store, .idx = i };
			w[i] = fx_spawn(f, &writer_def, &a);
		}
		for (int i = 0; i < WRITERS; i++) {
			CHECK_OK(tr_send(tr_runtime_ctx(f->rt), w[i], 1, NULL,
					 0));
		}
		WAIT_UNTIL(atomic_load(&finished) == WRITERS, WAIT_MS);
		atomic_store(&phase, PH_STOP);
		stop_wait(f, store);
		/* Anything the store still sent has reached the writers. */
		CHECK_OK(tr_runtime_wait_idle(f->rt, WAIT_MS));
		for (int i = 0; i < WRITERS; i++) {
			stop_wait(f, w[i]);
		}
		RCHECK(atomic_load(&strays) == 0, "%d outcomes nobody asked",
		       atomic_load(&strays));
		int failed = check_outcomes(t);
		/* One fault fails one request, or the requests of one
		 * transaction when it hit the BEGIN or the COMMIT (one per
		 * writer); when SQLite rolled the whole transaction back
		 * under a request, the others ran again. Never the store's
		 * later requests. */
		RCHECK(all_after || failed <= 1 ||
			       (failed <= WRITERS && failed == failed_batch),
		       "one fault, %d requests failed, %d of them with "
		       "their transaction",
		       failed, failed_batch);
	}
	disarm();
	RCHECK(fd_count() == fds, "%d descriptors before the run, %d after",
	       fds, fd_count());
	check_file(path, st == TR_OK, t);
	/* And a store opens what the run left. */
	st = start_store(f, path, &store, text, sizeof(text));
	RCHECK(st == TR_OK, "reopen: %s", text);
	stop_wait(f, store);
	db_remove(path);
}

static void
sweep(int m, bool all_after, uint32_t dur, const char *label)
{
	struct fx f;
	struct tally t;
	char path[300];
	unsigned points[PH_N] = { 0 };
	uint64_t longest[PH_N] = { 0 };

	memset(&t, 0, sizeof(t));
	memset(kinds_hit, 0, sizeof(kinds_hit));
	durability = dur;
	fx_start(&f, 2);
	snprintf(path, sizeof(path), "%s/run.db", dir);
	if (seeded) {
		make_seed(&f);
	}
	run_failures = 0;
	for (int ph = PH_OPEN; ph < PH_N && run_failures == 0; ph++) {
		uint64_t n;
		for (n = share_first; n < MAX_POINTS; n += share_step) {
			run_once(&f, m, ph, n, all_after, path, &t);
			if (run_failures > 0) {
				fprintf(stderr,
					"  %s: the failure above is at point "
					"%llu of the %s (%s)\n",
					label, (unsigned long long)n,
					phase_name[ph],
					reached() ? kind_name[atomic_load(
							    &hit_kind)]
						  : "not reached");
				break; /* one point's report is enough */
			}
			uint64_t c = atomic_load(&calls);
			longest[ph] = c > longest[ph] ? c : longest[ph];
			if (reached()) {
				kinds_hit[atomic_load(&hit_kind)]++;
				points[ph]++;
			} else if (n >= longest[ph]) {
				break; /* past every run seen */
			}
		}
		CHECK(n < MAX_POINTS);
	}
	printf("  %s: fault points: %u in the open, %u in the requests, "
	       "%u in the stop (the longest runs: %llu, %llu, %llu "
	       "operations); %u starts failed, %u requests answered with "
	       "an error, %u of those writes on disk\n "
	       " faults by kind:",
	       label, points[PH_OPEN], points[PH_WORK], points[PH_STOP],
	       (unsigned long long)longest[PH_OPEN],
	       (unsigned long long)longest[PH_WORK],
	       (unsigned long long)longest[PH_STOP], t.open_failed,
	       t.req_errors, t.doubtful_seen);
	for (int k = 0; k < K_N; k++) {
		if (kinds_hit[k] > 0) {
			printf(" %s %llu", kind_name[k],
			       (unsigned long long)kinds_hit[k]);
		}
	}
	if (share_step > 1) {
		printf(" (this process: points %llu, %llu + %llu, ...)",
		       (unsigned long long)share_first,
		       (unsigned long long)share_first,
		       (unsigned long long)share_step);
	}
	printf("\n");
	/* The sweep must have met failures it could report. */
	CHECK(t.open_failed > 0);
	CHECK(t.req_errors > 0);
	fx_finish(&f);
}

static void
test_vfs(void)
{
	sweep(MODE_VFS, false, TR_STORE_NORMAL, "vfs, once, normal");
}

/* With an fsync per commit: a sync that fails after the frames were
 * written. */
static void
test_vfs_full(void)
{
	sweep(MODE_VFS, false, TR_STORE_FULL, "vfs, once, full");
}

/* On a file with data and a WAL to recover: the open reads and recovers
 * under the fault. */
static void
test_vfs_existing(void)
{
	seeded = true;
	sweep(MODE_VFS, false, TR_STORE_NORMAL,
	      "vfs, once, a file with data and a WAL");
	seeded = false;
}

/* As a disk that goes away: from the N-th operation on, every one fails,
 * the store's close included. */
static void
test_vfs_persistent(void)
{
	sweep(MODE_VFS, true, TR_STORE_FULL, "vfs, from then on, full");
}

static void
test_malloc(void)
{
	sweep(MODE_MALLOC, false, TR_STORE_NORMAL, "malloc, once, normal");
}

/* With nothing armed a run passes: the checks hold on a good run. */
static void
test_no_fault(void)
{
	struct fx f;
	struct tally t;
	char path[300];

	memset(&t, 0, sizeof(t));
	fx_start(&f, 2);
	snprintf(path, sizeof(path), "%s/run.db", dir);
	run_failures = 0;
	run_once(&f, MODE_VFS, PH_OPEN, 0, false, path, &t);
	CHECK(!reached());
	CHECK_EQ_INT(t.req_errors, 0);
	for (int w = 0; w < WRITERS; w++) {
		for (int s = 0; s < STEPS; s++) {
			bool out_of_turn = script[s].kind == S_APPEND &&
					   script[s].key == 1;
			CHECK(out_of_turn ? atts[w][s].status == TR_EEXIST
					  : acked(&atts[w][s]));
		}
	}
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "store fault vfs: a run without a fault passes", test_no_fault },
	{ "store fault vfs: every operation fails once, durability normal",
	  test_vfs },
	{ "store fault vfs: every operation fails once, durability full",
	  test_vfs_full },
	{ "store fault vfs: every operation fails once, on a file to recover",
	  test_vfs_existing },
	{ "store fault vfs: every operation fails from one on",
	  test_vfs_persistent },
	{ "store fault malloc: every SQLite allocation fails once",
	  test_malloc },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	unsigned k, m;

	if (argc > 2) {
		if (sscanf(argv[2], "%u/%u", &k, &m) != 2 || k < 1 || k > m) {
			fprintf(stderr, "usage: %s [NAME [K/M]]\n", argv[0]);
			return 2;
		}
		share_first = k;
		share_step = m;
	}
	install();
	dir_make();
	int rc = harness_run(tests, argc, argv);
	dir_clear(true);
	return rc;
}
