#!/bin/bash
# The dpdk:// transport under loss, as real processes: a genie-runtime
# listening on DPDK memif and a client sending 256 MiB through relu and
# back, with GENIE_DPDK_FAULT making both ends' frames go through a seeded
# lossy link: 1%, 5% and 20% random loss, 100 ms bursts, reordering and
# duplication. Every transfer must come back bit-exact within its time
# limit; with 100% loss (from the 20th frame on, after the session is up)
# the request must fail with a clear error within the retry limit, not
# hang. Two cases upload the tensor first (GENIE_TEST_RESIDENT): on a
# clean link the runtime must say it wrote the upload in place (payload
# placement); at 5% loss, where the first packet may be lost and the
# message then goes into a message buffer, it must still be bit-exact.
#
#   dpdk_loss.sh RUNTIME CLIENT [MIB]
set -u
runtime=$1
client=$2
mib=${3:-256}
dir=$(mktemp -d /tmp/genie-dpdk-loss-XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"
	rm -rf "$dir"
}
trap cleanup EXIT
fail=0

run_case() { # NAME FAULT TIMEOUT_MS [expect-fail]
	local name=$1 fault=$2 timeout=$3 expect=${4:-}
	local resident=
	case $name in resident*) resident=1 ;; esac
	local sock=$dir/$name.sock
	GENIE_DPDK_FAULT=$fault "$runtime" --listen "dpdk://memif:$sock" \
		--backend cpu >"$dir/$name.rt.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	local t0=$SECONDS
	if GENIE_TEST_RESIDENT=$resident GENIE_DPDK_FAULT=$fault timeout $((timeout / 1000 + 30)) \
		"$client" "dpdk://memif:$sock" "$mib" "$timeout" $expect \
		>"$dir/$name.out" 2>"$dir/$name.err"; then
		echo "ok   $name ($fault): $(cat "$dir/$name.out") [$((SECONDS - t0)) s]"
	else
		echo "FAIL $name ($fault): exit $? after $((SECONDS - t0)) s"
		echo "     client:"
		cat "$dir/$name.out" "$dir/$name.err" | tail -8
		echo "     runtime:"
		tail -8 "$dir/$name.rt.log"
		fail=1
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [ "$name" = resident ] &&
		! grep -q "1 uploads (1 written in place)" "$dir/$name.rt.log"; then
		echo "FAIL $name: the runtime did not write the upload in place:"
		grep "stopped:" "$dir/$name.rt.log" || tail -4 "$dir/$name.rt.log"
		fail=1
	fi
	grep -h "stopped:" "$dir/$name.rt.log" | sed 's/^.*runtime: /     /'
	grep -h "retransmitted" "$dir/$name.rt.log" "$dir/$name.err" | \
		sed 's/^.*dpdk_transport: /     /'
	pid=
}

run_case clean "drop=0" 120000
run_case loss1 "drop=0.01,seed=1" 300000
run_case loss5 "drop=0.05,seed=2" 300000
run_case loss20 "drop=0.20,seed=3" 600000
run_case bursts "drop=0.001,burst_ms=100,every_ms=1000,seed=4" 300000
run_case reorder_dup "reorder=0.05,dup=0.05,delay_us=20,seed=5" 300000
run_case resident "drop=0" 120000
run_case resident_loss5 "drop=0.05,seed=7" 300000
run_case dead "drop=1,after=20,seed=6" 120000 expect-fail
exit $fail
