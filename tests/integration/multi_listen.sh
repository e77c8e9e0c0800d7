#!/bin/bash
# One genie-runtime serving tcp:// and dpdk://memif at once: clients on
# both run concurrently against the same backend; registered with a
# genie-coordinator, the runtime lists both data planes, and a
# coordinator:// client asking for the dpdk transport is placed on it and
# connects over memif. SIGTERM still ends the runtime cleanly.
#
#   multi_listen.sh RUNTIME CLIENT COORDINATOR CTL
set -u
runtime=$1
client=$2
coordinator=$3
ctl=$4
dir=$(mktemp -d /tmp/genie-multi-XXXXXX)
rt= co=
cleanup() {
	[ -n "$rt" ] && kill -TERM "$rt" 2>/dev/null && wait "$rt"
	[ -n "$co" ] && kill -TERM "$co" 2>/dev/null && wait "$co"
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL $*"
	tail -5 "$dir"/*.log 2>/dev/null
	exit 1
}
wait_file() { # FILE
	for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
	return 1
}

echo "multi-listen-test-secret-0123456789" >"$dir/secret"
chmod 600 "$dir/secret"
"$coordinator" --listen 127.0.0.1:0 --state "$dir/state.db" \
	--secret "$dir/secret" --heartbeat-ms 100 --port-file "$dir/cport" \
	>"$dir/co.log" 2>&1 &
co=$!
wait_file "$dir/cport" || fail "coordinator did not start"
caddr=127.0.0.1:$(cat "$dir/cport")

sock=$dir/memif.sock
"$runtime" --listen tcp://127.0.0.1:0 --listen "dpdk://memif:$sock" \
	--backend cpu --port-file "$dir/port" --log runtime=info \
	--coordinator "$caddr" --secret "$dir/secret" --node-id multi \
	>"$dir/rt.log" 2>&1 &
rt=$!
wait_file "$dir/port" || fail "runtime did not start"
port=$(cat "$dir/port")
grep -q "listening on tcp://127.0.0.1:$port, dpdk://memif:$sock" \
	"$dir/rt.log" || fail "runtime does not say it listens on both"
echo "ok   $(grep -h 'listening on' "$dir/rt.log")"

# Both data planes at once, against one backend.
"$client" "tcp://127.0.0.1:$port" 32 60000 >"$dir/tcp.out" 2>"$dir/tcp.err" &
c1=$!
"$client" "dpdk://memif:$sock" 32 60000 >"$dir/dpdk.out" 2>"$dir/dpdk.err" &
c2=$!
wait $c1 || fail "tcp client: $(cat "$dir/tcp.out")"
wait $c2 || fail "dpdk client: $(cat "$dir/dpdk.out")"
echo "ok   tcp:  $(cat "$dir/tcp.out")"
echo "ok   dpdk: $(cat "$dir/dpdk.out")"

# The coordinator knows both data planes.
desc=
for _ in $(seq 100); do
	desc=$("$ctl" -c "$caddr" -s "$dir/secret" -o json describe node multi \
		2>&1) && echo "$desc" | grep -q "dpdk://memif:$sock" && break
	sleep 0.1
done
echo "$desc" | grep -q "\"tcp://127.0.0.1:$port\"" ||
	fail "describe node lacks the tcp data plane: $desc"
echo "$desc" | grep -q "\"dpdk://memif:$sock\"" ||
	fail "describe node lacks the dpdk data plane: $desc"
echo "ok   the coordinator lists tcp://127.0.0.1:$port and dpdk://memif:$sock"

# A coordinator:// client asking for dpdk is placed there and uses memif.
before=$(grep -c "dpdk:[0-9a-f]*: connected" "$dir/rt.log")
GENIE_SECRET_FILE=$dir/secret GENIE_TEST_TRANSPORT=dpdk \
	"$client" "coordinator://$caddr" 8 60000 >"$dir/coord.out" 2>"$dir/coord.err" ||
	fail "coordinator:// dpdk client: $(cat "$dir/coord.out")"
after=$(grep -c "dpdk:[0-9a-f]*: connected" "$dir/rt.log")
[ "$after" -gt "$before" ] ||
	fail "the coordinator:// client did not come in over dpdk"
echo "ok   coordinator:// with transport dpdk: $(cat "$dir/coord.out")"
# Asking for a transport nobody serves is refused with words.
GENIE_SECRET_FILE=$dir/secret GENIE_TEST_TRANSPORT=verbs \
	"$client" "coordinator://$caddr" 1 10000 expect-fail \
	>"$dir/verbs.out" 2>&1 || fail "verbs: $(cat "$dir/verbs.out")"
grep -q "transport" "$dir/verbs.out" ||
	fail "verbs refusal does not name the transport: $(cat "$dir/verbs.out")"
echo "ok   transport verbs refused: $(cat "$dir/verbs.out")"

kill -TERM "$rt"
wait "$rt"
st=$?
rt=
[ "$st" -eq 0 ] || fail "runtime exited $st on SIGTERM"
echo "ok   runtime stopped cleanly"
