/*
 * The handshake of a link (docs/NET.md): two JSON messages each way, never
 * on the message path.
 *
 *   hello     {"troupe": 1, "name": "alpha", "creation": 7,
 *              "nonce": "<32 random bytes, 64 hex digits>",
 *              "service": 4097, "listen": "tcp://10.0.0.1:7001"}
 *   ("service", optional: the local part of the node's service actor's
 *   pid, 1..2^48-1; absent or 0: the node runs none. "listen", optional:
 *   the URL the node listens on, 1..TRN_URL_MAX bytes, for peers that
 *   tell others about it)
 *   response  {"mac": "<HMAC-SHA256, 64 hex digits>"}
 *
 * Each side sends its hello, reads the peer's, then sends its response:
 * HMAC-SHA256(secret, own role || peer's nonce || own nonce || own name),
 * and checks the peer's response against the value the peer must have
 * computed. The role byte (the dialer's differs from the listener's) keeps
 * a side's own response from being reflected back as the peer's; the
 * peer's nonce, fresh on every connection, keeps an old response from
 * being replayed; the name binds the proof to the identity claimed.
 *
 * Parsing checks the size before it parses and refuses each fault with its
 * own code. Threads: none; pure functions apart from getrandom(2).
 */
#ifndef TR_NET_HANDSHAKE_H
#define TR_NET_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "net/wire.h"

/* The protocol version a hello names; another is refused. */
#define TRN_HS_VERSION 1u
/* Largest handshake message accepted, checked before parsing. */
#define TRN_HS_MAX     4096u
#define TRN_NONCE_SIZE 32u
#define TRN_MAC_SIZE   32u

/* Role bytes: which end of the connection a side is. */
#define TRN_ROLE_DIALER   0x01u
#define TRN_ROLE_LISTENER 0x02u

#define TRN_HS_ERR_MAP(X)                                                      \
	X(TOO_BIG, -1, "handshake message over the maximum size")              \
	X(JSON, -2, "not a JSON object")                                       \
	X(TYPE, -3, "a field has the wrong type or range")                     \
	X(MISSING, -4, "a required field is missing")                          \
	X(VERSION, -5, "unsupported protocol version")                         \
	X(NAME, -6, "malformed node name")                                     \
	X(NONCE, -7, "nonce is not 64 hex digits")                             \
	X(MAC_FORMAT, -8, "MAC is not 64 hex digits")                          \
	X(MAC, -9, "MAC does not match: wrong secret or tampering")            \
	X(RANDOM, -10, "no random bytes for a nonce")                          \
	X(CRYPTO, -11, "HMAC computation failed")                              \
	X(NOMEM, -12, "out of memory")                                         \
	X(INVAL, -13, "invalid argument")

enum trn_hs_err {
	TRN_HS_OK = 0,
#define TRN__HS_ERR_ENUM(name, val, str) TRN_HS_E##name = (val),
	TRN_HS_ERR_MAP(TRN__HS_ERR_ENUM)
#undef TRN__HS_ERR_ENUM
};

const char *trn_hs_err_name(int err);
const char *trn_hs_strerror(int err);

/* Longest listen URL a hello carries, in bytes. */
#define TRN_URL_MAX 127

typedef struct trn_hello {
	uint32_t version;
	uint32_t creation;
	uint8_t name_len;
	char name[TRN_NAME_MAX + 1]; /* NUL-terminated */
	uint8_t nonce[TRN_NONCE_SIZE];
	uint64_t service; /* its service's pid, local part; 0: none */
	char listen[TRN_URL_MAX + 1]; /* the URL it listens on; "": none */
} trn_hello;

/* Largest service pid local part (48 bits, exact in a JSON number). */
#define TRN_SERVICE_MAX ((UINT64_C(1) << 48) - 1)

/*
 * trn_hello_init() - This side's hello, with a fresh nonce.
 * Return: TRN_HS_OK, TRN_HS_ENAME, TRN_HS_ERANDOM.
 */
int trn_hello_init(trn_hello *h, const char *name, uint32_t creation);

/*
 * trn_hello_encode() / trn_response_encode() - The message as JSON text.
 * Ownership: *out is the caller's (free()); *len excludes the final NUL.
 * Return: TRN_HS_OK, TRN_HS_ENOMEM, TRN_HS_EINVAL (a hello that would not
 * parse).
 */
int trn_hello_encode(const trn_hello *h, char **out, size_t *len);
int
trn_response_encode(const uint8_t mac[TRN_MAC_SIZE], char **out, size_t *len);

/*
 * trn_hello_parse() - Read a peer's hello from @len bytes (no NUL needed).
 * Unknown fields are ignored, for later versions' additions; the
 * optional "service" must be an integer 0..TRN_SERVICE_MAX and the
 * optional "listen" a string of 1..TRN_URL_MAX bytes (TYPE).
 * Return: TRN_HS_OK or one of TOO_BIG, JSON, TYPE, MISSING, VERSION,
 * NAME, NONCE, NOMEM.
 */
int trn_hello_parse(const char *buf, size_t len, trn_hello *out);

/*
 * trn_response_parse() - Read a peer's response.
 * Return: TRN_HS_OK or one of TOO_BIG, JSON, TYPE, MISSING, MAC_FORMAT,
 * NOMEM.
 */
int trn_response_parse(const char *buf, size_t len, uint8_t mac[TRN_MAC_SIZE]);

/*
 * trn_hmac_sha256() - HMAC-SHA256 (mbedTLS's mbedtls_md_hmac), the one
 * path every MAC of the handshake takes.
 * Return: TRN_HS_OK, TRN_HS_ECRYPTO.
 */
int trn_hmac_sha256(const void *key, size_t key_len, const void *data,
		    size_t len, uint8_t out[TRN_MAC_SIZE]);

/*
 * trn_hs_mac() - The response of side @own (role @role) to @peer:
 * HMAC-SHA256(secret, role || peer->nonce || own->nonce || own->name).
 * Return: TRN_HS_OK, TRN_HS_EINVAL (empty secret, bad role),
 * TRN_HS_ECRYPTO.
 */
int trn_hs_mac(const void *secret, size_t secret_len, uint8_t role,
	       const trn_hello *own, const trn_hello *peer,
	       uint8_t mac[TRN_MAC_SIZE]);

/*
 * trn_hs_verify() - Check the response @mac of the peer (role
 * @peer_role) with a constant-time compare.
 * Return: TRN_HS_OK, TRN_HS_EMAC, or trn_hs_mac()'s errors.
 */
int trn_hs_verify(const void *secret, size_t secret_len, uint8_t peer_role,
		  const trn_hello *own, const trn_hello *peer,
		  const uint8_t mac[TRN_MAC_SIZE]);

#endif /* TR_NET_HANDSHAKE_H */
