#!/bin/sh
# af_packet ports on a veth pair between two network namespaces this test
# makes, one dpdk_port_peer process in each (own EAL, own file prefix, no
# hugepages, no PCI). Frames are 60..1514 bytes, checked for size, bytes
# and order at the far end, with tx_done once per frame.
#
#   1. a modest rate (2,000 frames each way at 5,000 frames/s): every
#      frame must arrive;
#   2. as fast as the peers can (10,000 frames each way): the kernel may
#      drop, so losses are counted and printed, never failed on, but what
#      arrives must be intact and in order.
#
# Usage: dpdk_port_af_packet.sh PATH-TO-dpdk_port_peer
# Exits 77 (skipped) when namespaces cannot be made: not root, no ip(8).
set -u
peer=${1:?usage: $0 PATH-TO-dpdk_port_peer}

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: af_packet over veth needs root to create network namespaces"
	exit 77
fi
if ! command -v ip >/dev/null 2>&1; then
	echo "SKIP: ip(8) from iproute2 is not installed"
	exit 77
fi

id=$$
nsa=gnport-a-$id
nsb=gnport-b-$id
va=gnpa$id
vb=gnpb$id
prefix=gnport-af-$id
tmp=$(mktemp -d /tmp/gn-port-af-XXXXXX)
pids=""

cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
	ip link del "$va" 2>/dev/null
	rm -rf /var/run/dpdk/"$prefix"-* "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if ! ip netns add "$nsa" 2>"$tmp/err" || ! ip netns add "$nsb" 2>>"$tmp/err"; then
	echo "SKIP: cannot create network namespaces: $(cat "$tmp/err")"
	exit 77
fi
if ! ip link add "$va" type veth peer name "$vb" 2>"$tmp/err"; then
	echo "SKIP: cannot create a veth pair: $(cat "$tmp/err")"
	exit 77
fi
ip link set "$va" netns "$nsa" || exit 1
ip link set "$vb" netns "$nsb" || exit 1
for side in "$nsa $va" "$nsb $vb"; do
	set -- $side
	# No IPv6 chatter (router solicitations) on the test link.
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
	ip -n "$1" link set lo up || exit 1
	ip -n "$1" link set "$2" up || exit 1
done

# run NAME FRAMES RATE: both peers at once; prints their RESULT lines.
run() {
	name=$1 frames=$2 rate=$3
	# 4096-frame rings: 0.8 s of the modest rate, should a loaded
	# machine keep a receiver off the CPU for a while.
	common="--kind af_packet --frames $frames --rate $rate --ring 4096"
	common="$common --idle-ms 1500 --timeout-ms 25000"
	timeout 40 ip netns exec "$nsa" "$peer" --prefix "$prefix-$name-a" \
		--lcores 0 --ifname "$va" --seed 1 --peer-seed 2 $common \
		>"$tmp/$name-a.out" 2>&1 &
	pa=$!
	timeout 40 ip netns exec "$nsb" "$peer" --prefix "$prefix-$name-b" \
		--lcores 1 --ifname "$vb" --seed 2 --peer-seed 1 $common \
		>"$tmp/$name-b.out" 2>&1 &
	pb=$!
	pids="$pa $pb"
	wait "$pa"
	ra=$?
	wait "$pb"
	rb=$?
	pids=""
	sed "s/^/  $name-a: /" "$tmp/$name-a.out"
	sed "s/^/  $name-b: /" "$tmp/$name-b.out"
	if [ "$ra" != 0 ] || [ "$rb" != 0 ]; then
		echo "FAIL: $name: peers exited $ra and $rb (0 expected)"
		return 1
	fi
	return 0
}

# recvd SIDE-FILE: the frames that side received.
recvd() {
	sed -n 's/^RESULT.* recvd=\([0-9]*\) .*/\1/p' "$1"
}

fail=0
run modest 2000 5000 || fail=1
for s in a b; do
	got=$(recvd "$tmp/modest-$s.out")
	if [ "${got:-0}" != 2000 ]; then
		echo "FAIL: modest rate: side $s received ${got:-none} of 2000"
		fail=1
	fi
done

run fast 10000 0 || fail=1
for s in a b; do
	got=$(recvd "$tmp/fast-$s.out")
	echo "fast: side $s received ${got:-none} of 10000" \
		"($(( (10000 - ${got:-0}) * 100 / 10000 ))% lost)"
	if [ "${got:-0}" = 0 ]; then
		echo "FAIL: fast: side $s received nothing"
		fail=1
	fi
done

[ "$fail" = 0 ] && echo "PASS: af_packet over veth"
exit "$fail"
