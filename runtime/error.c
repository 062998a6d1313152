/*
 * tr_strerror() and tr_err_name(), generated from the one error list in
 * <troupe/error.h>. Threads: any (static tables).
 */
#include <troupe/error.h>

const char *
tr_strerror(int err)
{
	switch (err) {
	case TR_OK:
		return "ok";
#define X(name, val, str)                                                      \
	case TR_##name:                                                        \
		return str;
		TR_ERR_MAP(X)
#undef X
	default:
		return "unknown error";
	}
}

const char *
tr_err_name(int err)
{
	switch (err) {
	case TR_OK:
		return "TR_OK";
#define X(name, val, str)                                                      \
	case TR_##name:                                                        \
		return "TR_" #name;
		TR_ERR_MAP(X)
#undef X
	default:
		return "TR_E?";
	}
}

const char *
tr_version(void)
{
	return TR_VERSION_STRING;
}
