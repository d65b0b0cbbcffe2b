#!/usr/bin/env bash
# make sandbox / make sandbox-stop: a local stand-in for Azure to try blobfs
# by hand. Azurite (in memory, telemetry off) and the IMDS/ARM emulator
# listen on fixed loopback ports, a container is created, and the exact
# `blobfs mount` line to paste is printed. Nothing leaves 127.0.0.1.
#
#   cmd/blobfs/sandbox.sh start    # what make sandbox runs
#   cmd/blobfs/sandbox.sh stop     # unmounts, stops both, removes the state
set -euo pipefail
cd "$(dirname "$0")/../.."

AZURITE=blob/blobtest/node_modules/.bin/azurite-blob
DIR=/tmp/blobfs-sandbox
ACCOUNT=devstoreaccount1
# Azurite's well-known development key: public, and only ever sent to 127.0.0.1.
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
CONTAINER=sandbox
BLOB_PORT=10000
IMDS_PORT=40342
ARM_PORT=40343
BLOB=http://127.0.0.1:$BLOB_PORT/$ACCOUNT
IMDS=http://127.0.0.1:$IMDS_PORT
ARM=http://127.0.0.1:$ARM_PORT

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_taken() {
	# bash's /dev/tcp: a successful connect means something listens.
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop() {
	if grep -qs " $DIR/mnt " /proc/self/mountinfo; then
		bin/blobfs unmount --run-dir "$DIR/run" "$DIR/mnt" 2>/dev/null || fusermount3 -uz "$DIR/mnt" 2>/dev/null || umount -l "$DIR/mnt" || true
	fi
	for p in emulator azurite; do
		if running "$DIR/$p.pid"; then
			kill "$(cat "$DIR/$p.pid")" 2>/dev/null || true
		fi
	done
	for _ in $(seq 50); do
		running "$DIR/emulator.pid" || running "$DIR/azurite.pid" || break
		sleep 0.1
	done
	rm -rf "$DIR"
	echo "sandbox stopped"
}

start() {
	[ -x "$AZURITE" ] || { echo "Azurite is not installed: run 'make deps'" >&2; exit 1; }
	[ -x bin/blobfs ] && [ -x bin/blobfs-emulator ] || { echo "run 'make build' first" >&2; exit 1; }
	if running "$DIR/azurite.pid" && running "$DIR/emulator.pid"; then
		echo "the sandbox is already running (make sandbox-stop stops it)"
	else
		for port in $BLOB_PORT $IMDS_PORT $ARM_PORT; do
			if port_taken "$port"; then
				echo "port 127.0.0.1:$port is taken by another program: the sandbox needs 10000, 40342 and 40343 (a sandbox of another checkout? make sandbox-stop there)" >&2
				exit 1
			fi
		done
		rm -rf "$DIR"
		mkdir -p "$DIR/mnt"
		# --disableTelemetry: Azurite must never report to a public endpoint.
		setsid "$AZURITE" --inMemoryPersistence --blobHost 127.0.0.1 --blobPort "$BLOB_PORT" \
			--loose --skipApiVersionCheck --disableTelemetry >"$DIR/azurite.log" 2>&1 </dev/null &
		echo $! >"$DIR/azurite.pid"
		for _ in $(seq 150); do
			grep -qs "listens on" "$DIR/azurite.log" && break
			running "$DIR/azurite.pid" || break
			sleep 0.1
		done
		grep -qs "listens on" "$DIR/azurite.log" || { echo "Azurite did not start:" >&2; cat "$DIR/azurite.log" >&2; stop >/dev/null; exit 1; }

		setsid bin/blobfs-emulator --account "$ACCOUNT" --key "$KEY" \
			--imds-addr "127.0.0.1:$IMDS_PORT" --arm-addr "127.0.0.1:$ARM_PORT" \
			--blob-endpoint "$BLOB" --create-container "$CONTAINER" >"$DIR/emulator.log" 2>&1 </dev/null &
		echo $! >"$DIR/emulator.pid"
		for _ in $(seq 150); do
			grep -qs "^ARM=" "$DIR/emulator.log" && break
			running "$DIR/emulator.pid" || break
			sleep 0.1
		done
		grep -qs "^ARM=" "$DIR/emulator.log" || { echo "the IMDS/ARM emulator did not start:" >&2; cat "$DIR/emulator.log" >&2; stop >/dev/null; exit 1; }
	fi
	cat <<EOF
sandbox running: Azurite at $BLOB, IMDS at $IMDS, ARM at $ARM,
container '$CONTAINER' created. Logs and state in $DIR. Mount it with:

bin/blobfs mount $DIR/mnt --account $ACCOUNT --container $CONTAINER --blob-endpoint $BLOB --imds-endpoint $IMDS --arm-endpoint $ARM --cache-dir $DIR/cache --run-dir $DIR/run --log-file $DIR/blobfs.log

Stop everything with: make sandbox-stop
EOF
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
