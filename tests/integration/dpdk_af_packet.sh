#!/bin/sh
# The dpdk:// transport over af_packet on a veth pair between two network
# namespaces this test makes: genie-runtime listens on one end
# (dpdk://af_packet:VETH,ip=...), a client in the other namespace sends a
# tensor through relu and back (dpdk_loss_client) and checks it
# bit-exact; then the same over a 5% lossy link.
#
#   dpdk_af_packet.sh RUNTIME CLIENT
# Exits 77 (skipped) when namespaces cannot be made: not root, no ip(8).
set -u
runtime=$1
client=$2
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null 2>&1; then
	echo "SKIP: needs root and ip(8) to make network namespaces"
	exit 77
fi
id=$$
nsa=gntr-a-$id
nsb=gntr-b-$id
va=gnta$id
vb=gntb$id
tmp=$(mktemp -d /tmp/gn-tr-af-XXXXXX)
rt=
cleanup() {
	[ -n "$rt" ] && kill -TERM "$rt" 2>/dev/null && wait "$rt" 2>/dev/null
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
	ip link del "$va" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
if ! ip netns add "$nsa" 2>"$tmp/err" || ! ip netns add "$nsb" 2>>"$tmp/err" ||
	! ip link add "$va" type veth peer name "$vb" 2>>"$tmp/err"; then
	echo "SKIP: cannot create namespaces or a veth pair: $(cat "$tmp/err")"
	exit 77
fi
ip link set "$va" netns "$nsa" && ip link set "$vb" netns "$nsb" || exit 1
for side in "$nsa $va" "$nsb $vb"; do
	set -- $side
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
	ip netns exec "$1" ip link set "$2" mtu 1500 up || exit 1
	ip netns exec "$1" ip link set lo up
done
ip netns exec "$nsa" ip addr add 10.93.0.1/24 dev "$va"
ip netns exec "$nsb" ip addr add 10.93.0.2/24 dev "$vb"
fail=0
for fault in "" "drop=0.05,seed=9"; do
	GENIE_DPDK_FAULT=$fault ip netns exec "$nsb" "$runtime" \
		--listen "dpdk://af_packet:$vb,ip=10.93.0.2,port=7070" \
		--backend cpu >"$tmp/rt.log" 2>&1 &
	rt=$!
	# No readiness wait: the client's handshake is retried (with backoff)
	# until the runtime's port is up.
	if GENIE_DPDK_FAULT=$fault ip netns exec "$nsa" timeout 120 "$client" \
		"dpdk://af_packet:$va,ip=10.93.0.1,peer=10.93.0.2,port=7070" \
		32 60000 >"$tmp/out" 2>"$tmp/err"; then
		echo "ok   af_packet (${fault:-no faults}): $(cat "$tmp/out")"
	else
		echo "FAIL af_packet (${fault:-no faults}):"
		tail -5 "$tmp/out" "$tmp/err" "$tmp/rt.log"
		fail=1
	fi
	grep -h retransmitted "$tmp/err" | sed 's/^.*dpdk_transport: /     /'
	kill -TERM "$rt" 2>/dev/null
	wait "$rt" 2>/dev/null
	rt=
done
exit $fail
