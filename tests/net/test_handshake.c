/*
 * The handshake messages (net/handshake.h): hello and response round
 * trips, the HMAC against RFC 4231 through the same path as the
 * handshake's, a full exchange with the right and the wrong secret, and
 * one test per refusal.
 */
#include "net/handshake.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define CHECK_HS(expr, want)                                                   \
	do {                                                                   \
		int ch_ = (int)(expr);                                         \
		if (ch_ != (int)(want)) {                                      \
			fprintf(stderr, "%s:%d: %s returned %s, want %s\n",    \
				__FILE__, __LINE__, #expr,                     \
				trn_hs_err_name(ch_), trn_hs_err_name(want));  \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

static const char secret[] = "cluster secret";

static const char good_nonce[] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static int
parse_hello(const char *s)
{
	trn_hello h;

	return trn_hello_parse(s, strlen(s), &h);
}

static int
parse_response(const char *s)
{
	uint8_t mac[TRN_MAC_SIZE];

	return trn_response_parse(s, strlen(s), mac);
}

static void
test_hello_round_trip(void)
{
	trn_hello a, b;
	char *s;
	size_t len;

	CHECK_HS(trn_hello_init(&a, "alpha.node-1", 4000000000u), TRN_HS_OK);
	CHECK_HS(trn_hello_encode(&a, &s, &len), TRN_HS_OK);
	CHECK(len < TRN_HS_MAX);
	CHECK(strstr(s, "\"troupe\":1") != NULL);
	CHECK_HS(trn_hello_parse(s, len, &b), TRN_HS_OK);
	CHECK_EQ_U64(b.version, TRN_HS_VERSION);
	CHECK_EQ_U64(b.creation, 4000000000u);
	CHECK_STR(b.name, "alpha.node-1");
	CHECK_EQ_U64(b.name_len, 12);
	CHECK(memcmp(a.nonce, b.nonce, TRN_NONCE_SIZE) == 0);
	free(s);

	/* Two hellos never share a nonce. */
	CHECK_HS(trn_hello_init(&b, "alpha", 1), TRN_HS_OK);
	CHECK(memcmp(a.nonce, b.nonce, TRN_NONCE_SIZE) != 0);

	/* Unknown fields, white space and upper-case hex are accepted. */
	char buf[512];
	snprintf(buf, sizeof(buf),
		 " {\"later\": [1, {}], \"troupe\": 1, \"name\": \"b\", "
		 "\"creation\": 0, \"nonce\": \"%s\"}\n",
		 "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1"
		 "E1F");
	CHECK_HS(parse_hello(buf), TRN_HS_OK);

	/* The input needs no NUL: the parser stops at the length given. */
	CHECK_HS(trn_hello_encode(&a, &s, &len), TRN_HS_OK);
	char *copy = malloc(len);
	memcpy(copy, s, len);
	CHECK_HS(trn_hello_parse(copy, len, &b), TRN_HS_OK);
	CHECK_HS(trn_hello_parse(copy, len - 1, &b), TRN_HS_EJSON);
	free(copy);
	free(s);
}

/* The optional service pid and listen URL: absent is 0 or "", a value
 * in range round-trips, anything else is refused as a wrong type. */
static void
test_hello_service(void)
{
	trn_hello a, b;
	char *s;
	size_t len;

	CHECK_HS(trn_hello_init(&a, "alpha", 1), TRN_HS_OK);
	CHECK_EQ_U64(a.service, 0);
	CHECK_HS(trn_hello_encode(&a, &s, &len), TRN_HS_OK);
	CHECK(strstr(s, "service") == NULL);
	free(s);
	a.service = TRN_SERVICE_MAX;
	CHECK_HS(trn_hello_encode(&a, &s, &len), TRN_HS_OK);
	CHECK_HS(trn_hello_parse(s, len, &b), TRN_HS_OK);
	CHECK_EQ_U64(b.service, TRN_SERVICE_MAX);
	free(s);
	a.service = TRN_SERVICE_MAX + 1;
	CHECK_HS(trn_hello_encode(&a, &s, &len), TRN_HS_EINVAL);

	/* The optional listen URL: a non-empty string, at most
	 * TRN_URL_MAX bytes. */
	a.service = 0;
	snprintf(a.listen, sizeof(a.listen), "tcp://127.0.0.1:7001");
	CHECK_HS(trn_hello_encode(&a, &s, &len), TRN_HS_OK);
	CHECK_HS(trn_hello_parse(s, len, &b), TRN_HS_OK);
	CHECK_STR(b.listen, "tcp://127.0.0.1:7001");
	free(s);
	static const char *const bad_listen[] = { "\"\"", "7", "null" };
	for (size_t i = 0; i < 3; i++) {
		char buf[512];
		snprintf(buf, sizeof(buf),
			 "{\"troupe\": 1, \"name\": \"b\", \"creation\": 0, "
			 "\"nonce\": \"%064d\", \"listen\": %s}",
			 0, bad_listen[i]);
		CHECK_HS(parse_hello(buf), TRN_HS_ETYPE);
	}
	char longurl[TRN_URL_MAX + 2];
	memset(longurl, 'u', sizeof(longurl) - 1);
	longurl[sizeof(longurl) - 1] = '\0';
	char buf2[512];
	snprintf(buf2, sizeof(buf2),
		 "{\"troupe\": 1, \"name\": \"b\", \"creation\": 0, "
		 "\"nonce\": \"%064d\", \"listen\": \"%s\"}",
		 0, longurl);
	CHECK_HS(parse_hello(buf2), TRN_HS_ETYPE);
	longurl[TRN_URL_MAX] = '\0';
	snprintf(buf2, sizeof(buf2),
		 "{\"troupe\": 1, \"name\": \"b\", \"creation\": 0, "
		 "\"nonce\": \"%064d\", \"listen\": \"%s\"}",
		 0, longurl);
	CHECK_HS(parse_hello(buf2), TRN_HS_OK);

	static const char *const bad[] = { "-1", "1.5", "\"7\"",
					   "281474976710656", "true" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[512];
		snprintf(buf, sizeof(buf),
			 "{\"troupe\": 1, \"name\": \"b\", \"creation\": 0, "
			 "\"nonce\": \"%064d\", \"service\": %s}",
			 0, bad[i]);
		CHECK_HS(parse_hello(buf), TRN_HS_ETYPE);
	}
}

static void
test_hello_init_refuses_bad_names(void)
{
	trn_hello h;

	CHECK_HS(trn_hello_init(&h, "", 1), TRN_HS_ENAME);
	CHECK_HS(trn_hello_init(&h, "a/b", 1), TRN_HS_ENAME);
	CHECK_HS(trn_hello_init(&h, NULL, 1), TRN_HS_ENAME);
	CHECK_HS(trn_hello_init(&h,
				"0123456789012345678901234567890123456789"
				"012345678901234567890123",
				1),
		 TRN_HS_ENAME);
	CHECK_HS(trn_hello_init(&h,
				"012345678901234567890123456789012345678"
				"9012345678901234567890123",
				1),
		 TRN_HS_ENAME);
	CHECK_HS(trn_hello_init(&h,
				"012345678901234567890123456789012345678"
				"901234567890123456789012",
				1),
		 TRN_HS_OK);
}

/* RFC 4231, test case 2: key "Jefe". */
static void
test_hmac_rfc4231_case_2(void)
{
	static const uint8_t want[TRN_MAC_SIZE] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
		0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
		0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
		0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
	};
	static const char data[] = "what do ya want for nothing?";
	uint8_t mac[TRN_MAC_SIZE];

	CHECK_HS(trn_hmac_sha256("Jefe", 4, data, strlen(data), mac),
		 TRN_HS_OK);
	CHECK(memcmp(mac, want, TRN_MAC_SIZE) == 0);

	/* The handshake's MAC is that function over role, nonces, name. */
	trn_hello own, peer;
	uint8_t bytes[1 + 2 * TRN_NONCE_SIZE + 5], direct[TRN_MAC_SIZE];

	CHECK_HS(trn_hello_init(&own, "alpha", 1), TRN_HS_OK);
	CHECK_HS(trn_hello_init(&peer, "beta", 2), TRN_HS_OK);
	bytes[0] = TRN_ROLE_DIALER;
	memcpy(bytes + 1, peer.nonce, TRN_NONCE_SIZE);
	memcpy(bytes + 1 + TRN_NONCE_SIZE, own.nonce, TRN_NONCE_SIZE);
	memcpy(bytes + 1 + 2 * TRN_NONCE_SIZE, "alpha", 5);
	CHECK_HS(trn_hmac_sha256("Jefe", 4, bytes, sizeof(bytes), direct),
		 TRN_HS_OK);
	CHECK_HS(trn_hs_mac("Jefe", 4, TRN_ROLE_DIALER, &own, &peer, mac),
		 TRN_HS_OK);
	CHECK(memcmp(mac, direct, TRN_MAC_SIZE) == 0);
}

/* Both sides of a handshake, as the link runs it; the response text too. */
static int
exchange(const char *dialer_secret, const char *listener_secret)
{
	trn_hello d, l, d_seen, l_seen;
	uint8_t mac[TRN_MAC_SIZE], got[TRN_MAC_SIZE];
	char *s;
	size_t len;

	CHECK_HS(trn_hello_init(&d, "alpha", 1), TRN_HS_OK);
	CHECK_HS(trn_hello_init(&l, "beta", 9), TRN_HS_OK);
	CHECK_HS(trn_hello_encode(&d, &s, &len), TRN_HS_OK);
	CHECK_HS(trn_hello_parse(s, len, &d_seen), TRN_HS_OK);
	free(s);
	CHECK_HS(trn_hello_encode(&l, &s, &len), TRN_HS_OK);
	CHECK_HS(trn_hello_parse(s, len, &l_seen), TRN_HS_OK);
	free(s);

	/* The dialer answers; the listener checks. */
	CHECK_HS(trn_hs_mac(dialer_secret, strlen(dialer_secret),
			    TRN_ROLE_DIALER, &d, &l_seen, mac),
		 TRN_HS_OK);
	CHECK_HS(trn_response_encode(mac, &s, &len), TRN_HS_OK);
	CHECK_HS(trn_response_parse(s, len, got), TRN_HS_OK);
	free(s);
	int r1 = trn_hs_verify(listener_secret, strlen(listener_secret),
			       TRN_ROLE_DIALER, &l, &d_seen, got);

	/* The listener answers; the dialer checks. */
	CHECK_HS(trn_hs_mac(listener_secret, strlen(listener_secret),
			    TRN_ROLE_LISTENER, &l, &d_seen, mac),
		 TRN_HS_OK);
	int r2 = trn_hs_verify(dialer_secret, strlen(dialer_secret),
			       TRN_ROLE_LISTENER, &d, &l_seen, mac);
	CHECK_EQ_INT(r1, r2);
	return r1;
}

static void
test_exchange_with_the_same_secret(void)
{
	CHECK_HS(exchange(secret, secret), TRN_HS_OK);
}

static void
test_exchange_with_a_wrong_secret(void)
{
	CHECK_HS(exchange(secret, "cluster secreT"), TRN_HS_EMAC);
	CHECK_HS(exchange(secret, "cluster secret "), TRN_HS_EMAC);
}

static void
test_reflected_or_replayed_mac_is_refused(void)
{
	trn_hello d, l, l2;
	uint8_t mac[TRN_MAC_SIZE];

	CHECK_HS(trn_hello_init(&d, "alpha", 1), TRN_HS_OK);
	CHECK_HS(trn_hello_init(&l, "beta", 9), TRN_HS_OK);
	/* The listener's own answer sent back as the dialer's. */
	CHECK_HS(trn_hs_mac(secret, strlen(secret), TRN_ROLE_LISTENER, &l, &d,
			    mac),
		 TRN_HS_OK);
	CHECK_HS(trn_hs_verify(secret, strlen(secret), TRN_ROLE_DIALER, &l, &d,
			       mac),
		 TRN_HS_EMAC);
	/* An answer to another connection's nonce. */
	CHECK_HS(trn_hs_mac(secret, strlen(secret), TRN_ROLE_DIALER, &d, &l,
			    mac),
		 TRN_HS_OK);
	CHECK_HS(trn_hs_verify(secret, strlen(secret), TRN_ROLE_DIALER, &l, &d,
			       mac),
		 TRN_HS_OK);
	CHECK_HS(trn_hello_init(&l2, "beta", 9), TRN_HS_OK);
	CHECK_HS(trn_hs_verify(secret, strlen(secret), TRN_ROLE_DIALER, &l2, &d,
			       mac),
		 TRN_HS_EMAC);
	/* One bit flipped anywhere. */
	for (size_t i = 0; i < TRN_MAC_SIZE; i++) {
		mac[i] ^= 0x10;
		CHECK_HS(trn_hs_verify(secret, strlen(secret), TRN_ROLE_DIALER,
				       &l, &d, mac),
			 TRN_HS_EMAC);
		mac[i] ^= 0x10;
	}
	/* Misuse: no secret, no such role. */
	CHECK_HS(trn_hs_mac("", 0, TRN_ROLE_DIALER, &d, &l, mac),
		 TRN_HS_EINVAL);
	CHECK_HS(trn_hs_mac(secret, strlen(secret), 3, &d, &l, mac),
		 TRN_HS_EINVAL);
}

static void
test_refuses_too_big(void)
{
	size_t n = TRN_HS_MAX + 1;
	char *s = malloc(n);
	trn_hello h;
	uint8_t mac[TRN_MAC_SIZE];

	/* Valid JSON padded with spaces: refused on size alone. */
	memset(s, ' ', n);
	memcpy(s, "{}", 2);
	CHECK_HS(trn_hello_parse(s, n, &h), TRN_HS_ETOO_BIG);
	CHECK_HS(trn_response_parse(s, n, mac), TRN_HS_ETOO_BIG);
	CHECK_HS(trn_hello_parse(s, (size_t)-1, &h), TRN_HS_ETOO_BIG);
	CHECK_HS(trn_response_parse(s, TRN_HS_MAX, mac), TRN_HS_EMISSING);
	free(s);
}

static void
test_refuses_not_json(void)
{
	CHECK_HS(parse_hello(""), TRN_HS_EJSON);
	CHECK_HS(parse_hello("hello"), TRN_HS_EJSON);
	CHECK_HS(parse_hello("{\"troupe\": 1,"), TRN_HS_EJSON);
	CHECK_HS(parse_hello("[1, 2]"), TRN_HS_EJSON);
	CHECK_HS(parse_hello("\"troupe\""), TRN_HS_EJSON);
	CHECK_HS(parse_hello("{} {}"), TRN_HS_EJSON);
	CHECK_HS(parse_hello("{}x"), TRN_HS_EJSON);
	CHECK_HS(parse_response("null"), TRN_HS_EJSON);
	/* A NUL, raw or escaped, would cut a string short: refused. */
	char buf[256];
	snprintf(buf, sizeof(buf),
		 "{\"troupe\": 1, \"name\": \"a\\u0000b\", \"creation\": 1, "
		 "\"nonce\": \"%s\"}",
		 good_nonce);
	CHECK_HS(parse_hello(buf), TRN_HS_EJSON);
	size_t n = strlen(buf);
	char *at = strstr(buf, "\\u0000");
	memmove(at + 1, at + 6, (size_t)(buf + n + 1 - (at + 6)));
	at[0] = '\0';
	trn_hello h0;
	CHECK_HS(trn_hello_parse(buf, n - 5, &h0), TRN_HS_EJSON);
	/* Nesting deeper than cJSON allows is refused, not a crash. */
	char deep[TRN_HS_MAX];
	memset(deep, '[', sizeof(deep));
	trn_hello h;
	CHECK_HS(trn_hello_parse(deep, sizeof(deep), &h), TRN_HS_EJSON);
}

static void
test_refuses_wrong_types(void)
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "{\"troupe\": \"1\", \"name\": \"a\", \"creation\": 1, "
		 "\"nonce\": \"%s\"}",
		 good_nonce);
	CHECK_HS(parse_hello(buf), TRN_HS_ETYPE);
	snprintf(buf, sizeof(buf),
		 "{\"troupe\": 1, \"name\": 7, \"creation\": 1, "
		 "\"nonce\": \"%s\"}",
		 good_nonce);
	CHECK_HS(parse_hello(buf), TRN_HS_ETYPE);
	const char *creations[] = { "-1",   "1.5",   "4294967296", "true",
				    "null", "\"3\"", "1e300" };
	for (size_t i = 0; i < sizeof(creations) / sizeof(*creations); i++) {
		snprintf(buf, sizeof(buf),
			 "{\"troupe\": 1, \"name\": \"a\", \"creation\": %s, "
			 "\"nonce\": \"%s\"}",
			 creations[i], good_nonce);
		CHECK_HS(parse_hello(buf), TRN_HS_ETYPE);
	}
	snprintf(buf, sizeof(buf),
		 "{\"troupe\": 1, \"name\": \"a\", \"creation\": 4294967295, "
		 "\"nonce\": \"%s\"}",
		 good_nonce);
	CHECK_HS(parse_hello(buf), TRN_HS_OK);
	CHECK_HS(parse_hello("{\"troupe\": 1, \"name\": \"a\", \"creation\": "
			     "1, \"nonce\": 5}"),
		 TRN_HS_ETYPE);
	CHECK_HS(parse_response("{\"mac\": 12}"), TRN_HS_ETYPE);
	CHECK_HS(parse_response("{\"mac\": [\"00\"]}"), TRN_HS_ETYPE);
}

static void
test_refuses_missing_fields(void)
{
	char buf[512];
	const char *fields[] = { "\"troupe\": 1", "\"name\": \"a\"",
				 "\"creation\": 1", "\"nonce\": \"N\"" };

	for (int drop = 0; drop < 4; drop++) {
		char *p = buf;
		p += sprintf(p, "{");
		bool first = true;
		for (int i = 0; i < 4; i++) {
			if (i == drop) {
				continue;
			}
			p += sprintf(p, "%s%s", first ? "" : ", ", fields[i]);
			first = false;
		}
		sprintf(p, "}");
		CHECK_HS(parse_hello(buf), TRN_HS_EMISSING);
	}
	/* Names are case-sensitive. */
	snprintf(buf, sizeof(buf),
		 "{\"Troupe\": 1, \"name\": \"a\", \"creation\": 1, "
		 "\"nonce\": \"%s\"}",
		 good_nonce);
	CHECK_HS(parse_hello(buf), TRN_HS_EMISSING);
	CHECK_HS(parse_response("{}"), TRN_HS_EMISSING);
	CHECK_HS(parse_response("{\"MAC\": \"00\"}"), TRN_HS_EMISSING);
}

static void
test_refuses_other_versions(void)
{
	char buf[512];
	const char *versions[] = { "0", "2", "4294967295" };

	for (size_t i = 0; i < 3; i++) {
		snprintf(buf, sizeof(buf),
			 "{\"troupe\": %s, \"name\": \"a\", \"creation\": 1, "
			 "\"nonce\": \"%s\"}",
			 versions[i], good_nonce);
		CHECK_HS(parse_hello(buf), TRN_HS_EVERSION);
	}
}

static void
test_refuses_bad_names(void)
{
	char buf[512];
	const char *names[] = {
		"",
		"a b",
		"a/b",
		"caf\\u00e9",
		"a\\u0001b",
		"0123456789012345678901234567890123456789012345678901234567890"
		"123",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		snprintf(buf, sizeof(buf),
			 "{\"troupe\": 1, \"name\": \"%s\", \"creation\": 1, "
			 "\"nonce\": \"%s\"}",
			 names[i], good_nonce);
		CHECK_HS(parse_hello(buf), TRN_HS_ENAME);
	}
}

static void
test_refuses_bad_nonces(void)
{
	char buf[512];
	const char *nonces[] = {
		"",
		"00",
		/* 63 and 65 digits */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
		"1",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
		"1f"
		"0",
		/* 64 characters, one not a hex digit */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
		"1g",
		" 00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
		"1f",
	};

	for (size_t i = 0; i < sizeof(nonces) / sizeof(*nonces); i++) {
		snprintf(buf, sizeof(buf),
			 "{\"troupe\": 1, \"name\": \"a\", \"creation\": 1, "
			 "\"nonce\": \"%s\"}",
			 nonces[i]);
		CHECK_HS(parse_hello(buf), TRN_HS_ENONCE);
	}
}

static void
test_refuses_bad_mac_format(void)
{
	char buf[512];

	CHECK_HS(parse_response("{\"mac\": \"\"}"), TRN_HS_EMAC_FORMAT);
	snprintf(buf, sizeof(buf), "{\"mac\": \"%.62s\"}", good_nonce);
	CHECK_HS(parse_response(buf), TRN_HS_EMAC_FORMAT);
	snprintf(buf, sizeof(buf), "{\"mac\": \"%sx\"}", good_nonce);
	CHECK_HS(parse_response(buf), TRN_HS_EMAC_FORMAT);
	snprintf(buf, sizeof(buf), "{\"mac\": \"%s\"}", good_nonce);
	CHECK_HS(parse_response(buf), TRN_HS_OK);
}

static void
test_error_names_are_distinct(void)
{
	for (int a = -13; a <= 0; a++) {
		CHECK(strcmp(trn_hs_err_name(a), "TRN_HS_E?") != 0);
		CHECK(strcmp(trn_hs_strerror(a), "unknown error") != 0);
		for (int c = a + 1; c <= 0; c++) {
			CHECK(strcmp(trn_hs_err_name(a), trn_hs_err_name(c)) !=
			      0);
		}
	}
	CHECK_STR(trn_hs_err_name(-14), "TRN_HS_E?");
}

static const struct test_case tests[] = {
	{ "handshake: hello round-trips", test_hello_round_trip },
	{ "handshake: the optional service pid", test_hello_service },
	{ "handshake: hello refuses bad names",
	  test_hello_init_refuses_bad_names },
	{ "handshake: HMAC-SHA256, RFC 4231 case 2", test_hmac_rfc4231_case_2 },
	{ "handshake: the same secret passes",
	  test_exchange_with_the_same_secret },
	{ "handshake: a wrong secret is refused",
	  test_exchange_with_a_wrong_secret },
	{ "handshake: a reflected or replayed MAC is refused",
	  test_reflected_or_replayed_mac_is_refused },
	{ "handshake: refuses a message over the maximum",
	  test_refuses_too_big },
	{ "handshake: refuses what is not JSON", test_refuses_not_json },
	{ "handshake: refuses wrong types", test_refuses_wrong_types },
	{ "handshake: refuses missing fields", test_refuses_missing_fields },
	{ "handshake: refuses other versions", test_refuses_other_versions },
	{ "handshake: refuses bad names", test_refuses_bad_names },
	{ "handshake: refuses bad nonces", test_refuses_bad_nonces },
	{ "handshake: refuses a malformed MAC", test_refuses_bad_mac_format },
	{ "handshake: error names are distinct",
	  test_error_names_are_distinct },
	{ NULL, NULL },
};

TEST_MAIN(tests)
