#!/bin/sh
# Mutual-TLS material for the cluster links of the compose stack: one CA and one certificate
# per node (EC P-256, CN and subjectAltName DNS = the node's name, for TLS clients and servers
# alike), written to $CERT_DIR. Run by the one-shot `certs` service of docker-compose.yml.
#
# Idempotent: an existing CA is kept, and a node certificate is made again only when it is
# missing, does not verify against the CA, or expires within 30 days. Delete the volume
# (`docker compose down -v`) to start over with a new CA.
#
#   CERT_DIR     where the files go                         /certs
#   CREDO_NODES  node names, separated by spaces             node-1 node-2 node-3
#   CERT_DAYS    validity of new certificates, in days       825
#   CERT_OWNER   owner of the node files (uid:gid of credod) 10001:10001
#
# Output: ca.pem (CA certificate), ca.key (CA key, readable by root only), <node>.pem and
# <node>.key per node (the key readable by CERT_OWNER only). This is development PKI: in
# production the certificates come from your own CA (cert-manager, Vault, ...).
set -eu

dir="${CERT_DIR:-/certs}"
nodes="${CREDO_NODES:-node-1 node-2 node-3}"
days="${CERT_DAYS:-825}"
owner="${CERT_OWNER:-10001:10001}"

umask 077
mkdir -p "$dir"
chmod 0755 "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
  echo "gen-certs: new cluster CA in $dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=credo-cluster-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi
chmod 0600 "$dir/ca.key"
chmod 0644 "$dir/ca.pem"

for node in $nodes; do
  case "$node" in
    *[!A-Za-z0-9.-]*|"") echo "gen-certs: bad node name '$node'" >&2; exit 2 ;;
  esac
  cert="$dir/$node.pem"
  key="$dir/$node.key"
  if [ -s "$cert" ] && [ -s "$key" ] \
     && openssl verify -CAfile "$dir/ca.pem" "$cert" >/dev/null 2>&1 \
     && openssl x509 -in "$cert" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; then
    echo "gen-certs: $node: certificate kept"
    continue
  fi
  cat >"$work/$node.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$node
EOF
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$node" \
    -keyout "$work/$node.key" -out "$work/$node.csr" 2>/dev/null
  openssl x509 -req -in "$work/$node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$work/ca.srl" -days "$days" -extfile "$work/$node.ext" \
    -out "$work/$node.pem" 2>/dev/null
  openssl verify -CAfile "$dir/ca.pem" "$work/$node.pem" >/dev/null
  mv "$work/$node.key" "$key"
  mv "$work/$node.pem" "$cert"
  echo "gen-certs: $node: new certificate"
done

for node in $nodes; do
  chown "$owner" "$dir/$node.pem" "$dir/$node.key"
  chmod 0400 "$dir/$node.key"
  chmod 0444 "$dir/$node.pem"
done
echo "gen-certs: done"
