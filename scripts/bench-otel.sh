#!/usr/bin/env bash
# What bsjobs' cargo feature `opentelemetry` costs: drain and enqueue
# (`bench --quick --only drain,enqueue`) built without it (`--features
# otel-layer`) and with it (`--features opentelemetry`), each run without a
# subscriber and with an OpenTelemetry tracing layer (BENCH_OTEL=1: spans
# recorded by the SDK and dropped, enqueues inside a span, drained jobs
# carrying a traceparent; see bench/src/otel.rs). The four runs of a round
# follow each other; RUNS rounds (default 3); BENCH_ARGS replaces `--quick`
# (e.g. `--quick --jobs 100000`). Prints min–max of each figure
# and, per round, the ratio feature on / feature off with the same
# subscriber: median (min–max).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-beanstalkd.sh
RUNS=${RUNS:-3}
read -r -a bench_args <<<"${BENCH_ARGS:---quick}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build --release -p bsjobs-bench --features otel-layer
cp target/release/bench "$out/bench-off"
cargo build --release -p bsjobs-bench --features opentelemetry
cp target/release/bench "$out/bench-on"

for i in $(seq "$RUNS"); do
    for otel in 0 1; do
        for build in off on; do
            echo "[bench-otel] round $i/$RUNS: feature $build, BENCH_OTEL=$otel" >&2
            BENCH_OTEL=$otel "$out/bench-$build" "${bench_args[@]}" --only drain,enqueue \
                >"$out/$build-$otel-$i.txt" 2>/dev/null
        done
    done
done

# fig FILE NAME: one figure of one run.
fig() {
    local f=$1
    case $2 in
    enq1) grep -m1 '^| enqueue: Job::enqueue, 1 task |' "$f" | awk -F'|' '{gsub(/[ ,]/,"",$3); print $3}' ;;
    enq64) grep -m1 '^| enqueue: Job::enqueue, 64 tasks' "$f" | awk -F'|' '{gsub(/[ ,]/,"",$3); print $3}' ;;
    bulk) grep -m1 '^| enqueue: client.enqueue_many |' "$f" | awk -F'|' '{gsub(/[ ,]/,"",$3); print $3}' ;;
    drain) grep -m1 '^| drain [0-9,]*: worker default' "$f" | awk -F'|' '{gsub(/[ ,]/,"",$3); print $3}' ;;
    # CPU per job, the lowest of the run's measurements (least disturbed).
    drain_cpu) grep '^- drain default' "$f" | sed -E 's/.*CPU per job: worker ([0-9.]+) µs.*/\1/' | sort -g | head -1 ;;
    enq1_cpu) grep '^- enqueue one:' "$f" | sed -E 's/.*producer process ([0-9.]+) µs.*/\1/' | sort -g | head -1 ;;
    bulk_cpu) grep '^- enqueue bulk:' "$f" | sed -E 's/.*producer process ([0-9.]+) µs.*/\1/' | sort -g | head -1 ;;
    esac
}

# stats: min–max and median of numbers on stdin.
minmax() { sort -g | awk '{v[NR]=$1} END {printf "%s–%s", v[1], v[NR]}'; }
median_range() {
    sort -g | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f (%.3f–%.3f)", m, v[1], v[NR]}'
}

printf '\nbench %s --only drain,enqueue\n' "${bench_args[*]}"
printf '\n| figure | subscriber | feature off | feature on | on / off, median (min–max) of %s rounds |\n' "$RUNS"
printf '|---|---|---:|---:|---|\n'
for key in enq1 enq64 bulk drain enq1_cpu bulk_cpu drain_cpu; do
    case $key in
    enq1) name="Job::enqueue, 1 task (jobs/s)" ;;
    enq64) name="Job::enqueue, 64 tasks (jobs/s)" ;;
    bulk) name="enqueue_many (jobs/s)" ;;
    drain) name="drain, default worker (jobs/s)" ;;
    enq1_cpu) name="producer CPU per job, 1 task (µs)" ;;
    bulk_cpu) name="producer CPU per job, enqueue_many (µs)" ;;
    drain_cpu) name="worker CPU per job, drain (µs)" ;;
    esac
    for otel in 0 1; do
        sub=$([ "$otel" = 1 ] && echo "OTel layer" || echo "none")
        off=$(for i in $(seq "$RUNS"); do fig "$out/off-$otel-$i.txt" $key; done | minmax)
        on=$(for i in $(seq "$RUNS"); do fig "$out/on-$otel-$i.txt" $key; done | minmax)
        ratio=$(for i in $(seq "$RUNS"); do
            a=$(fig "$out/off-$otel-$i.txt" $key)
            b=$(fig "$out/on-$otel-$i.txt" $key)
            awk -v a="$a" -v b="$b" 'BEGIN {print b / a}'
        done | median_range)
        printf '| %s | %s | %s | %s | %s |\n' "$name" "$sub" "$off" "$on" "$ratio"
    done
done
