#!/usr/bin/env bash
# Make a private CA and certificates for Firebox's TLS with the openssl CLI:
#   ca.pem / ca-key.pem          the CA (keep ca-key.pem offline in real deployments)
#   server.pem / server-key.pem  server certificate for both services (serverAuth)
#   client.pem / client-key.pem  client certificate for mutual TLS: the agent, the CLI (clientAuth)
# Usage: scripts/make-certs.sh DIR [NAME...]
#   NAMEs go into the server certificate's subjectAltName (IPs as IP:, the rest as DNS:);
#   default: localhost 127.0.0.1 executor agent.
# Keys are EC P-256, certificates valid 825 days. Existing files in DIR are overwritten.
set -euo pipefail

dir=${1:?usage: make-certs.sh DIR [NAME...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1 executor agent)
san=""
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then entry="IP:$name"; else entry="DNS:$name"; fi
  san="${san:+$san,}$entry"
done

mkdir -p "$dir"
cd "$dir"
umask 077
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

openssl req -x509 "${ec[@]}" -keyout ca-key.pem -out ca.pem -days 3650 -subj "/CN=Firebox test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

sign() { # sign NAME CN EXTENSIONS
  openssl req "${ec[@]}" -keyout "$1-key.pem" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign server firebox-server "subjectAltName=$san\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature"
sign client firebox-client "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature"
rm -f ca.srl
# Certificates are public; keys stay 0600 except that services in containers running as another
# user need to read them: mount them read-only and chown/chmod on the host as your setup needs.
chmod 0644 ca.pem server.pem client.pem
echo "make-certs: wrote CA, server ($san) and client certificates to $dir" >&2
