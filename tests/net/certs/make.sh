#!/bin/sh
# Makes the test certificates of tests/net/test_tls.c. Run once, by hand;
# the PEM files it writes are committed, and the tests never run it.
set -eu
cd "$(dirname "$0")"
days=36525 # 100 years
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
ca() { # name CN
	key "$1"
	openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days $days \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign -out "$1.pem"
}
leaf() { # name CN ca
	key "$1"
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' >ext.cnf
	openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" \
		-CAcreateserial -days $days -extfile ext.cnf -out "$1.pem"
	rm -f "$1.csr" ext.cnf
}
selfsigned() { # name CN: a certificate that is its own trust anchor
	key "$1"
	openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days $days \
		-addext basicConstraints=CA:FALSE \
		-addext keyUsage=critical,digitalSignature \
		-addext extendedKeyUsage=serverAuth,clientAuth -out "$1.pem"
}
ca ca "troupe test cluster CA"
leaf alpha alpha ca
leaf beta beta ca
ca other-ca "another CA"
leaf rogue gamma other-ca
# Expired: signed by the cluster CA, valid only in 2000.
key expired
openssl req -new -key expired.key -subj "/CN=gamma" -out expired.csr
mkdir -p ca.db && : >ca.db/index && echo 01 >ca.db/serial
cat >ca.cnf <<CNF
[ca]
default_ca = c
[c]
database = ca.db/index
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = p
x509_extensions = e
unique_subject = no
[p]
commonName = supplied
[e]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
CNF
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
	-startdate 20000101000000Z -enddate 20010101000000Z \
	-in expired.csr -out expired.pem -notext
rm -rf ca.db ca.cnf expired.csr
# Pinned: two self-signed certificates with the same name and new keys.
selfsigned pinned delta
selfsigned changed delta
selfsigned epsilon epsilon
rm -f ./*.srl
