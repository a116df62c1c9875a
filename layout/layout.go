// Package layout defines shmq's on-memory format, version 2: the segment
// header, the placement of every shared field, and the record format of the
// SPSC ring. It does no system calls and touches no mapping; it encodes
// headers into byte slices and validates headers read back from untrusted
// memory. LAYOUT.md in this directory is the normative description; the
// constants here and in shmq.h must agree with it.
//
// All multi-byte fields are little-endian. A queue may be shared only by
// processes of a 64-bit little-endian ABI (amd64, arm64, riscv64, ppc64le,
// loong64): cursors are 64-bit words updated with single atomic loads and
// stores, which 32-bit processes cannot do on every platform.
package layout

import "encoding/binary"

// Magic is the first 8 bytes of every segment: "SHMQ\r\n\x1a\n". Like PNG's
// signature, the line-ending and EOF bytes catch segments mangled by text
// tools, and the letters make hex dumps self-explanatory.
const Magic uint64 = 0x0a1a0a0d514d4853

// Version is the layout version this package writes and accepts. Version 2
// replaced the waiter counts of version 1 by waiter sets (recoverable after
// a waiter dies), added the MPMC tombstone owner, and names a segment only
// once it is published.
const Version uint32 = 2

// LineSize is the unit of placement: every field written by a different
// party lives on its own LineSize-aligned line. 128 bytes rather than 64
// because adjacent-line prefetchers on x86 pull cache lines in pairs.
const LineSize = 128

// PageSize is the alignment of the data region and of the segment size.
const PageSize = 4096

// Kind tells which queue protocol a segment carries.
type Kind uint32

const (
	KindSPSC Kind = 1 // single producer, single consumer, variable-length records
	KindMPMC Kind = 2 // multi producer, multi consumer, fixed-size slots
	// KindPubSub: one publisher, many subscribers that each read every
	// message; variable-length records (pubsub.go, LAYOUT.md section 18).
	KindPubSub Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindSPSC:
		return "spsc"
	case KindMPMC:
		return "mpmc"
	case KindPubSub:
		return "pubsub"
	}
	return "unknown"
}

// Flags of the flags word. Decode rejects any other bit with ErrVersion.
const (
	// FlagLocked (MPMC only): the queue runs in locked mode, a bounded
	// buffer guarded by semaphores and robust mutexes whose words live in
	// the wake lines (WakeSem*, WakeMutex*). Chosen at creation.
	FlagLocked uint32 = 1
	// FlagLossy (pub/sub only) is in pubsub.go.
	// FlagSleeperBit (every kind): bit 0 of each wake line's WakeSeq says
	// that a waiter is asleep or about to sleep on it, and publishers wake
	// only when it is set (LAYOUT.md section 6). Set by every creator of
	// this version; a segment without it uses the protocol without the bit.
	FlagSleeperBit uint32 = 4
)

// Initialization states of the state word. A zero-filled segment reads as
// StateInit; the creator stores StateReady last, with release semantics.
const (
	StateInit  uint32 = 0
	StateReady uint32 = 0x59444552 // "REDY": unlikely to appear by accident
)

// Byte offsets of the descriptor fields in line 0. They are fixed for every
// version so that a reader can find the magic, state and version before it
// trusts anything else.
const (
	OffMagic       = 0  // u64 Magic
	OffState       = 8  // u32 StateInit or StateReady, written last by the creator
	OffVersion     = 12 // u32 Version
	OffKind        = 16 // u32 Kind
	OffFlags       = 20 // u32 flags: FlagLocked (MPMC only) or 0
	OffTotalSize   = 24 // u64 size of the whole segment in bytes
	OffCapacity    = 32 // u64 SPSC: data bytes (power of two); MPMC: slot count (power of two)
	OffMaxMessage  = 40 // u32 largest payload in bytes
	OffSlotSize    = 44 // u32 MPMC: bytes per slot; SPSC: record alignment (8)
	OffLineSize    = 48 // u32 LineSize
	OffCreatorPID  = 52 // u32 pid of the creator, for display only
	OffCreatedNano = 56 // u64 creation time, Unix nanoseconds, for display only
	OffHeaderSize  = 64 // u32 bytes before the first non-header line (the producer line)
)

// Byte offsets of the offset table in line 1 (as io_uring publishes its ring
// offsets): a reader takes every region's position from here rather than
// hard-coding it, so later versions can move regions.
const (
	OffTabProducer      = 128 // u64 offset of the producer line
	OffTabConsumer      = 136 // u64 offset of the consumer line
	OffTabProducerWake  = 144 // u64 offset of the line producers park on (waiting for space)
	OffTabConsumerWake  = 152 // u64 offset of the line consumers park on (waiting for data)
	OffTabRegistry      = 160 // u64 offset of the registry
	OffTabRegistryCount = 168 // u32 number of registry entries
	OffTabEntrySize     = 172 // u32 bytes per registry entry (LineSize)
	OffTabData          = 176 // u64 offset of the data region
	OffTabDataSize      = 184 // u64 bytes in the data region
	OffTabWaiters       = 192 // u64 offset of waiter set 0; set k is one line at OffTabWaiters + k*LineSize
	OffTabWaiterSets    = 200 // u32 number of waiter sets (SPSCWaiterSets or MPMCWaiterSets)
)

// Fields within a cursor line (producer line and consumer line).
const (
	CursorPosition = 0 // u64 free-running byte (SPSC) or slot (MPMC) position
)

// Fields within a wake line. The waiting side registers in the line's
// waiter set before it re-checks the queue and parks on Seq; the other side
// bumps Seq and wakes only when the set is not empty.
//
// In an MPMC queue in locked mode (FlagLocked) each wake line also holds a
// counting semaphore (producers' line: free slots; consumers' line: filled
// slots) and a robust mutex (the producers' one guards the enqueue cursor,
// the consumers' one the dequeue cursor), whose waiters register in waiter
// sets of their own. Zero-filled in other queues. Offsets 4, 12, 24 and 28
// held waiter counts and mutex units in version 1; they are reserved (zero).
const (
	WakeSeq        = 0  // u32 futex word
	WakeSemCount   = 8  // u32 locked mode: semaphore count, also its futex word
	WakeMutexState = 16 // u32 locked mode: mutex state (0 unlocked), also its futex word
	WakeMutexOwner = 20 // u32 locked mode: pid of the mutex owner, for display only
)

// Waiter sets. A waiter set is one line of WaiterSetWords 64-bit words, a
// bitmap of registry entries: bit j of word k stands for entry 64k+j. A
// waiter sets its entry's bit before it re-checks its condition and parks,
// and clears it when it leaves; a publisher that finds any bit set bumps
// the futex word and wakes. Because each bit belongs to one registry entry,
// the registration of a waiter that died is found and cleared exactly, by
// whoever next holds (or reaps) its entry: unlike a count, a set cannot
// keep a dead waiter forever.
//
// Sets 0 and 1 belong to the wake lines' Seq words; MPMC queues have four
// more, for locked mode's semaphores and mutexes.
const (
	WaiterSetWords = LineSize / 8        // 16 words
	WaiterSetBits  = WaiterSetWords * 64 // 1024: the largest registry

	WaiterSetProducers = 0 // producers parked on the producers' wake line (waiting for space)
	WaiterSetConsumers = 1 // consumers parked on the consumers' wake line (waiting for data)
	WaiterSetFree      = 2 // MPMC locked mode: waiters of the free-slots semaphore
	WaiterSetFilled    = 3 // MPMC locked mode: waiters of the filled-slots semaphore
	WaiterSetMutexP    = 4 // MPMC locked mode: waiters of the producers' mutex
	WaiterSetMutexC    = 5 // MPMC locked mode: waiters of the consumers' mutex

	SPSCWaiterSets = 2
	MPMCWaiterSets = 6
)

// WaiterSetLen is the number of words of a waiter set that a registry of
// count entries uses; publishers look at these words only.
func WaiterSetLen(count uint32) int { return int((count + 63) / 64) }

// Locked-mode mutexes, numbered for MutexLockByte.
const (
	MutexProducers = 0 // on the producers' wake line
	MutexConsumers = 1 // on the consumers' wake line
)

// MutexLockByte is the byte of the segment file whose OFD lock marks the
// holder of locked-mode mutex k (MutexProducers or MutexConsumers) as
// alive: the bytes after the registry's, 1+registryCount+k.
func MutexLockByte(registryCount uint32, k int) int64 {
	return entryLockBase + int64(registryCount) + int64(k)
}

// Fields within a registry entry (one line each). Only the entry's holder
// writes it. Liveness is not stored here: the holder keeps an OFD write lock
// on byte EntryLockByte(i) of the segment file for as long as it is attached,
// and the kernel drops that lock when the holder dies.
const (
	EntryState      = 0  // u32 EntryFree, EntryAttached or EntryDetached
	EntryRole       = 4  // u32 RoleProducer or RoleConsumer
	EntryPID        = 8  // u32 holder's pid, for display only
	EntryGen        = 12 // u32 incremented on every attach
	EntryAttachNano = 16 // u64 attach time, Unix nanoseconds
	EntryMessages   = 24 // u64 messages committed (producer) or released (consumer)
	EntryBytes      = 32 // u64 payload bytes committed or released
	EntryStalls     = 40 // u64 attempts that found the queue full (producer) or empty (consumer)
	EntryWaits      = 48 // u64 times this holder parked
	EntryWakes      = 56 // u64 wake calls this holder made for the other side
	EntryUnits      = 64 // u32 MPMC locked mode: semaphore units this holder may hold (for recovery)
)

// Registry entry states.
const (
	EntryFree     uint32 = 0
	EntryAttached uint32 = 1
	EntryDetached uint32 = 2 // closed cleanly
)

// Roles recorded in registry entries.
const (
	RoleProducer uint32 = 1
	RoleConsumer uint32 = 2
)

// Lock bytes of the segment file. Byte InitLockByte is held by the creator
// until the segment is ready, so an opener can tell a creator that is still
// working from one that died half way.
const (
	InitLockByte  = 0
	entryLockBase = 1
)

// EntryLockByte is the byte of the segment file whose OFD lock marks
// registry entry i as held by a live process.
func EntryLockByte(i int) int64 { return entryLockBase + int64(i) }

// SPSC registry entries: the producer holds entry 0, the consumer entry 1.
const (
	SPSCProducerEntry = 0
	SPSCConsumerEntry = 1
)

// Fixed positions of the version 1 lines. Readers must use the offset table;
// these are what Encode writes.
const (
	lineDescriptor   = 0
	lineOffsets      = 1
	lineProducer     = 2
	lineConsumer     = 3
	lineProducerWake = 4
	lineConsumerWake = 5
	lineWaiters      = 6 // then the waiter sets, the registry, and the data region on a page boundary
	headerLines      = 2 // descriptor and offset table
)

// Header is the decoded, validated form of a segment header. Once Decode has
// returned it, its values are private copies: a peer that later rewrites the
// header in shared memory cannot change them.
type Header struct {
	Kind          Kind
	Flags         uint32
	TotalSize     uint64
	Capacity      uint64 // SPSC: data bytes; MPMC: slots
	MaxMessage    uint32 // largest payload in bytes
	SlotSize      uint32 // MPMC: bytes per slot; SPSC: RecordAlign
	CreatorPID    uint32
	CreatedNano   int64
	HeaderSize    uint32
	Producer      uint64 // offset of the producer cursor line
	Consumer      uint64 // offset of the consumer cursor line
	ProducerWake  uint64 // offset of the producers' wake line
	ConsumerWake  uint64 // offset of the consumers' wake line
	Registry      uint64 // offset of registry entry 0
	RegistryCount uint32
	EntrySize     uint32
	Data          uint64 // offset of the data region
	DataSize      uint64
	Waiters       uint64 // offset of waiter set 0
	WaiterSets    uint32 // number of waiter sets
}

// WaiterSet returns the offset of waiter set k. k must be in range.
func (h *Header) WaiterSet(k int) uint64 { return h.Waiters + uint64(k)*LineSize }

// Entry returns the offset of registry entry i. i must be in range.
func (h *Header) Entry(i int) uint64 { return h.Registry + uint64(i)*uint64(h.EntrySize) }

var le = binary.LittleEndian

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// Encode writes h's descriptor and offset table into b, leaving the state
// word at StateInit; the creator publishes StateReady with an atomic store
// after everything else in the segment is in place. b must hold at least
// 2*LineSize bytes.
func Encode(b []byte, h *Header) {
	_ = b[headerLines*LineSize-1]
	le.PutUint64(b[OffMagic:], Magic)
	le.PutUint32(b[OffState:], StateInit)
	le.PutUint32(b[OffVersion:], Version)
	le.PutUint32(b[OffKind:], uint32(h.Kind))
	le.PutUint32(b[OffFlags:], h.Flags)
	le.PutUint64(b[OffTotalSize:], h.TotalSize)
	le.PutUint64(b[OffCapacity:], h.Capacity)
	le.PutUint32(b[OffMaxMessage:], h.MaxMessage)
	le.PutUint32(b[OffSlotSize:], h.SlotSize)
	le.PutUint32(b[OffLineSize:], LineSize)
	le.PutUint32(b[OffCreatorPID:], h.CreatorPID)
	le.PutUint64(b[OffCreatedNano:], uint64(h.CreatedNano))
	le.PutUint32(b[OffHeaderSize:], h.HeaderSize)
	le.PutUint64(b[OffTabProducer:], h.Producer)
	le.PutUint64(b[OffTabConsumer:], h.Consumer)
	le.PutUint64(b[OffTabProducerWake:], h.ProducerWake)
	le.PutUint64(b[OffTabConsumerWake:], h.ConsumerWake)
	le.PutUint64(b[OffTabRegistry:], h.Registry)
	le.PutUint32(b[OffTabRegistryCount:], h.RegistryCount)
	le.PutUint32(b[OffTabEntrySize:], h.EntrySize)
	le.PutUint64(b[OffTabData:], h.Data)
	le.PutUint64(b[OffTabDataSize:], h.DataSize)
	le.PutUint64(b[OffTabWaiters:], h.Waiters)
	le.PutUint32(b[OffTabWaiterSets:], h.WaiterSets)
}
