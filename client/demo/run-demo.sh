#!/usr/bin/env bash
# The walking skeleton end to end: start a genie-runtime on a free port,
# run genie-demo against it over TCP, then stop the runtime with SIGTERM
# and check that it shut down cleanly.
#
#   client/demo/run-demo.sh BUILD_DIR
set -euo pipefail

build=${1:-build}
runtime="$build/remote_runtime/genie-runtime"
demo="$build/client/demo/genie-demo"
work=$(mktemp -d)
rt_pid=
cleanup() {
	[ -n "$rt_pid" ] && kill "$rt_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "== starting genie-runtime on 127.0.0.1 (port chosen by the kernel)"
"$runtime" --listen tcp://127.0.0.1:0 --port-file "$work/port" --log runtime=info &
rt_pid=$!
for _ in $(seq 100); do
	[ -s "$work/port" ] && break
	kill -0 "$rt_pid" 2>/dev/null || { echo "genie-runtime exited early" >&2; exit 1; }
	sleep 0.05
done
[ -s "$work/port" ] || { echo "genie-runtime did not start listening" >&2; exit 1; }
port=$(cat "$work/port")

echo "== running genie-demo against tcp://127.0.0.1:$port"
"$demo" --target "tcp://127.0.0.1:$port"

echo "== same graph on the in-process local target, for comparison"
"$demo" --target local --repeat 5

echo "== stopping genie-runtime (SIGTERM)"
kill -TERM "$rt_pid"
if wait "$rt_pid"; then
	rt_pid=
	echo "== genie-runtime exited cleanly (status 0)"
else
	rc=$?
	rt_pid=
	echo "genie-runtime exited with status $rc" >&2
	exit 1
fi
