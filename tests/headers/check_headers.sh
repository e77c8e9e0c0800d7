#!/usr/bin/env bash
# Every public header must compile on its own (DPDK's check_includes): for
# each client/include/genie/*.h, compile a file that includes only it, as C
# and as C++ when a C++ compiler is present.
#
#   check_headers.sh CC INCLUDE_DIR
set -u
cc=$1
inc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
for h in "$inc"/genie/*.h; do
	name=genie/$(basename "$h")
	printf '#include <%s>\nint gn_header_check_%d;\n' "$name" "$n" >"$tmp/t.c"
	if "$cc" -std=c11 -Wall -Wextra -Werror -pedantic -I"$inc" -c "$tmp/t.c" -o "$tmp/t.o" 2>"$tmp/err"; then
		echo "ok   $name (C11)"
	else
		echo "FAIL $name (C11)"; cat "$tmp/err"; fail=1
	fi
	if command -v c++ >/dev/null; then
		cp "$tmp/t.c" "$tmp/t.cc"
		if c++ -std=c++11 -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.cc" -o "$tmp/t.o" 2>"$tmp/err"; then
			echo "ok   $name (C++11)"
		else
			echo "FAIL $name (C++11)"; cat "$tmp/err"; fail=1
		fi
	fi
	n=$((n + 1))
done
if [ "$n" -eq 0 ]; then
	echo "FAIL no headers found under $inc/genie"
	exit 1
fi
echo "$n public headers checked"
exit $fail
