#!/bin/bash
# verbs:// on a host without an RDMA device: genie-runtime refuses to
# listen on it, alone or next to a tcp:// listener, and a client's
# connect fails at once, each with an error that names verbs and says
# there is no RDMA device, and the exit status of a failure (1). With a
# device present this has nothing to show: it says so and skips (77);
# the verbs transport over a real device is not tested here.
#
#   verbs_nodev.sh PROBE RUNTIME CLIENT
set -u
probe=$1
runtime=$2
client=$3
fail=0
want="verbs: no RDMA device on this host .*use tcp:// or dpdk://"

if ! "$probe" | grep -qx "no RDMA device"; then
	echo "SKIP: this host has an RDMA device ($("$probe" | head -1));"
	echo "      the no-device path cannot be shown here"
	exit 77
fi
if command -v ibv_devices >/dev/null &&
   [ -n "$(ibv_devices 2>/dev/null | tail -n +3)" ]; then
	echo "SKIP: ibv_devices lists a device"
	exit 77
fi

check() { # NAME WANT_RC PATTERN -- COMMAND...
	local name=$1 want_rc=$2 pattern=$3 out rc t0=$SECONDS
	shift 4
	out=$(timeout 30 "$@" 2>&1)
	rc=$?
	if [ "$rc" -eq "$want_rc" ] && grep -qE "$pattern" <<<"$out" &&
	   [ $((SECONDS - t0)) -le 10 ]; then
		echo "ok   $name: rc $rc: $(grep -E "$pattern" <<<"$out" | head -1)"
	else
		echo "FAIL $name: rc $rc (expected $want_rc) after" \
			"$((SECONDS - t0)) s, expected /$pattern/ in:"
		tail -5 <<<"$out"
		fail=1
	fi
}

check "runtime --listen verbs" 1 "genie-runtime: cannot start: $want" -- \
	"$runtime" --listen verbs://127.0.0.1:0 --backend cpu
# Several --listen: the runtime starts all or none, so a verbs listener
# it cannot open stops it from starting, and it says which and why.
check "runtime --listen tcp + verbs" 1 \
	"genie-runtime: cannot start: $want" -- \
	"$runtime" --listen tcp://127.0.0.1:0 \
	--listen "verbs://127.0.0.1:0?dev=mlx5_0" --backend cpu
# A client fails before dialling (nothing listens on the port).
check "client verbs://" 1 "session: $want" -- \
	"$client" verbs://127.0.0.1:9 1 5000
check "client verbs:// (expect-fail)" 0 "session: $want" -- \
	"$client" verbs://127.0.0.1:9 1 5000 expect-fail
# Malformed targets say what was expected, device or not.
check "client bad option" 1 "expected dev=NAME, port=1..255 or gid=INDEX" \
	-- "$client" "verbs://127.0.0.1:9?speed=fast" 1 5000
check "client no address" 1 "expected verbs://HOST:PORT" -- \
	"$client" "verbs://?dev=mlx5_0" 1 5000
exit $fail
