/*
 * The handshake messages (handshake.h, docs/NET.md): hello and response
 * as JSON through cJSON, the challenge-response MAC through mbedTLS.
 *
 * Invariants: a message is measured before cJSON sees it, and cJSON is
 * given its length, so input needs no terminating NUL and is never read
 * past. Every parse frees its tree on every path. MACs are compared in
 * constant time.
 *
 * Threads: none; each call stands alone.
 */
#include "net/handshake.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>
#include <mbedtls/md.h>

const char *
trn_hs_err_name(int err)
{
	switch (err) {
	case TRN_HS_OK:
		return "TRN_HS_OK";
#define TRN__HS_ERR_NAME(name, val, str)                                       \
	case TRN_HS_E##name:                                                   \
		return "TRN_HS_E" #name;
		TRN_HS_ERR_MAP(TRN__HS_ERR_NAME)
#undef TRN__HS_ERR_NAME
	}
	return "TRN_HS_E?";
}

const char *
trn_hs_strerror(int err)
{
	switch (err) {
	case TRN_HS_OK:
		return "ok";
#define TRN__HS_ERR_STR(name, val, str)                                        \
	case TRN_HS_E##name:                                                   \
		return str;
		TRN_HS_ERR_MAP(TRN__HS_ERR_STR)
#undef TRN__HS_ERR_STR
	}
	return "unknown error";
}

static void
to_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

/* Exactly 2 * n hex digits into n bytes. */
static bool
from_hex(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			return false;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

int
trn_hello_init(trn_hello *h, const char *name, uint32_t creation)
{
	size_t len = name != NULL ? strnlen(name, TRN_NAME_MAX + 1) : 0;

	memset(h, 0, sizeof(*h));
	if (!trn_name_valid(name, len)) {
		return TRN_HS_ENAME;
	}
	h->version = TRN_HS_VERSION;
	h->creation = creation;
	h->name_len = (uint8_t)len;
	memcpy(h->name, name, len);
	/* 32 bytes never block once the pool is initialised; EINTR retries. */
	size_t got = 0;
	while (got < TRN_NONCE_SIZE) {
		ssize_t r = getrandom(h->nonce + got, TRN_NONCE_SIZE - got, 0);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			return TRN_HS_ERANDOM;
		}
		got += (size_t)r;
	}
	return TRN_HS_OK;
}

/* Print @obj (consumed) unformatted into a buffer the caller frees. */
static int
print_json(cJSON *obj, char **out, size_t *len)
{
	char *s = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;

	cJSON_Delete(obj);
	if (s == NULL) {
		return TRN_HS_ENOMEM;
	}
	/* cJSON allocates with malloc unless told otherwise: free() fits. */
	*out = s;
	*len = strlen(s);
	return TRN_HS_OK;
}

int
trn_hello_encode(const trn_hello *h, char **out, size_t *len)
{
	char nonce[2 * TRN_NONCE_SIZE + 1];

	if (h->name_len != strnlen(h->name, sizeof(h->name)) ||
	    !trn_name_valid(h->name, h->name_len) ||
	    h->service > TRN_SERVICE_MAX ||
	    strnlen(h->listen, sizeof(h->listen)) == sizeof(h->listen)) {
		return TRN_HS_EINVAL;
	}
	to_hex(h->nonce, TRN_NONCE_SIZE, nonce);
	cJSON *o = cJSON_CreateObject();
	if (o == NULL ||
	    cJSON_AddNumberToObject(o, "troupe", h->version) == NULL ||
	    cJSON_AddStringToObject(o, "name", h->name) == NULL ||
	    cJSON_AddNumberToObject(o, "creation", h->creation) == NULL ||
	    cJSON_AddStringToObject(o, "nonce", nonce) == NULL ||
	    (h->service != 0 &&
	     cJSON_AddNumberToObject(o, "service", (double)h->service) ==
		     NULL) ||
	    (h->listen[0] != '\0' &&
	     cJSON_AddStringToObject(o, "listen", h->listen) == NULL)) {
		cJSON_Delete(o);
		return TRN_HS_ENOMEM;
	}
	return print_json(o, out, len);
}

int
trn_response_encode(const uint8_t mac[TRN_MAC_SIZE], char **out, size_t *len)
{
	char hex[2 * TRN_MAC_SIZE + 1];

	to_hex(mac, TRN_MAC_SIZE, hex);
	cJSON *o = cJSON_CreateObject();
	if (o == NULL || cJSON_AddStringToObject(o, "mac", hex) == NULL) {
		cJSON_Delete(o);
		return TRN_HS_ENOMEM;
	}
	return print_json(o, out, len);
}

/*
 * Whether the text holds a NUL byte or the escape of one (\u0000). cJSON
 * keeps strings NUL-terminated, so "a\u0000b" would read as "a": a check
 * of the name would pass on less than the peer sent. No field of a valid
 * message needs either.
 */
static bool
has_nul(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\0') {
			return true;
		}
		if (buf[i] == '\\' && i + 5 < len && buf[i + 1] == 'u' &&
		    buf[i + 2] == '0' && buf[i + 3] == '0' &&
		    buf[i + 4] == '0' && buf[i + 5] == '0') {
			return true;
		}
	}
	return false;
}

/*
 * Parse one JSON object filling the whole buffer (white space aside).
 * cJSON reports an allocation failure like a syntax error; a message this
 * small makes the difference moot, and both are refused.
 */
static int
parse_object(const char *buf, size_t len, cJSON **out)
{
	const char *end = NULL;

	if (len > TRN_HS_MAX) {
		return TRN_HS_ETOO_BIG;
	}
	if (buf == NULL || len == 0) {
		return TRN_HS_EJSON;
	}
	if (has_nul(buf, len)) {
		return TRN_HS_EJSON;
	}
	cJSON *o = cJSON_ParseWithLengthOpts(buf, len, &end, false);
	if (o == NULL) {
		return TRN_HS_EJSON;
	}
	size_t used = (size_t)(end - buf);
	while (used < len && (buf[used] == ' ' || buf[used] == '\n' ||
			      buf[used] == '\r' || buf[used] == '\t')) {
		used++;
	}
	if (used != len || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return TRN_HS_EJSON;
	}
	*out = o;
	return TRN_HS_OK;
}

/* A JSON number that is an integer in [0, max]. */
static bool
get_uint(const cJSON *item, double max, uint32_t *out)
{
	if (!cJSON_IsNumber(item)) {
		return false;
	}
	double d = item->valuedouble;
	if (!(d >= 0 && d <= max) || floor(d) != d) {
		return false;
	}
	*out = (uint32_t)d;
	return true;
}

/* A JSON number that is an integer in [0, TRN_SERVICE_MAX]: 48 bits,
 * which a double holds exactly. */
static bool
get_u48(const cJSON *item, uint64_t *out)
{
	if (!cJSON_IsNumber(item)) {
		return false;
	}
	double d = item->valuedouble;
	if (!(d >= 0 && d <= (double)TRN_SERVICE_MAX) || floor(d) != d) {
		return false;
	}
	*out = (uint64_t)d;
	return true;
}

int
trn_hello_parse(const char *buf, size_t len, trn_hello *out)
{
	cJSON *o = NULL;
	int err = parse_object(buf, len, &o);
	if (err < 0) {
		return err;
	}
	const cJSON *version = cJSON_GetObjectItemCaseSensitive(o, "troupe");
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
	const cJSON *creation = cJSON_GetObjectItemCaseSensitive(o, "creation");
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(o, "nonce");
	const cJSON *service = cJSON_GetObjectItemCaseSensitive(o, "service");
	const cJSON *listen = cJSON_GetObjectItemCaseSensitive(o, "listen");
	trn_hello h = { 0 };

	if (version == NULL || name == NULL || creation == NULL ||
	    nonce == NULL) {
		err = TRN_HS_EMISSING;
	} else if (!get_uint(version, UINT32_MAX, &h.version) ||
		   !cJSON_IsString(name) ||
		   !get_uint(creation, UINT32_MAX, &h.creation) ||
		   !cJSON_IsString(nonce) ||
		   (service != NULL && !get_u48(service, &h.service)) ||
		   (listen != NULL &&
		    (!cJSON_IsString(listen) ||
		     listen->valuestring[0] == '\0' ||
		     strlen(listen->valuestring) > TRN_URL_MAX))) {
		err = TRN_HS_ETYPE;
	} else if (h.version != TRN_HS_VERSION) {
		err = TRN_HS_EVERSION;
	} else if (!trn_name_valid(name->valuestring,
				   strlen(name->valuestring))) {
		err = TRN_HS_ENAME;
	} else if (!from_hex(nonce->valuestring, h.nonce, TRN_NONCE_SIZE)) {
		err = TRN_HS_ENONCE;
	} else {
		h.name_len = (uint8_t)strlen(name->valuestring);
		memcpy(h.name, name->valuestring, h.name_len);
		if (listen != NULL) {
			memcpy(h.listen, listen->valuestring,
			       strlen(listen->valuestring));
		}
		*out = h;
	}
	cJSON_Delete(o);
	return err;
}

int
trn_response_parse(const char *buf, size_t len, uint8_t mac[TRN_MAC_SIZE])
{
	cJSON *o = NULL;
	int err = parse_object(buf, len, &o);
	if (err < 0) {
		return err;
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "mac");
	uint8_t got[TRN_MAC_SIZE];

	if (m == NULL) {
		err = TRN_HS_EMISSING;
	} else if (!cJSON_IsString(m)) {
		err = TRN_HS_ETYPE;
	} else if (!from_hex(m->valuestring, got, TRN_MAC_SIZE)) {
		err = TRN_HS_EMAC_FORMAT;
	} else {
		memcpy(mac, got, TRN_MAC_SIZE);
	}
	cJSON_Delete(o);
	return err;
}

int
trn_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		uint8_t out[TRN_MAC_SIZE])
{
	const mbedtls_md_info_t *md =
		mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

	if (md == NULL ||
	    mbedtls_md_hmac(md, key, key_len, data, len, out) != 0) {
		return TRN_HS_ECRYPTO;
	}
	return TRN_HS_OK;
}

int
trn_hs_mac(const void *secret, size_t secret_len, uint8_t role,
	   const trn_hello *own, const trn_hello *peer,
	   uint8_t mac[TRN_MAC_SIZE])
{
	uint8_t data[1 + 2 * TRN_NONCE_SIZE + TRN_NAME_MAX];

	if (secret == NULL || secret_len == 0 ||
	    (role != TRN_ROLE_DIALER && role != TRN_ROLE_LISTENER) ||
	    own->name_len == 0 || own->name_len > TRN_NAME_MAX) {
		return TRN_HS_EINVAL;
	}
	data[0] = role;
	memcpy(data + 1, peer->nonce, TRN_NONCE_SIZE);
	memcpy(data + 1 + TRN_NONCE_SIZE, own->nonce, TRN_NONCE_SIZE);
	memcpy(data + 1 + 2 * TRN_NONCE_SIZE, own->name, own->name_len);
	return trn_hmac_sha256(secret, secret_len, data,
			       1 + 2 * TRN_NONCE_SIZE + own->name_len, mac);
}

/* Compare without a branch on the data, so timing tells nothing. */
static bool
equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t diff = 0;

	for (size_t i = 0; i < n; i++) {
		diff |= a[i] ^ b[i];
	}
	return diff == 0;
}

int
trn_hs_verify(const void *secret, size_t secret_len, uint8_t peer_role,
	      const trn_hello *own, const trn_hello *peer,
	      const uint8_t mac[TRN_MAC_SIZE])
{
	uint8_t want[TRN_MAC_SIZE];

	/* What the peer computed: its role, our nonce, its nonce, its name. */
	int err = trn_hs_mac(secret, secret_len, peer_role, peer, own, want);
	if (err < 0) {
		return err;
	}
	return equal_ct(want, mac, TRN_MAC_SIZE) ? TRN_HS_OK : TRN_HS_EMAC;
}
