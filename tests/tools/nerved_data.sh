#!/bin/sh
# nerved-data on the command line: the formats, and exit status 2 with a
# message for every kind of bad argument. Usage: nerved_data.sh NERVED_DATA
set -u
bin=$1
fail=0

check() { # description, condition already evaluated as $?
    if [ "$2" -ne 0 ]; then
        echo "FAIL: $1"
        fail=1
    fi
}

out=$("$bin" mackey-glass --steps 5 --tau 17 --format json)
check "mackey-glass json runs" $?
case $out in "[1.2, "*"]") r=0 ;; *) r=1 ;; esac
check "mackey-glass json is a flat array starting at x0: $out" $r
[ "$(echo "$out" | tr ',' '\n' | wc -l)" -eq 5 ]
check "mackey-glass json has 5 values" $?

out=$("$bin" lorenz --steps 3 --dt 0.01 --format csv)
[ "$(echo "$out" | head -n 1)" = "x,y,z" ] && [ "$(echo "$out" | wc -l)" -eq 4 ] &&
    [ "$(echo "$out" | sed -n 2p)" = "1,1,1" ]
check "lorenz csv: header, initial point, 3 rows: $out" $?

out=$("$bin" narma --steps 3 --seed 5)
case $out in "[["*", 0], ["*", 0.1], ["*"]]") r=0 ;; *) r=1 ;; esac
check "narma json rows of (u, y): $out" $r

"$bin" --help | grep -q "mackey-glass"
check "--help lists the series" $?

for args in "" "foo" "lorenz --seed 3" "lorenz --dt" "lorenz --dt abc" \
            "mackey-glass --steps 0" "mackey-glass --format xml" \
            "mackey-glass --h -1" "narma --order 0" "narma extra"; do
    # shellcheck disable=SC2086
    err=$("$bin" $args 2>&1 >/dev/null)
    status=$?
    [ "$status" -eq 2 ] && [ -n "$err" ]
    check "'nerved-data $args' exits 2 with a message (got $status: $err)" $?
done
exit $fail
