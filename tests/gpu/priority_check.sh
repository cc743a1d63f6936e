#!/bin/sh
# What a request's "priority", and fair sharing between API keys, buy on the GPU machine
# (after tests/gpu/pack.sh, carry [".gpu"]; about 110 s): `vprm serve --random-weights 1` at
# the full 8B shape with two API keys, an RL loop's bulk load (vprm bench --url, W3, 32
# clients, normal priority, key "bulk") and, during it, a latency-bound client (W1,
# Best-of-8, one client) sending its requests
#   - "normal" with the bulk load's key (one client: arrival order),
#   - "high" with the bulk load's key,
#   - "normal" with a key of its own (fair sharing between the two keys).
# Prints each run's latency lines and the server's queue time by priority. Exit 1 when a
# run fails. BACKEND=cpu: the same on the tiny model (VPRM: the binary, default .gpu's).
#     sh tests/gpu/priority_check.sh
set -u
G=$PWD/.gpu
W=/tmp/vprm-prio
PY=${PYTHON:-python3}
V=${VPRM:-$G/bin/vprm}
BACKEND=${BACKEND:-cuda}
BULK_S=${BULK_S:-25}
rm -rf "$W" && mkdir -p "$W"
pid=
trap 'kill -TERM $pid 2>/dev/null' EXIT
trap 'exit 1' INT TERM
export LD_LIBRARY_PATH="$G/lib:/usr/local/cuda/lib64"
if [ "$BACKEND" = cpu ]; then
    "$V" mkmodel --scale tiny --seed 1 --tokenizer engine/assets/tiny_tokenizer --out "$W/m" >/dev/null || exit 1
    set -- --model "$W/m"
    SCALE="--max-side 448 --max-tiles 2"
else
    "$V" mkmodel --scale 8b --config-only --tokenizer "$G/tokenizer" --out "$W/m" >/dev/null || exit 1
    set -- --model "$W/m" --random-weights 1
    SCALE=
fi
port=18130
printf 'bulk bulk-key-%s-1\nbon bon-key-%s-22\n' $$ $$ >"$W/keys.txt"
chmod 600 "$W/keys.txt"
"$V" serve "$@" --backend "$BACKEND" --host 127.0.0.1 --port $port --api-keys-file "$W/keys.txt" \
    >"$W/serve.out" 2>"$W/serve.log" &
pid=$!
URL=http://127.0.0.1:$port
i=0
until [ "$(LD_LIBRARY_PATH= curl -s -o /dev/null -w '%{http_code}' $URL/ready)" = 200 ]; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then
        echo "priority_check: the server did not become ready:"; tail -n 5 "$W/serve.log"; exit 1
    fi
    sleep 0.2
done
fail=0
for case in normal high own-key; do
    p=normal key=bulk-key-$$-1
    [ $case = high ] && p=high
    [ $case = own-key ] && key=bon-key-$$-22
    # shellcheck disable=SC2086
    timeout $((BULK_S + 60)) "$V" bench --url $URL --api-key bulk-key-$$-1 --workload W3 \
        --clients 32 --seconds "$BULK_S" $SCALE >"$W/bulk_$case.txt" 2>&1 &
    bulk=$!
    sleep 10 # the bulk load's requests generated, its queue filled
    # shellcheck disable=SC2086
    timeout 120 "$V" bench --url $URL --api-key "$key" --workload W1 --clients 1 --seconds 12 \
        --pool 4 --priority $p $SCALE >"$W/w1_$case.txt" 2>&1 ||
        { echo "priority_check: W1 $case failed"; fail=1; }
    wait $bulk || { echo "priority_check: the bulk load failed"; fail=1; }
    if [ $case = own-key ]; then
        echo "== W1, 1 client, priority normal, its own API key (fair sharing), during W3 with 32 clients"
    else
        echo "== W1, 1 client, priority $p, the bulk load's API key, during W3 with 32 clients (normal)"
    fi
    grep -E "^requests:|^latency" "$W/w1_$case.txt" | sed 's/^/  W1:   /'
    grep -E "^requests:|^throughput|^latency|^useful" "$W/bulk_$case.txt" | sed 's/^/  bulk: /'
done
LD_LIBRARY_PATH= curl -s -H "Authorization: Bearer bulk-key-$$-1" $URL/metrics |
    grep -E '^vprm_queue_seconds_by_priority_(sum|count)|^vprm_key_tokens_computed_total'
kill -TERM $pid 2>/dev/null
wait $pid 2>/dev/null
pid=
grep -m1 -E "cuda backend: NVIDIA|model .* loaded" "$W/serve.log" | cut -c 1-200
exit $fail
