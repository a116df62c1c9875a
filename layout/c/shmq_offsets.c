/*
 * shmq_offsets prints the layout constants of shmq.h as key=value lines:
 * the #defines, and the offsetof/sizeof of the mirroring structs, so a test
 * can compare both with the Go constants.
 */
#include "../shmq.h"

#define P(k, v) printf("%s=%llu\n", k, (unsigned long long)(v))
#define O(k, s, f) printf("%s=%llu\n", k, (unsigned long long)offsetof(struct s, f))

int main(void)
{
	P("Magic", SHMQ_MAGIC);
	P("Version", SHMQ_VERSION);
	P("LineSize", SHMQ_LINE_SIZE);
	P("PageSize", SHMQ_PAGE_SIZE);
	P("HeaderSize", SHMQ_HEADER_SIZE);
	P("KindSPSC", SHMQ_KIND_SPSC);
	P("KindMPMC", SHMQ_KIND_MPMC);
	P("StateInit", SHMQ_STATE_INIT);
	P("StateReady", SHMQ_STATE_READY);

	P("OffMagic", SHMQ_OFF_MAGIC);
	P("OffState", SHMQ_OFF_STATE);
	P("OffVersion", SHMQ_OFF_VERSION);
	P("OffKind", SHMQ_OFF_KIND);
	P("OffFlags", SHMQ_OFF_FLAGS);
	P("OffTotalSize", SHMQ_OFF_TOTAL_SIZE);
	P("OffCapacity", SHMQ_OFF_CAPACITY);
	P("OffMaxMessage", SHMQ_OFF_MAX_MESSAGE);
	P("OffSlotSize", SHMQ_OFF_SLOT_SIZE);
	P("OffLineSize", SHMQ_OFF_LINE_SIZE);
	P("OffCreatorPID", SHMQ_OFF_CREATOR_PID);
	P("OffCreatedNano", SHMQ_OFF_CREATED_NANO);
	P("OffHeaderSize", SHMQ_OFF_HEADER_SIZE);
	P("OffTabProducer", SHMQ_OFF_TAB_PRODUCER);
	P("OffTabConsumer", SHMQ_OFF_TAB_CONSUMER);
	P("OffTabProducerWake", SHMQ_OFF_TAB_PRODUCER_WAKE);
	P("OffTabConsumerWake", SHMQ_OFF_TAB_CONSUMER_WAKE);
	P("OffTabRegistry", SHMQ_OFF_TAB_REGISTRY);
	P("OffTabRegistryCount", SHMQ_OFF_TAB_REGISTRY_COUNT);
	P("OffTabEntrySize", SHMQ_OFF_TAB_ENTRY_SIZE);
	P("OffTabData", SHMQ_OFF_TAB_DATA);
	P("OffTabDataSize", SHMQ_OFF_TAB_DATA_SIZE);
	P("OffTabWaiters", SHMQ_OFF_TAB_WAITERS);
	P("OffTabWaiterSets", SHMQ_OFF_TAB_WAITER_SETS);

	O("struct.OffMagic", shmq_segment_header, desc.magic);
	O("struct.OffState", shmq_segment_header, desc.state);
	O("struct.OffVersion", shmq_segment_header, desc.version);
	O("struct.OffKind", shmq_segment_header, desc.kind);
	O("struct.OffFlags", shmq_segment_header, desc.flags);
	O("struct.OffTotalSize", shmq_segment_header, desc.total_size);
	O("struct.OffCapacity", shmq_segment_header, desc.capacity);
	O("struct.OffMaxMessage", shmq_segment_header, desc.max_message);
	O("struct.OffSlotSize", shmq_segment_header, desc.slot_size);
	O("struct.OffLineSize", shmq_segment_header, desc.line_size);
	O("struct.OffCreatorPID", shmq_segment_header, desc.creator_pid);
	O("struct.OffCreatedNano", shmq_segment_header, desc.created_nano);
	O("struct.OffHeaderSize", shmq_segment_header, desc.header_size);
	O("struct.OffTabProducer", shmq_segment_header, tab.producer);
	O("struct.OffTabConsumer", shmq_segment_header, tab.consumer);
	O("struct.OffTabProducerWake", shmq_segment_header, tab.producer_wake);
	O("struct.OffTabConsumerWake", shmq_segment_header, tab.consumer_wake);
	O("struct.OffTabRegistry", shmq_segment_header, tab.registry);
	O("struct.OffTabRegistryCount", shmq_segment_header, tab.registry_count);
	O("struct.OffTabEntrySize", shmq_segment_header, tab.entry_size);
	O("struct.OffTabData", shmq_segment_header, tab.data);
	O("struct.OffTabDataSize", shmq_segment_header, tab.data_size);
	O("struct.OffTabWaiters", shmq_segment_header, tab.waiters);
	O("struct.OffTabWaiterSets", shmq_segment_header, tab.waiter_sets);

	P("CursorPosition", SHMQ_CURSOR_POSITION);
	O("struct.CursorPosition", shmq_cursor_line, position);
	P("WakeSeq", SHMQ_WAKE_SEQ);
	P("WakeSemCount", SHMQ_WAKE_SEM_COUNT);
	P("WakeMutexState", SHMQ_WAKE_MUTEX_STATE);
	P("WakeMutexOwner", SHMQ_WAKE_MUTEX_OWNER);
	O("struct.WakeSeq", shmq_wake_line, seq);
	O("struct.WakeSemCount", shmq_wake_line, sem_count);
	O("struct.WakeMutexState", shmq_wake_line, mutex_state);
	O("struct.WakeMutexOwner", shmq_wake_line, mutex_owner);

	P("WaiterSetWords", SHMQ_WAITER_SET_WORDS);
	P("WaiterSetBits", SHMQ_WAITER_SET_BITS);
	P("WaiterSetProducers", SHMQ_WAITER_SET_PRODUCERS);
	P("WaiterSetConsumers", SHMQ_WAITER_SET_CONSUMERS);
	P("WaiterSetFree", SHMQ_WAITER_SET_FREE);
	P("WaiterSetFilled", SHMQ_WAITER_SET_FILLED);
	P("WaiterSetMutexP", SHMQ_WAITER_SET_MUTEX_P);
	P("WaiterSetMutexC", SHMQ_WAITER_SET_MUTEX_C);
	P("SPSCWaiterSets", SHMQ_SPSC_WAITER_SETS);
	P("MPMCWaiterSets", SHMQ_MPMC_WAITER_SETS);
	P("WaiterSetLen1", SHMQ_WAITER_SET_LEN(1));
	P("WaiterSetLen64", SHMQ_WAITER_SET_LEN(64));
	P("WaiterSetLen65", SHMQ_WAITER_SET_LEN(65));
	P("WaiterSetLen1024", SHMQ_WAITER_SET_LEN(1024));
	P("WaiterSetSize", sizeof(struct shmq_waiter_set));

	P("EntryState", SHMQ_ENTRY_STATE);
	P("EntryRole", SHMQ_ENTRY_ROLE);
	P("EntryPID", SHMQ_ENTRY_PID);
	P("EntryGen", SHMQ_ENTRY_GEN);
	P("EntryAttachNano", SHMQ_ENTRY_ATTACH_NANO);
	P("EntryMessages", SHMQ_ENTRY_MESSAGES);
	P("EntryBytes", SHMQ_ENTRY_BYTES);
	P("EntryStalls", SHMQ_ENTRY_STALLS);
	P("EntryWaits", SHMQ_ENTRY_WAITS);
	P("EntryWakes", SHMQ_ENTRY_WAKES);
	P("EntryUnits", SHMQ_ENTRY_UNITS);
	O("struct.EntryState", shmq_registry_entry, state);
	O("struct.EntryRole", shmq_registry_entry, role);
	O("struct.EntryPID", shmq_registry_entry, pid);
	O("struct.EntryGen", shmq_registry_entry, gen);
	O("struct.EntryAttachNano", shmq_registry_entry, attach_nano);
	O("struct.EntryMessages", shmq_registry_entry, messages);
	O("struct.EntryBytes", shmq_registry_entry, bytes);
	O("struct.EntryStalls", shmq_registry_entry, stalls);
	O("struct.EntryWaits", shmq_registry_entry, waits);
	O("struct.EntryWakes", shmq_registry_entry, wakes);
	O("struct.EntryUnits", shmq_registry_entry, units);
	P("EntryFree", SHMQ_ENTRY_FREE);
	P("EntryAttached", SHMQ_ENTRY_ATTACHED);
	P("EntryDetached", SHMQ_ENTRY_DETACHED);
	P("RoleProducer", SHMQ_ROLE_PRODUCER);
	P("RoleConsumer", SHMQ_ROLE_CONSUMER);
	P("InitLockByte", SHMQ_INIT_LOCK_BYTE);
	P("EntryLockByte0", SHMQ_ENTRY_LOCK_BYTE(0));
	P("EntryLockByte1", SHMQ_ENTRY_LOCK_BYTE(1));
	P("MutexProducers", SHMQ_MUTEX_PRODUCERS);
	P("MutexConsumers", SHMQ_MUTEX_CONSUMERS);
	P("MutexLockByteP64", SHMQ_MUTEX_LOCK_BYTE(64, SHMQ_MUTEX_PRODUCERS));
	P("MutexLockByteC64", SHMQ_MUTEX_LOCK_BYTE(64, SHMQ_MUTEX_CONSUMERS));
	P("SPSCProducerEntry", SHMQ_SPSC_PRODUCER_ENTRY);
	P("SPSCConsumerEntry", SHMQ_SPSC_CONSUMER_ENTRY);
	P("MaxRegistryEntries", SHMQ_MAX_REGISTRY_ENTRIES);

	P("RecordHeaderSize", SHMQ_RECORD_HEADER_SIZE);
	P("RecordAlign", SHMQ_RECORD_ALIGN);
	P("RecordLength", SHMQ_RECORD_LENGTH);
	P("RecordType", SHMQ_RECORD_TYPE);
	O("struct.RecordLength", shmq_record_header, length);
	O("struct.RecordType", shmq_record_header, type);
	P("TypeMessage", SHMQ_TYPE_MESSAGE);
	P("TypePadding", SHMQ_TYPE_PADDING);
	P("MinSPSCCapacity", SHMQ_MIN_SPSC_CAPACITY);
	P("MaxSPSCCapacity", SHMQ_MAX_SPSC_CAPACITY);
	P("SPSCMaxMessage4096", shmq_spsc_max_message(4096));
	P("SPSCMaxMessage8G", shmq_spsc_max_message(UINT64_C(1) << 33));
	P("RecordSize1", shmq_record_size(1));
	P("RecordSize8", shmq_record_size(8));

	P("SlotHeaderSize", SHMQ_SLOT_HEADER_SIZE);
	P("SlotAlign", SHMQ_SLOT_ALIGN);
	P("MaxSlotSize", SHMQ_MAX_SLOT_SIZE);
	P("MaxMPMCSlots", SHMQ_MAX_MPMC_SLOTS);
	P("MinSlotSize", SHMQ_MIN_SLOT_SIZE);
	P("SlotSeq", SHMQ_SLOT_SEQ);
	P("SlotLength", SHMQ_SLOT_LENGTH);
	P("SlotProducer", SHMQ_SLOT_PRODUCER);
	O("struct.SlotSeq", shmq_slot_header, seq);
	O("struct.SlotLength", shmq_slot_header, length);
	O("struct.SlotProducer", shmq_slot_header, producer);
	P("SlotEmpty", SHMQ_SLOT_EMPTY);
	P("SlotWriting", SHMQ_SLOT_WRITING);
	P("SlotFull", SHMQ_SLOT_FULL);
	P("SlotReading", SHMQ_SLOT_READING);
	P("SeqRankShift", SHMQ_SEQ_RANK_SHIFT);
	P("SeqOwnerMask", SHMQ_SEQ_OWNER_MASK);
	P("SeqOwnerOrphan", SHMQ_SEQ_OWNER_ORPHAN);
	P("SeqOwnerTomb", SHMQ_SEQ_OWNER_TOMB);
	P("MaxMPMCRegistry", SHMQ_MAX_MPMC_REGISTRY);
	P("SeqRankBits", SHMQ_SEQ_RANK_BITS);
	P("FlagLocked", SHMQ_FLAG_LOCKED);
	P("SeqWordF5o7", shmq_seq_word(5, SHMQ_SLOT_FULL, 7));
	P("SeqWordWrapR", shmq_seq_word(UINT64_MAX, SHMQ_SLOT_READING, 65535));
	P("SeqDiffLapAhead", (uint64_t)shmq_seq_diff(shmq_seq_word(1024 + 3, SHMQ_SLOT_EMPTY, 0), 3));
	P("SeqDiffPrevLapR", (uint64_t)shmq_seq_diff(shmq_seq_word(3, SHMQ_SLOT_READING, 1), 1024 + 3));
	P("SeqDiffWrap", (uint64_t)shmq_seq_diff(shmq_seq_word(2, SHMQ_SLOT_WRITING, 0), UINT64_MAX - 1));

	P("PlanProducerLine", SHMQ_PLAN_PRODUCER_LINE);
	P("PlanConsumerLine", SHMQ_PLAN_CONSUMER_LINE);
	P("PlanProducerWakeLine", SHMQ_PLAN_PRODUCER_WAKE_LINE);
	P("PlanConsumerWakeLine", SHMQ_PLAN_CONSUMER_WAKE_LINE);
	P("PlanWaiters", SHMQ_PLAN_WAITERS);
	P("PlanRegistrySPSC", SHMQ_PLAN_REGISTRY(SHMQ_SPSC_WAITER_SETS));
	P("PlanRegistryMPMC", SHMQ_PLAN_REGISTRY(SHMQ_MPMC_WAITER_SETS));
	P("MPMCMaxAttempts", SHMQ_MPMC_MAX_ATTEMPTS);
	P("MPMCSuspectNs", SHMQ_MPMC_SUSPECT_NS);
	P("MPMCRecheckNs", SHMQ_MPMC_RECHECK_NS);
	P("LivenessPeriodNs", SHMQ_LIVENESS_PERIOD_NS);
	P("SweepPeriodNs", SHMQ_SWEEP_PERIOD_NS);
	P("MaxNameLen", SHMQ_MAX_NAME_LEN);
	return 0;
}
