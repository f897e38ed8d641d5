#!/usr/bin/env bash
# test-tls: TLS through GnuTLS (issue 6, "Hostile networks"; handshake.c H7,
# tls.c L1-L4), with clients nobody here wrote: nbdinfo, nbdcopy, nbdsh and
# qemu-img over nbds:// URIs, plus raw option checks (test_tls.py).
#
#   --tls=require + X.509: data round trips over TLS (multi-connection
#     nbdcopy, qemu-img compare), plaintext clients get TLS_REQD, a client
#     that does not trust the server's CA is refused;
#   --tls=on + --tls-verify-peer + PSK: a client certificate from the CA
#     and the right PSK get in; no certificate, a certificate from another
#     CA, a wrong key and an unknown PSK user are refused; plaintext is
#     still served; the server keeps serving after each refusal;
#   --tls=off: STARTTLS gets ERR_POLICY;
#   the command line refuses inconsistent or unreadable TLS settings.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

requires certtool psktool nbdinfo nbdcopy nbdsh qemu-img

# --- Credentials: a CA, a server and a client certificate from it, and a
# rogue CA with its own client and server certificates.  Client dirs:
# cli (the CA's client certificate), nocert (none), rogue-cli (one from
# the rogue CA), distrust (trusts only the rogue CA). ---
C=$TMP/creds
make_pki "$C"
mkdir -p "$C"/{nocert,rogue-cli,rogue-srv,distrust}
cp "$C/ca.pem" "$C/nocert/ca-cert.pem"
mkcert "$C/rogue-ca.pem" "$C/rogue-ca-key.pem" self - 'cn = "rogue CA"' ca \
	cert_signing_key
mkcert "$C/rogue-cli/client-cert.pem" "$C/rogue-cli/client-key.pem" \
	"$C/rogue-ca.pem" "$C/rogue-ca-key.pem" "${client_tmpl[@]}"
cp "$C/ca.pem" "$C/rogue-cli/ca-cert.pem"
cp "$C/rogue-ca.pem" "$C/distrust/ca-cert.pem"
mkcert "$C/rogue-srv/server-cert.pem" "$C/rogue-srv/server-key.pem" \
	"$C/rogue-ca.pem" "$C/rogue-ca-key.pem" "${server_tmpl[@]}"
psktool -u alice -p "$C/keys.psk" >/dev/null 2>&1
printf 'alice:%s\n' "$(printf '%064d' 7)" >"$C/wrong.psk"
psktool -u mallory -p "$C/mallory.psk" >/dev/null 2>&1
ok "credentials made with certtool and psktool"

tlsuri() { # tlsuri SOCK [QUERY]: nbds+unix URI
	echo "nbds+unix:///?socket=$1${2:+&$2}"
}

# nbdsh_tls URI SCRIPT: nbdsh -u refuses URIs that name local files.
nbdsh_tls() {
	nbdsh -c 'h.set_uri_allow_local_file(True)' \
		-c "h.connect_uri('$1')" -c "$2"
}

# refused WHAT CMD...: CMD must fail, and the server must keep serving.
refused() {
	local what=$1
	shift
	check "$what is refused"
	if "$@" >"$TMP/refused.out" 2>&1; then
		cat "$TMP/refused.out"
		fail "$what: the client got in"
	fi
	kill -0 "$pid" || fail "$what: the server died"
	ok "$what: refused ($(tail -n 1 "$TMP/refused.out" | cut -c1-90))"
}

# --- 1. --tls=require with X.509 ---
random_file "$TMP/src.img" 32
truncate -s 32M "$TMP/req.img"
# Also on TCP: libnbd checks the server's certificate only there (over a
# Unix socket it has no host name to check it against).
start_server req --tls=require --tls-certificates "$C/srv" \
	-l 127.0.0.1:0 "$TMP/req.img"
port=$(sed -n 's|.*listening on nbds://127\.0\.0\.1:\([0-9]\+\).*|\1|p' \
	"$TMP/req.log")
[[ -n $port ]] || fail "no TCP port in the server's log"
grep -qF "listening on nbds+unix://" "$TMP/req.log" ||
	fail "the listening line does not show an nbds:// URI"
U=$(tlsuri "$socket" "tls-certificates=$C/cli")

check "nbdinfo over TLS"
nbdinfo --json "$U" >"$TMP/info.json"
$PY - "$TMP/info.json" <<'EOF' || fail "nbdinfo --json did not report TLS"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["TLS"] is True, j
assert j["exports"][0]["export-size"] == 32 << 20, j
EOF
ok "nbdinfo: TLS true, 32 MiB"

check "nbdcopy over TLS, 4 connections, both directions"
nbdcopy --connections=4 "$TMP/src.img" "$U"
nbdcopy --connections=4 "$U" "$TMP/back.img"
cmp "$TMP/src.img" "$TMP/back.img" || fail "data read over TLS differs"
cmp "$TMP/src.img" "$TMP/req.img" || fail "the file differs from what was written"
ok "32 MiB of random data written and read back over TLS"

check "qemu-img compare over TLS"
qemu-img compare \
	--object "tls-creds-x509,id=tls0,dir=$C/cli,endpoint=client" \
	--image-opts "driver=nbd,server.type=unix,server.path=$socket,tls-creds=tls0,tls-hostname=localhost" \
	"driver=file,filename=$TMP/src.img" >/dev/null || fail "qemu-img compare over TLS failed"
ok "qemu-img: identical"

refused "a plaintext client (--tls=require)" nbdinfo --size "$uri"
check "the server's certificate checks out over TCP"
[[ $(nbdinfo --size "nbds://127.0.0.1:$port/?tls-certificates=$C/cli") == \
	33554432 ]] || fail "nbdinfo over TCP with TLS"
[[ $(nbdinfo --size "nbds://localhost:$port/?tls-certificates=$C/cli") == \
	33554432 ]] || fail "nbdinfo over TCP with TLS, by name"
ok "nbds://127.0.0.1 and nbds://localhost verified the server"
refused "a client that does not trust the server's CA" \
	nbdinfo --size "nbds://127.0.0.1:$port/?tls-certificates=$C/distrust"
check "the raw option replies in require mode"
$PY "$SRCDIR/tests/e2e/test_tls.py" require "$socket" "$C/ca.pem" \
	"$C/cli/client-cert.pem" "$C/cli/client-key.pem"
ok "require mode: TLS_REQD, INVALID, disconnect on EXPORT_NAME"
stop_server "$pid"

# --- 2. --tls=on, client certificates required, and PSK ---
truncate -s 16M "$TMP/on.img"
start_server on --tls=on --tls-certificates "$C/srv" --tls-verify-peer \
	--handshake-timeout 3 \
	--tls-psk "$C/keys.psk" "$TMP/on.img"
check "X.509 with a client certificate, and PSK, see each other's writes"
nbdsh_tls "$(tlsuri "$socket" "tls-certificates=$C/cli")" \
	'h.pwrite(b"x509" * 1024, 0); h.flush()'
PSKURI="nbds+unix://alice@/?socket=$socket&tls-psk-file=$C/keys.psk"
nbdsh_tls "$PSKURI" '
assert h.pread(4096, 0) == b"x509" * 1024
h.pwrite(b"psk!" * 1024, 4096, nbd.CMD_FLAG_FUA)'
[[ $(head -c 8192 "$TMP/on.img" | tail -c 4) == 'psk!' ]] ||
	fail "the PSK client's FUA write is not in the file"
ok "both clients wrote and read"
grep -q "TLS handshake failed" "$TMP/on.log" &&
	fail "a handshake failed before any bad client came"

refused "a client without a certificate (--tls-verify-peer)" \
	nbdinfo --size "$(tlsuri "$socket" "tls-certificates=$C/nocert")"
grep -q "TLS handshake failed: Certificate is required" "$TMP/on.log" ||
	fail "the server did not log the missing client certificate"
refused "a client certificate from another CA" \
	nbdinfo --size "$(tlsuri "$socket" "tls-certificates=$C/rogue-cli")"
refused "a wrong PSK" nbdinfo --size \
	"nbds+unix://alice@/?socket=$socket&tls-psk-file=$C/wrong.psk"
refused "an unknown PSK user" nbdinfo --size \
	"nbds+unix://mallory@/?socket=$socket&tls-psk-file=$C/mallory.psk"
refused "qemu-img with a client certificate from another CA" \
	qemu-img info --object "tls-creds-x509,id=t,dir=$C/rogue-cli,endpoint=client" \
	--image-opts "driver=nbd,server.type=unix,server.path=$socket,tls-creds=t,tls-hostname=localhost"

check "plaintext is still served with --tls=on"
[[ $(nbdinfo --size "$uri") == 16777216 ]] || fail "plaintext nbdinfo"
nbdsh_tls "$PSKURI" 'assert h.pread(4096, 4096) == b"psk!" * 1024'
ok "plaintext and PSK clients served after the refusals"
check "the raw option replies in on mode"
$PY "$SRCDIR/tests/e2e/test_tls.py" on "$socket" "$C/ca.pem" \
	"$C/cli/client-cert.pem" "$C/cli/client-key.pem"
grep -q "TLS handshake failed: timed out" "$TMP/on.log" ||
	fail "the stalled TLS handshake was not logged as a timeout"
ok "on mode: STARTTLS resets the negotiated state; a stalled TLS handshake times out"

check "SIGTERM with a TLS client connected: it is told, exit 0"
mkfifo "$TMP/ready"
$PY - "$(tlsuri "$socket" "tls-certificates=$C/cli")" "$TMP/ready" \
	"$TMP/conn.done" <<'EOF' &
import signal, sys, nbd
signal.alarm(60)  # bounded, whatever the server does
h = nbd.NBD()
h.set_uri_allow_local_file(True)
h.connect_uri(sys.argv[1])
h.pwrite(b"z" * 65536, 65536, nbd.CMD_FLAG_FUA)
with open(sys.argv[2], "w") as f:
    f.write("ready\n")
n = 0
try:
    while True:  # requests in flight when SIGTERM comes are answered
        assert h.pread(4096, 65536) == b"z" * 4096
        n += 1
except nbd.Error as e:
    open(sys.argv[3], "w").write(f"{n} reads, then: {e}\n")
EOF
cpid=$!
read -r -t 30 line <"$TMP/ready" || fail "the TLS client did not connect"
stop_server "$pid"
wait "$cpid" || fail "the TLS client failed (or hung until its alarm)"
[[ -s $TMP/conn.done ]] || fail "the TLS client did not see the server go"
grep -q "stopped" "$TMP/on.log" || fail "the server did not stop cleanly"
[[ $(head -c 65537 "$TMP/on.img" | tail -c 1) == z ]] ||
	fail "the FUA write over TLS is not in the file"
ok "client: $(cat "$TMP/conn.done")"

# --- 3. --tls=off ---
truncate -s 1M "$TMP/off.img"
start_server off "$TMP/off.img"
$PY "$SRCDIR/tests/e2e/test_tls.py" off "$socket"
refused "an nbds:// client of a --tls=off server" \
	nbdinfo --size "$(tlsuri "$socket" "tls-certificates=$C/cli")"
stop_server "$pid"

# --- 4. The command line ---
tls_cli_error() { # tls_cli_error WANT-REGEX ARGS...
	cli_error "$1" "$LOOPD" serve -f -U "$TMP/cli.sock" "${@:2}" \
		"$TMP/off.img"
}
tls_cli_error "need --tls=on" --tls-certificates "$C/srv"
tls_cli_error "needs --tls-certificates DIR or --tls-psk" --tls=require
tls_cli_error "tls: expected one of|--tls" --tls=maybe
tls_cli_error "not a directory" --tls=on --tls-certificates "$TMP/nowhere"
tls_cli_error "needs server-cert.pem" --tls=on --tls-certificates "$C/cli"
tls_cli_error "ca-cert.pem" --tls=on --tls-verify-peer \
	--tls-certificates "$C/rogue-srv"
tls_cli_error "No such file" --tls=on --tls-psk "$TMP/nowhere.psk"
echo "not a key" >"$TMP/bad.psk"
tls_cli_error "USERNAME:HEXKEY" --tls=on --tls-psk "$TMP/bad.psk"
[[ ! -e $TMP/cli.sock ]] || fail "a refused command line left a socket"

echo "PASS: test-tls"
