#!/bin/bash
# genie-probe against the kernel's own view: with no RDMA device in
# /sys/class/infiniband it must say "no RDMA device" and choose staging;
# otherwise it must list every device there and not choose staging when a
# port is active.
set -eu
probe=$1
out=$("$probe")
json=$("$probe" --json)
echo "$out"
echo "$json"
if [ ! -d /sys/class/infiniband ] || [ -z "$(ls /sys/class/infiniband)" ]; then
	grep -qx "no RDMA device" <<<"$out"
	grep -q '"rdma_devices": \[\]' <<<"$json"
	grep -q '"path": "staging"' <<<"$json"
else
	for d in /sys/class/infiniband/*; do
		grep -q "RDMA device $(basename "$d") " <<<"$out"
	done
fi
