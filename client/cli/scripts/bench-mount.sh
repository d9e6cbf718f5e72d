#!/usr/bin/env bash
# `cairn mount` against `cairn put`/`cairn get` on a devnet of real nodes:
# sequential write (dd + fsync) and read of one big file, `cp -a` of many
# files of 4 KiB-1 MiB (files/s, deals, shards), commit latency of a small
# fsync, `ls -l` of a 10 000-entry directory cold and warm, and the mount's
# peak RSS. Needs fuse3 and python3; run as a user who may mount FUSE.
#
#   CAIRN=target/debug/cairn client/cli/scripts/bench-mount.sh
#   env: SIZE_MIB (256), FILES (1000), ENTRIES (10000), NODES (5);
#   DATA_SHARDS / PARITY_SHARDS (the devnet's by default); BIG_ONLY=1 runs
#   only the big-file write and read; RUNS repeats `cairn get` and the
#   mount's read of the big file that often (default 1), on the same devnet;
#   READ_AHEAD and CACHE_MAX set the mount's --read-ahead and --cache-max;
#   COPY_MIB copies that much (the big file again and again) into the mount
#   and reports the mount's peak RSS, or with COPY_URANDOM=1 writes one file
#   of COPY_MIB from /dev/urandom straight into the mount (no source file
#   on disk). TMPDIR says where the devnet, cache and files go.
set -euo pipefail
CAIRN=${CAIRN:-cairn}
SIZE_MIB=${SIZE_MIB:-256}
FILES=${FILES:-1000}
ENTRIES=${ENTRIES:-10000}
NODES=${NODES:-5}
BIG_ONLY=${BIG_ONLY:-0}
COPY_MIB=${COPY_MIB:-0}
COPY_URANDOM=${COPY_URANDOM:-0}
RUNS=${RUNS:-1}
MOUNT_ARGS=()
[ -n "${READ_AHEAD:-}" ] && MOUNT_ARGS+=(--read-ahead "$READ_AHEAD")
[ -n "${CACHE_MAX:-}" ] && MOUNT_ARGS+=(--cache-max "$CACHE_MAX")
W=$(mktemp -d)
MNT=$W/mnt
MOUNT_PID=
cleanup() {
  [ -n "$MOUNT_PID" ] && kill "$MOUNT_PID" 2>/dev/null && wait "$MOUNT_PID" 2>/dev/null
  fusermount3 -uz "$MNT" 2>/dev/null || true
  "$CAIRN" devnet down --dir "$W/devnet" >/dev/null 2>&1 || true
  rm -rf "$W" 2>/dev/null || true
}
trap cleanup EXIT
export HOME=$W/home
mkdir -p "$HOME" "$MNT"
"$CAIRN" devnet up --dir "$W/devnet" --nodes "$NODES" --capacity 16GiB >/dev/null
if [ -n "${DATA_SHARDS:-}" ]; then
  sed -i -e "s/^data_shards = .*/data_shards = $DATA_SHARDS/" \
    -e "s/^parity_shards = .*/parity_shards = ${PARITY_SHARDS:-1}/" "$W/devnet/client.toml"
fi
C=("$CAIRN" --config "$W/devnet/client.toml")
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
mib_s() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$1" "$2"; }
# Shard files on every node of the devnet (a shard held twice counts twice).
shards() { find "$W/devnet" -path '*/shards/*' -name '*.shard' -type f | wc -l; }
deals() { "${C[@]}" --json deals | python3 -c "import json,sys; d=json.load(sys.stdin); print(len(d if isinstance(d, list) else d['deals']))"; }
mount_up() {
  "${C[@]}" mount "$MNT" --cache-dir "$W/cache" --commit-interval 5 ${MOUNT_ARGS[@]+"${MOUNT_ARGS[@]}"} 2>>"$W/mount.log" &
  MOUNT_PID=$!
  until grep -q " $MNT " /proc/self/mountinfo; do sleep 0.1; done
}
mount_down() { kill "$MOUNT_PID"; wait "$MOUNT_PID"; MOUNT_PID=; }

head -c $((SIZE_MIB << 20)) /dev/urandom >"$W/big"
t=$(now); "${C[@]}" put "$W/big" /put/ >/dev/null; put_s=$(since "$t")

mount_up
mkdir "$MNT/w"
t=$(now); dd if="$W/big" of="$MNT/w/big" bs=1M conv=fsync status=none; write_s=$(since "$t")
echo "big file:   $SIZE_MIB MiB"
echo "cairn put:  $(mib_s "$SIZE_MIB" "$put_s") MiB/s   mount write (dd + fsync): $(mib_s "$SIZE_MIB" "$write_s") MiB/s"
# `cairn get` and the mount's read alternate, RUNS times, on one devnet.
for run in $(seq 1 "$RUNS"); do
  t=$(now); "${C[@]}" get /put/big -o "$W/big.get" >/dev/null; get_s=$(since "$t")
  rm -f "$W/big.get"
  t=$(now); read_bytes=$(dd if="$MNT/put/big" of=/dev/null bs=1M 2>&1 | awk '/bytes/ {print $1}'); read_s=$(since "$t")
  [ "$read_bytes" = $((SIZE_MIB << 20)) ] || { echo "the mount read $read_bytes bytes, not $((SIZE_MIB << 20))"; exit 1; }
  echo "run $run: cairn get $(mib_s "$SIZE_MIB" "$get_s") MiB/s   mount read (dd) $(mib_s "$SIZE_MIB" "$read_s") MiB/s   read/get $(python3 -c "print(f'{$get_s / $read_s * 100:.0f}')") %"
done
rss_big=$(grep VmHWM /proc/"$MOUNT_PID"/status | awk '{print $2}')
echo "mount peak RSS after the big file: $((rss_big >> 10)) MiB"
if [ "$COPY_MIB" -gt 0 ]; then
  mkdir "$MNT/copy"
  t=$(now)
  if [ "$COPY_URANDOM" = 1 ]; then
    copied=$COPY_MIB
    head -c $((COPY_MIB << 20)) /dev/urandom | dd of="$MNT/copy/random" bs=1M iflag=fullblock status=none
  else
    copied=$(( (COPY_MIB + SIZE_MIB - 1) / SIZE_MIB * SIZE_MIB ))
    for i in $(seq 1 $(( (COPY_MIB + SIZE_MIB - 1) / SIZE_MIB ))); do
      dd if="$W/big" of="$MNT/copy/big$i" bs=1M status=none
    done
  fi
  python3 -c "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)" "$MNT/copy"
  copy_s=$(since "$t")
  rss_copy=$(grep VmHWM /proc/"$MOUNT_PID"/status | awk '{print $2}')
  echo "copy:       $copied MiB in ${copy_s} s ($(mib_s "$copied" "$copy_s") MiB/s); mount peak RSS $((rss_copy >> 10)) MiB; cache now $(du -sm "$W/cache" | cut -f1) MiB"
fi
[ "$BIG_ONLY" = 1 ] && exit 0

python3 - "$W/small" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
for i in range(n):
    d = os.path.join(root, f"d{i % 20}")
    os.makedirs(d, exist_ok=True)
    size = int(4096 * 256 ** random.random())  # log-uniform 4 KiB - 1 MiB
    with open(os.path.join(d, f"f{i}"), "wb") as f:
        f.write(os.urandom(size))
PY
small_bytes=$(du -sb "$W/small" | cut -f1)
deals_before=$(deals)
shards_before=$(shards)
t=$(now)
cp -a "$W/small" "$MNT/small"
python3 -c "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)" "$MNT/small"
cp_s=$(since "$t")
deals_cp=$(( $(deals) - deals_before ))
shards_cp=$(( $(shards) - shards_before ))

lat=$(python3 - "$MNT" <<'PY'
import os, sys, time
times = []
for i in range(10):
    t = time.time()
    with open(os.path.join(sys.argv[1], f"lat{i}"), "wb") as f:
        f.write(b"x" * 100)
        f.flush()
        os.fsync(f.fileno())
    times.append(time.time() - t)
times.sort()
print(f"{times[5]:.2f} {times[0]:.2f} {times[-1]:.2f}")
PY
)
rss=$(grep VmHWM /proc/"$MOUNT_PID"/status | awk '{print $2}')
mount_down

python3 - "$W/many" "$ENTRIES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root)
for i in range(n):
    with open(os.path.join(root, f"entry-{i:05}"), "wb") as f:
        f.write(b"%d" % i)
PY
"${C[@]}" put "$W/many" /many/ >/dev/null
mount_up
t=$(now); n=$(ls -l "$MNT/many/many" | wc -l); ls_cold=$(since "$t")
t=$(now); ls -l "$MNT/many/many" >/dev/null; ls_warm=$(since "$t")
mount_down

echo "cp -a:      $FILES files, $((small_bytes >> 20)) MiB in ${cp_s} s = $(python3 -c "print(f'{$FILES / $cp_s:.0f}')") files/s, $deals_cp deals, $shards_cp shards"
echo "fsync of a 100-byte file (commit latency): median/min/max ${lat// //} s"
echo "ls -l of $((n - 1)) entries: cold ${ls_cold} s, warm ${ls_warm} s"
echo "mount peak RSS: $((rss_big >> 10)) MiB after the big file, $((rss >> 10)) MiB after cp -a"
