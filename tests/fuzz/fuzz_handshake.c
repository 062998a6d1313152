/*
 * libFuzzer target for the handshake messages (net/handshake.h): the
 * input is parsed as a hello and as a response. A hello that parses is
 * encoded again and must parse to the same hello; a response that parses
 * is checked against a MAC, which must not match by chance.
 */
#include "net/handshake.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char secret[] = "fuzz";
	trn_hello h, again;
	uint8_t mac[TRN_MAC_SIZE];
	char *s;
	size_t len;

	if (trn_hello_parse((const char *)data, size, &h) == TRN_HS_OK) {
		if (trn_hello_encode(&h, &s, &len) != TRN_HS_OK) {
			abort();
		}
		if (trn_hello_parse(s, len, &again) != TRN_HS_OK ||
		    again.version != h.version ||
		    again.creation != h.creation ||
		    again.service != h.service ||
		    strcmp(again.listen, h.listen) != 0 ||
		    again.name_len != h.name_len ||
		    strcmp(again.name, h.name) != 0 ||
		    memcmp(again.nonce, h.nonce, TRN_NONCE_SIZE) != 0) {
			abort();
		}
		free(s);
	}
	if (trn_response_parse((const char *)data, size, mac) == TRN_HS_OK) {
		trn_hello own = { .version = 1, .name_len = 1, .name = "a" };
		trn_hello peer = { .version = 1, .name_len = 1, .name = "b" };
		if (trn_hs_verify(secret, sizeof(secret) - 1, TRN_ROLE_DIALER,
				  &own, &peer, mac) != TRN_HS_EMAC) {
			abort();
		}
		if (trn_response_encode(mac, &s, &len) != TRN_HS_OK) {
			abort();
		}
		free(s);
	}
	return 0;
}
