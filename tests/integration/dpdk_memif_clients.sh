#!/bin/bash
# Several client processes on one genie-runtime over one memif socket at
# once (no hugepages): each claims a memif interface id of its own, the
# runtime opens a port for every id claimed, every client's relu comes
# back bit-exact; a second wave reuses the ids the first gave back, and
# the runtime opens no more ports than clients it had at once. A client
# that ends (or is killed) takes its link down, and the runtime closes its
# sessions at once; the runtime then stops within seconds.
#
#   dpdk_memif_clients.sh RUNTIME CLIENT
set -u
runtime=$1
client=$2
dir=$(mktemp -d /tmp/genie-memifc-XXXXXX)
rt=
cleanup() {
	[ -n "$rt" ] && kill -TERM "$rt" 2>/dev/null && wait "$rt"
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL $*"
	tail -20 "$dir"/*.log "$dir"/*.out 2>/dev/null
	exit 1
}

sock=$dir/memif.sock
"$runtime" --listen "dpdk://memif:$sock" --backend cpu \
	--log dpdk_transport=info >"$dir/rt.log" 2>&1 &
rt=$!
for _ in $(seq 200); do
	grep -q "listening on" "$dir/rt.log" && break
	sleep 0.05
done
grep -q "memif client id 0 ready" "$dir/rt.log" ||
	fail "runtime did not open memif client id 0"

wave() { # NAME COUNT MIB
	local pids=() i
	for i in $(seq "$2"); do
		"$client" "dpdk://memif:$sock" "$3" 120000 \
			>"$dir/$1-$i.out" 2>"$dir/$1-$i.err" &
		pids+=($!)
	done
	for i in $(seq "$2"); do
		wait "${pids[$((i - 1))]}" ||
			fail "$1 client $i: $(cat "$dir/$1-$i.out" "$dir/$1-$i.err")"
		grep -q "bit-exact" "$dir/$1-$i.out" ||
			fail "$1 client $i: $(cat "$dir/$1-$i.out")"
		echo "ok   $1 client $i: $(cat "$dir/$1-$i.out")"
	done
}

wave first 4 16
# Four clients at once (each claims its id as it starts) need ids 0..3,
# and no more.
for id in 0 1 2 3; do
	grep -q "memif client id $id ready" "$dir/rt.log" ||
		fail "runtime never opened memif client id $id"
done
ids=$(grep -c "memif client id [0-9]* ready" "$dir/rt.log")
[ "$ids" -eq 4 ] || fail "4 clients made the runtime open $ids memif ids"
echo "ok   4 concurrent clients; the runtime opened $ids memif ids"

# The ids came free when the first wave exited: the second reuses them.
wave second 2 8
after=$(grep -c "memif client id [0-9]* ready" "$dir/rt.log")
[ "$after" -eq "$ids" ] ||
	fail "the second wave made the runtime open $((after - ids)) more ids"
echo "ok   2 more clients reused freed ids; still $after memif ids open"

# Every client that ended took its link down; the runtime closed its
# sessions at once rather than resending to it until a timeout.
gone=$(grep -c "went away (link down)" "$dir/rt.log")
[ "$gone" -eq 6 ] || fail "6 clients ended, the runtime saw $gone go"
echo "ok   the runtime saw all 6 clients' links go down"

# A client killed halfway through a transfer: its sessions close within
# a second, and the runtime serves the next client.
"$client" "dpdk://memif:$sock" 256 120000 >"$dir/killed.out" 2>&1 &
victim=$!
for _ in $(seq 100); do
	[ "$(grep -c "memif client id [0-9]* ready" "$dir/rt.log")" -ge 4 ] &&
		grep -q "up on" "$dir/killed.out" && break
	sleep 0.05
done
sleep 0.5
kill -KILL "$victim"
wait "$victim" 2>/dev/null
for _ in $(seq 20); do
	[ "$(grep -c "went away (link down)" "$dir/rt.log")" -ge 7 ] && break
	sleep 0.05
done
[ "$(grep -c "went away (link down)" "$dir/rt.log")" -ge 7 ] ||
	fail "a killed client's link going down was not seen within 1 s"
echo "ok   a client killed mid-transfer: its sessions closed within 1 s"
wave after-kill 1 8

start=$(date +%s%N)
kill -TERM "$rt"
wait "$rt"
st=$?
rt=
[ "$st" -eq 0 ] || fail "runtime exited $st on SIGTERM"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 5000 ] || fail "the runtime took $ms ms to stop"
echo "ok   runtime ended cleanly in $ms ms"
