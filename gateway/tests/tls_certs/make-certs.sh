#!/bin/sh
# Regenerates the TEST-ONLY certificates in this folder (see README.md).
# Run once from this folder; the outputs are committed so tests never need
# openssl. Every run makes new keys, so commit all outputs together.
set -eu
days=7305 # 20 years

ext_ca='basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
nameConstraints=critical,permitted;DNS:localhost,permitted;IP:127.0.0.0/255.0.0.0,permitted;IP:::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
subjectKeyIdentifier=hash'
ext_server='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
authorityKeyIdentifier=keyid
subjectKeyIdentifier=hash'

# The test CA (ECDSA P-256). Its key is committed, so its name constraints
# limit it to localhost and loopback addresses: trusting it by mistake lets
# nobody impersonate a real site.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
printf '%s\n' "$ext_ca" > ca.ext
openssl req -new -key ca.key -subj '/CN=ringgate test CA (do not trust in production)' -out ca.csr
openssl x509 -req -in ca.csr -signkey ca.key -days "$days" -sha256 \
    -extfile ca.ext -out ca.pem

# issue NAME KEYGEN-ARGS...: a server certificate for localhost, 127.0.0.1
# and ::1, signed by the test CA.
issue() {
    name=$1
    shift
    openssl genpkey "$@" -out "$name.key"
    openssl req -new -key "$name.key" -subj '/CN=localhost' -out "$name.csr"
    printf '%s\n' "$ext_server" > server.ext
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -days "$days" -sha256 -extfile server.ext -out "$name.pem"
}
issue server -algorithm EC -pkeyopt ec_paramgen_curve:P-256
issue server-rsa -algorithm RSA -pkeyopt rsa_keygen_bits:2048

# For config error tests.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out mismatched.key
openssl genpkey -algorithm ED448 -out unsupported.key
printf 'this is not a PEM file\n' > garbage.pem

rm -f ./*.csr ./*.ext ./*.srl
