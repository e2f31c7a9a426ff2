#!/bin/bash
# cpu_tree.sh PID: CPU seconds (utime+stime, all threads) used so far by PID and every
# descendant process (Kamailio forks its workers; Switchboard is one process).
root=$1
tck=$(getconf CLK_TCK)
declare -A parent
for st in /proc/[0-9]*/stat; do
    { read -r line < "$st"; } 2> /dev/null || continue
    p=${st#/proc/}
    p=${p%/stat}
    rest=${line##*) }
    read -r -a f <<< "$rest"
    parent[$p]=${f[1]}
done
ticks=0
for p in "${!parent[@]}"; do
    q=$p
    for _ in 1 2 3 4 5 6 7 8; do
        if [ "$q" = "$root" ]; then
            if { read -r line < "/proc/$p/stat"; } 2> /dev/null; then
                rest=${line##*) }
                read -r -a f <<< "$rest"
                ticks=$((ticks + f[11] + f[12]))
            fi
            break
        fi
        q=${parent[$q]:-0}
        [ "$q" = 0 ] && break
    done
done
echo "scale=3; $ticks / $tck" | bc
