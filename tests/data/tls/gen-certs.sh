#!/bin/sh
# Regenerate the TLS test material used by src/upstream/tls.rs unit tests and by the
# integration tests (crates/fakes/src/tls_server.rs). Run from anywhere:
#
#     sh tests/data/tls/gen-certs.sh
#
# Needs only the openssl CLI (1.1.1 or 3.x). Every key is EC P-256 (fast,
# small). Everything is valid for 10 years, except the deliberately expired
# leaf. Re-running replaces every file (new keys, so pins.txt changes too,
# and any test hard-coding a pin must read pins.txt or recompute it).
#
# Files written (all PEM):
#   ca.pem, ca.key            root CA "Syncto Test Root CA" (self-signed)
#   intermediate.pem, .key    intermediate CA signed by the root (pathlen 0)
#   leaf.pem, leaf.key        server cert for DNS:localhost, IP:127.0.0.1,
#                             IP:::1, signed by the intermediate
#   chain.pem                 leaf.pem + intermediate.pem: what a server sends
#   expired-chain.pem         leaf with the same names, valid only in
#                             Jan-Feb 2020, + intermediate
#   expired.key               its key
#   wrong-host-chain.pem      leaf for DNS:other.example only, + intermediate
#   wrong-host.key            its key
#   other-ca.pem              an unrelated root CA that signed nothing we
#                             serve (its key is thrown away)
#   self-signed-ca.pem, .key  a self-signed server certificate for localhost as
#                             `openssl req -x509` makes it by default (CA:TRUE)
#   self-signed.pem, .key     the same with basicConstraints CA:FALSE
#   pins.txt                  base64 SHA-256 SPKI pins of leaf and intermediate
set -eu

cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
days=3650

# Extension profiles. Written here rather than relying on the system
# openssl.cnf, whose defaults differ between distributions.
cat >"$tmp/ext.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[wrong_host]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:other.example
EOF

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# root(name, key, cert, CN): self-signed root CA.
root() {
    newkey "$1"
    openssl req -new -x509 -config "$tmp/ext.cnf" -extensions root -key "$1" \
        -subj "/CN=$3" -days "$days" -sha256 -out "$2"
}

# sign(csr-key, out, CN, profile, serial, issuer-cert, issuer-key)
sign() {
    openssl req -new -config "$tmp/ext.cnf" -key "$1" -subj "/CN=$3" -out "$tmp/req.csr"
    openssl x509 -req -in "$tmp/req.csr" -CA "$6" -CAkey "$7" -set_serial "$5" \
        -days "$days" -sha256 -extfile "$tmp/ext.cnf" -extensions "$4" -out "$2"
}

# Root and intermediate CAs.
root ca.key ca.pem "Syncto Test Root CA"
newkey intermediate.key
sign intermediate.key intermediate.pem "Syncto Test Intermediate CA" intermediate 0x1001 ca.pem ca.key

# The good leaf and the chain a server presents (leaf first, root omitted).
newkey leaf.key
sign leaf.key "$tmp/leaf.pem" "localhost" leaf 0x2001 intermediate.pem intermediate.key
cp "$tmp/leaf.pem" leaf.pem
cat leaf.pem intermediate.pem >chain.pem

# Wrong host name: valid chain, but only for other.example.
newkey wrong-host.key
sign wrong-host.key "$tmp/wrong.pem" "other.example" wrong_host 0x2002 intermediate.pem intermediate.key
cat "$tmp/wrong.pem" intermediate.pem >wrong-host-chain.pem

# Expired leaf: `openssl x509 -req` cannot back-date before openssl 3.4, but
# `openssl ca` takes explicit -startdate/-enddate. It needs a throwaway CA
# database, kept in $tmp.
: >"$tmp/index.txt"
echo 2003 >"$tmp/serial"
cat >"$tmp/ca.cnf" <<EOF
[ca]
default_ca = tmp_ca
[tmp_ca]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
EOF
newkey expired.key
openssl req -new -config "$tmp/ext.cnf" -key expired.key -subj "/CN=localhost" -out "$tmp/expired.csr"
openssl ca -batch -notext -config "$tmp/ca.cnf" -cert intermediate.pem -keyfile intermediate.key \
    -in "$tmp/expired.csr" -startdate 20200101000000Z -enddate 20200201000000Z \
    -extfile "$tmp/ext.cnf" -extensions leaf -out "$tmp/expired.pem" 2>/dev/null
cat "$tmp/expired.pem" intermediate.pem >expired-chain.pem

# An unrelated root: trusting only this must make every chain above fail.
root "$tmp/other-ca.key" other-ca.pem "Unrelated Test Root CA"

# HPKP-style pins: base64(SHA-256(SubjectPublicKeyInfo DER)).
pin() {
    openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
        openssl dgst -sha256 -binary | openssl base64 -A
}
{
    echo "# SPKI pins: base64 of SHA-256 over the SubjectPublicKeyInfo DER, computed with"
    echo "#   openssl x509 -in c.pem -pubkey -noout | openssl pkey -pubin -outform der \\"
    echo "#     | openssl dgst -sha256 -binary | base64"
    echo "# The root CA is not listed: servers do not send it, so a root pin never"
    echo "# matches. To pin a CA, make it the only certificate in the CA bundle."
    echo "leaf $(pin leaf.pem)"
    echo "intermediate $(pin intermediate.pem)"
} >pins.txt

# Self-signed server certificates, as a self-hoster makes them: the first with
# `openssl req -x509`'s default CA:TRUE (refused as a server certificate whatever the
# trust), the second with CA:FALSE (trusted once it is the CA bundle).
self_signed() {
    newkey "$1.key"
    openssl req -new -x509 -key "$1.key" -subj "/CN=localhost" -days "$days" -sha256 \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "$2" -out "$1.pem"
}
self_signed self-signed-ca "basicConstraints=critical,CA:TRUE"
self_signed self-signed "basicConstraints=critical,CA:FALSE"

# Throwaway test keys: readable like the rest, whoever runs the tests.
chmod 644 ./*.key

# Sanity checks: fail loudly if a file does not have the intended property.
openssl verify -CAfile ca.pem -untrusted intermediate.pem leaf.pem >/dev/null
openssl verify -CAfile ca.pem -untrusted intermediate.pem "$tmp/wrong.pem" >/dev/null
if openssl verify -CAfile ca.pem -untrusted intermediate.pem "$tmp/expired.pem" >/dev/null 2>&1; then
    echo "expired leaf unexpectedly verifies" >&2
    exit 1
fi
echo "TLS test material written to $(pwd)"
