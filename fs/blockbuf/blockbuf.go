// Package blockbuf allocates the block buffers of the read and write
// paths (the readahead pool, the upload buffers) on transparent huge
// pages where the kernel offers them.
//
// These buffers are large (a block, 8 MiB by default), live as long as
// the mount and are filled by the kernel at full speed, so what they cost
// is mostly their first touch: one page fault per 4 KiB page. On a VM
// whose memory the host takes back while unused, that first touch is
// expensive: measured on this project's test VMs, 256 MiB of fresh memory
// cost 2.9 s of CPU per GiB to touch in 4 KiB pages and 1.3-2.0 s in
// 2 MiB pages (BenchmarkFirstTouch), which was a fifth of the daemon's CPU
// for a 1 GiB cold read through a new mount. Elsewhere huge pages still
// save the faults and TLB misses.
//
// The memory is ordinary Go memory: the garbage collector frees it, and
// the advice is only advice (THP set to "never", a failed madvise, or
// fragmented memory all leave plain pages, which work the same).
package blockbuf

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// HugePage is the x86-64 and arm64 (4 KiB base pages) huge page size.
const HugePage = 2 << 20

// New returns a zeroed buffer of n bytes. From HugePage bytes up it starts
// on a huge-page boundary, and its whole huge pages are advised to be
// backed by huge pages.
func New(n int) []byte {
	if n < HugePage {
		return make([]byte, n)
	}
	// One spare huge page of address space buys the alignment; the part
	// of it before the boundary is never touched, so it costs no memory.
	raw := make([]byte, n+HugePage)
	off := 0
	if r := uintptr(unsafe.Pointer(unsafe.SliceData(raw))) % HugePage; r != 0 {
		off = HugePage - int(r)
	}
	b := raw[off : off+n : off+n]
	_ = unix.Madvise(b[:n&^(HugePage-1)], unix.MADV_HUGEPAGE)
	return b
}
