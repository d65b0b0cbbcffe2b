// Package fs presents a blob container as a FUSE filesystem (go-fuse v2):
// directories are '/'-delimited prefixes, reads are ranged downloads
// (fs/readahead) and writes are staged locally and uploaded as blocks
// (fs/stage). It talks to the service only through the Store interface,
// which *blob.Container implements.
//
// # Names
//
// A path is the blob name: "/a/b c.txt" is the blob "a/b c.txt". Any
// character the service keeps round-trips (spaces, %, #, ?, +, non-ASCII).
// Names the service would refuse or change are refused with EINVAL: a
// trailing '.' (which the service strips), control characters, backslashes.
// Listed names that POSIX cannot show ("", ".", "..", empty segments as in
// "a//b") are left out of directory listings.
//
// # Directories
//
// Every prefix is a directory, with or without a marker, so nothing another
// tool wrote is hidden. Markers read: a zero-length "dir/" (rclone, gcsfuse)
// and any blob with metadata hdi_isfolder=true, including blobfuse2's
// zero-length "dir". Written: a zero-length "dir/" with hdi_isfolder=true,
// by mkdir, by chmod/chown/utimens of a directory without one, and when the
// last entry of a marker-less directory is removed, so the directory does
// not vanish from under a user inside it (POSIX: it exists until rmdir).
// That marker is written 2 s later, or at unmount, if the directory is
// still there and empty: until then the mount keeps it, and rm -r, which
// removes the directory right after its last entry, writes none.
// rmdir of a directory with anything below it is ENOTEMPTY (one List call
// of two results); it deletes the markers it finds.
//
// A blob "a" and a prefix "a/" both existing: the directory wins. The blob
// cannot be reached through the mount (it is reported once in the log, at
// warn); rename it with another tool.
//
// # Attributes
//
// Kept in blob metadata with lowercase alphanumeric keys (SharedKey signing
// sorts header names culture-aware, so '_' and '-' are avoided):
//
//	mode      permission bits, octal ("0644"); written on create, mkdir,
//	          mknod, chmod
//	uid, gid  decimal; written on create (the caller's fsuid and fsgid,
//	          or the directory's gid in a setgid directory) and by chown
//	mtime     RFC 3339 with nanoseconds, rclone's format; written with
//	          every upload and by utimens (touch -d, cp -p, rsync -a)
//	atime     same format; written on create and by utimens (touch -a)
//	filetype  fifo, chr, blk or sock: a special file (see below)
//	rdev      decimal device number of a chr or blk special file
//
// A new file, directory, symlink or special file gets them all with its
// first upload, so creating a small file stays one Put Blob. mode is the
// one the program asked for less its umask (the kernel takes it off), so
// open(…, O_CREAT, 0) makes a file of mode 0000. In a setgid directory new
// entries take the directory's group, and new subdirectories its setgid
// bit.
//
// Blobs without them get the mount's --uid/--gid, --file-mode/--dir-mode
// (default 0644/0755) less --umask, Last-Modified as mtime, and mtime as
// atime. Reads never move atime (noatime: a blob would have to be
// rewritten for it). ctime is the blob's Last-Modified, which the service
// moves on every upload, metadata change and copy, so chmod, chown,
// utimens, write, truncate and rename all move it; this mount reports such
// changes to the nanosecond, a remount to the second. Other tools'
// metadata survives every rewrite (Put Blob and Put Block List replace the
// whole set, so the full set is always sent), names in the case the tool
// wrote them: a HEAD gives them lower-cased (Go's HTTP client
// canonicalises header names), so the first metadata write after one
// (chmod, chown, utimens, a rewrite) reads the exact names from a
// one-blob listing first; a blob known from a listing costs nothing more.
//
// A directory's mtime and ctime move when an entry is made, removed or
// renamed through this mount. They are kept in memory, not written to the
// marker (that would be a call per entry): after a remount, or when the
// kernel has forgotten the directory, it shows the mtime stored by mkdir
// or utimens again. Its st_nlink is 2 + its subdirectories while a listing
// of it is fresh (within the entry TTL), else 1, which find and fts read
// as "unknown", as on btrfs.
//
// A name (one path component) is at most 255 bytes (NAME_MAX, as statfs
// says): any operation on a longer one fails with ENAMETOOLONG before a
// call. A whole path is limited by the service to 1,024 characters, and
// 254 segments.
//
// # Symlinks and special files
//
// A symlink is a blob whose content is the target, with is_symlink=true
// (blobfuse2's convention, so both read each other's links).
//
// A FIFO (mkfifo), character or block device (mknod) or Unix socket
// (bind) is a zero-length blob with filetype=fifo|chr|blk|sock, mode,
// owner, times and, for devices, rdev. stat, ls -l, readdir, chmod,
// chown, mv and rm treat it as what it is, after a remount too. The kernel
// does its I/O: a FIFO passes data between processes of this machine, a
// socket accepts connections while its program listens here, and a device
// node cannot be opened (FUSE mounts are nodev).
//
// # Writes
//
// create, write at any offset and in any order, O_TRUNC, O_APPEND,
// truncate/ftruncate both ways and sparse files (holes read as zeros) work
// on a local staged copy; close() and fsync() upload it and return the
// upload's error, so a failed upload is never silent. Nothing is sent
// before: creating a small file is exactly one Put Blob. A file open for
// writing reads back what was written. Commits are conditional on the
// version opened: a blob changed meanwhile by another client is not
// overwritten (ESTALE, and stage saves the local version beside it).
//
// An append blob (another program's log) takes appends: writes at or past
// its end, as `>>` or O_APPEND make them, are staged the same way and sent
// at close() or fsync() as Append Block calls of at most 4 MiB, each
// pinned to its offset (x-ms-blob-condition-appendpos) and to the version
// the previous one made (If-Match), so an append never interleaves with
// another appender's: if the blob moved on, close() fails with ESTALE and
// the data goes to lost+found. The blob stays an append blob, and its
// metadata is rewritten only when an attribute changed through the mount.
// Anything else (a write below its end, truncate, O_TRUNC) is EPERM, with
// a log line naming the blob type, as is any write to a page blob. An
// append cut short by a crash is not sent again at the next mount (part
// of it may be in the blob): it goes to lost+found. Nothing of an append
// is sent before close(), so one larger than --cache-size fails with
// ENOSPC. Appending does not download the blob's end first.
//
// Unlinking an open file deletes the blob at once (it leaves the listing);
// open handles keep working on a local copy until the last close, and the
// file is never uploaded again.
//
// # A file's life, and the lock order
//
// Each regular file's fileNode owns its life (lifecycle.go): a state
// (pending: created here, no blob yet; committed: the blob is the node's
// props; removed), the blob name its next step uses, and the one
// blob-changing step under way (commit, metadata write, removal, move).
// Steps on one file run one at a time: an rm or mv that comes during an
// upload acts on what the upload made, a commit that comes during a
// removal finds nothing to commit, and a metadata change made while a
// writer is open goes with the writer's commit, so the mount never fails
// If-Match against itself. Reads, writes and getattr never wait for a
// step.
//
// Locks are taken in this order, never the reverse, and no mutex is held
// across a call to the service (a step's turn is not a mutex: only other
// steps wait for it):
//
//	a file's step turn (fileNode.beginLocked)
//	  < dirNode.mu
//	  < fileNode.mu, symlinkNode.mu
//	  < fileHandle.mu
//	  < stage.File (commitMu < mu) < stage.Manager.mu
//
// A rename takes the replaced file's turn, then the moved file's; a
// directory rename takes the turn of every file below it. The kernel
// serialises renames on one mount, so two of them never wait on each
// other.
//
// # Durability
//
// A write is in the staging cache (page cache) when write() returns, with
// a journal saying how to finish it. close() and fsync() commit: when
// they return success the service holds the data. Until then:
//
//   - SIGKILL or crash of the daemon: the next mount of the container
//     commits the files whose program had called close() or fsync() (the
//     commit was under way; a blob changed meanwhile is not overwritten,
//     the version goes to <name>.conflict-<UTC time>). A file still being
//     written is not made the blob, since it may be a prefix of what the
//     program meant: it is moved, data and journal, to lost+found in the
//     cache directory, and the mount logs the path. Nothing staged is
//     deleted before the service confirmed it.
//   - SIGTERM, SIGINT or unmount: from then on opens for writing and
//     creates fail with EROFS and writes with EIO; commits already under
//     way finish; files still open for writing are not committed but
//     fsynced in the cache (one log line each, with the cache file), and a
//     close() that comes after the signal fails with EIO. The next mount
//     moves them to lost+found. So a SIGTERM during a copy leaves the blob
//     absent (or as it was), never truncated.
//
// The cache directory is 0700 and its files 0600.
//
// # Rename
//
// A file moves by Copy Blob, checked to have completed ("success"), then
// Delete of the source if it is still the version copied: two calls and no
// data through the client, over an existing target too. A file still open
// moves with its handles (later writes commit under the new name). A
// directory moves every blob below it, eight copies at a time; if any copy
// fails the copies are removed and rename fails with EIO, so there is no
// silent half-move. No rename is atomic. EXDEV never happens inside the
// mount; RENAME_EXCHANGE is EINVAL.
//
// A blob with snapshots is not renamed unless the mount has
// --delete-snapshots: the source could not be deleted without them. A
// file's rename then fails with EBUSY after its copy is removed again; a
// directory's is refused before any copy (its listing includes the
// snapshots, at no extra call). The log line names the snapshots and
// --delete-snapshots. With it, the source's snapshots go with the source.
//
// # Not possible on blobs
//
//	link(2)                  EPERM (a blob has one name)
//	paths over 1,024 chars   ENAMETOOLONG (the service's limit on names)
//	extended attributes      ENOTSUP
//	fallocate punch/zero     EOPNOTSUPP (plain and KEEP_SIZE work)
//	O_TMPFILE                EOPNOTSUPP
//	fcntl/flock locks        kept by the kernel: they hold between processes
//	                         of this machine only
//
// statfs reports 1 PiB, all free, so df and installers are content.
//
// go-fuse's POSIX suite (posixtest.All, 32 tests on Linux) runs against a
// mount on Azurite in posix_test.go: 26 pass; the 6 that cannot (hard
// links twice, xattrs twice, O_TMPFILE, per-open-file fcntl locks) are in
// its posixSkip map with the reason.
//
// # Freshness
//
// Attributes, names and absent names are cached by the kernel and the mount
// for --attr-ttl and --entry-ttl (default 30s) and --negative-ttl (5s); a
// directory listing is reused for the entry TTL, answers lookups of listed
// and of absent names without a call, and carries every child's attributes
// (READDIRPLUS), so `ls -l` of 10,000 blobs is 2 List calls and no HEAD and
// `stat` afterwards is none. A subdirectory's own attributes live in its
// marker, which a listing with a delimiter rolls up into the prefix; a
// walk (find, du, rsync, rm -r: a lookup of a subdirectory of a directory
// just read) lists the subtree once without a delimiter instead, 5,000
// blobs a page, which gives every marker and the listing of every
// directory below, so it costs about as many List calls as a flat listing
// and no HEAD. A directory looked up by path alone costs a one-result List
// of its prefix. While this mount removes entries in a directory, lookups
// answer from the listing they were found in past the entry TTL, so rm -r
// costs one Delete per blob. Changes by other clients show after the TTLs. Opening a
// file compares its ETag with the version whose pages the kernel caches:
// unchanged keeps the page cache, changed drops it, and a reader then reads
// one version only (readahead pins the ETag).
//
// # Signals
//
// A signal to a program interrupts the FUSE request it waits on. Lookups,
// stat, open, readdir and reads go on for 2 s after that and fail with
// EINTR only if still not done: a harmless signal (SIGCHLD, SIGALRM, Go's
// SIGURG) does not fail them, as it would not on a local disk or an NFS
// hard mount, and a program killed while the service hangs is let go.
// Changes (create, close, fsync, rename, unlink, truncate) ignore
// interrupts: abandoned half-way they would lose or duplicate data.
//
// # Errors
//
// The core returns errors; the go-fuse adapter (fuse.go) maps each once,
// through one table (errno.go), and logs the real error once at warn with
// the operation and path (a bare errno such as ENOTEMPTY is an answer and
// is not logged):
//
//	blob not found             ENOENT
//	already exists             EEXIST
//	changed by another writer  ESTALE
//	authentication, authorization  EACCES
//	too large                  EFBIG
//	invalid name               EINVAL
//	name too long              ENAMETOOLONG
//	leased, snapshots, copy pending  EBUSY
//	archived (rehydrate first)  ENODATA
//	not an append to an append blob, any write to a page blob  EPERM
//	staging cache full         ENOSPC
//	interrupted, and not done 2 s later  EINTR
//	service unavailable past the retry budget (outage, stall), throttled
//	after retries, integrity, anything else  EIO
package fs
