#!/bin/bash
# dpdk:// targets a client gets wrong, or that this host cannot serve,
# fail at once with an error that says what was expected and what went
# wrong, never hang: malformed memif, af_packet and pci targets, an
# af_packet interface that does not exist, and a well-formed pci target
# (no NIC is bound to vfio-pci here; without hugepages the EAL refuses to
# start and says so, with them the hot-plug finds no device and says
# that). A NIC to run the pci path end to end is not on this machine.
#
#   dpdk_targets.sh CLIENT
set -u
client=$1
fail=0

check() { # TARGET PATTERN
	local target=$1 pattern=$2 out t0=$SECONDS
	out=$(timeout 60 "$client" "$target" 1 10000 expect-fail 2>&1)
	local rc=$?
	if [ $rc -eq 0 ] && echo "$out" | grep -qE "$pattern" &&
	   [ $((SECONDS - t0)) -le 15 ]; then
		echo "ok   $target: $(echo "$out" | grep -E "$pattern" | head -1)"
	else
		echo "FAIL $target: rc $rc after $((SECONDS - t0)) s, expected /$pattern/:"
		echo "$out" | tail -5
		fail=1
	fi
}

check "dpdk://memif:" "expected dpdk://memif:/path/to/socket"
check "dpdk://pci:0000:ff:1f.7" "expected .*dpdk://pci:DDDD:BB:DD.F,ip="
check "dpdk://pci:0000:ff:1f.7,ip=10.9.0.1" "expected .*dpdk://pci:"
check "dpdk://pci:0000:ff:1f.7,ip=10.9.0.1,peer=10.9.0.2,port=0" \
	"expected .*dpdk://pci:"
check "dpdk://af_packet:genie-nosuch0,ip=10.9.0.1,peer=10.9.0.2" \
	"no interface 'genie-nosuch0' here"
check "dpdk://pci:0000:ff:1f.7,ip=10.9.0.1,peer=10.9.0.2" \
	"hugepages|0000:ff:1f.7 \(pci\): no such DPDK port"
exit $fail
