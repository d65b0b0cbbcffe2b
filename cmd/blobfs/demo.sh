#!/usr/bin/env bash
# make demo: Azurite and the IMDS/ARM emulator on 127.0.0.1, a blobfs mount
# through the managed-identity path (IMDS token -> ARM listKeys -> SharedKey),
# then cp, ls and cat through the mount and a REST listing of the container.
# Everything it starts is stopped on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."

AZURITE=blob/blobtest/node_modules/.bin/azurite-blob
ACCOUNT=devstoreaccount1
# Azurite's well-known development key: public, and only ever sent to 127.0.0.1.
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
CONTAINER=demo

[ -x "$AZURITE" ] || { echo "Azurite is not installed: run 'make deps'" >&2; exit 1; }
[ -x bin/blobfs ] && [ -x bin/blobfs-emulator ] || { echo "run 'make build' first" >&2; exit 1; }

WORK=$(mktemp -d /tmp/blobfs-demo.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
PIDS=()
cleanup() {
	set +e
	if grep -qs " $MNT " /proc/self/mountinfo; then
		bin/blobfs unmount --run-dir "$WORK/run" "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT" 2>/dev/null
	fi
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "starting Azurite (in memory, 127.0.0.1, telemetry off)"
# --disableTelemetry: Azurite must never report to a public endpoint.
"$AZURITE" --inMemoryPersistence --blobHost 127.0.0.1 --blobPort 0 --loose --skipApiVersionCheck --disableTelemetry \
	>"$WORK/azurite.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	PORT=$(sed -n 's/.*listens on https\{0,1\}:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/azurite.log" | head -1)
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "${PORT:-}" ] || { echo "Azurite did not start:" >&2; cat "$WORK/azurite.log" >&2; exit 1; }
BLOB=http://127.0.0.1:$PORT/$ACCOUNT
echo "blob endpoint $BLOB"

step "starting the IMDS/ARM emulator (127.0.0.1)"
bin/blobfs-emulator --account "$ACCOUNT" --key "$KEY" >"$WORK/emulator.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	IMDS=$(sed -n 's/^IMDS=//p' "$WORK/emulator.out")
	ARM=$(sed -n 's/^ARM=//p' "$WORK/emulator.out")
	[ -n "$IMDS" ] && [ -n "$ARM" ] && break
	sleep 0.1
done
[ -n "${ARM:-}" ] || { echo "emulator did not start:" >&2; cat "$WORK/emulator.out" >&2; exit 1; }
echo "IMDS $IMDS, ARM $ARM"

step "mounting container '$CONTAINER' at $MNT (auth-mode msi-key)"
run bin/blobfs mount "$MNT" --account "$ACCOUNT" --container "$CONTAINER" --create-container \
	--blob-endpoint "$BLOB" --imds-endpoint "$IMDS" --arm-endpoint "$ARM" \
	--cache-dir "$WORK/cache" --run-dir "$WORK/run" --log-file "$WORK/blobfs.log"
echo "mounted: $(grep " $MNT " /proc/self/mountinfo | awk '{print $9, $10}')"

step "cp, ls and cat through the mount"
echo "hello from blobfs, $(date -u +%FT%TZ)" >"$WORK/hello.txt"
run cp "$WORK/hello.txt" "$MNT/hello.txt"
run mkdir "$MNT/docs"
run cp go.mod "$MNT/docs/go.mod"
run ls -l "$MNT" "$MNT/docs"
run cat "$MNT/hello.txt"

step "the same files are blobs in the service (REST listing, no FUSE)"
AZURE_STORAGE_KEY=$KEY run go run ./cmd/blobfs/internal/bloblist --endpoint "$BLOB" --account "$ACCOUNT" --container "$CONTAINER"

step "blobfs check: every hop of the managed-identity path, and a write probe"
run bin/blobfs check --account "$ACCOUNT" --container "$CONTAINER" --write-probe \
	--blob-endpoint "$BLOB" --imds-endpoint "$IMDS" --arm-endpoint "$ARM"

step "blobfs stats"
run bin/blobfs stats --run-dir "$WORK/run" "$MNT"

step "unmounting (waits for pending uploads)"
run bin/blobfs unmount --run-dir "$WORK/run" "$MNT"
echo
echo "demo done; everything ran on 127.0.0.1 and has been stopped."
