/*
 * The wake protocol of shmq's blocking calls (notify/line.go,
 * notify/waiterset.go, spsc/wait.go, mpmc/wait.go, pubsub/wait.go), for a
 * bounded queue whose producer and consumer both block, with waiter sets.
 * It follows the flag-set protocol of layout version 2 with FlagSleeperBit
 * (LAYOUT.md section 6): bit 0 of a wake word says that a waiter is asleep
 * or about to sleep on it, the other bits are a wrapping epoch.
 *
 * Waiter (entry me): check; register (OR me's bit into the line's waiter
 * set); then loop: 4.1 s = load(seq); 4.2 if bit 0 of s is clear,
 * CAS(seq, s, s|1), back to 4.1 if it fails; 4.3 re-check, leave if ready;
 * 4.5 futex_wait(seq, s|1), back to 4.1 on any return; 5. unregister
 * (AND-NOT). Publisher, after the store that publishes: 3. if the waiter
 * set is empty, stop; 4. s = load(seq), stop if bit 0 is clear; 4b.
 * CAS(seq, s, s+1) (clears the bit, advances the epoch), stop if it fails;
 * 5. if the set is still not empty, wake every sleeper; 6. now and then,
 * sweep the set. Every step on shared words is sequentially consistent
 * (Go's sync/atomic; C11 seq_cst with fences in shmq.h), which Promela's
 * interleaving semantics models; a CAS is one atomic step. Parks are
 * unbounded here: the code's bounded parks would hide a lost wakeup.
 *
 * Dead waiters. A third registry entry's holder (the victim) registers in
 * the consumers' set and dies there, maybe after setting bit 0 of the
 * word: the kernel drops its liveness lock, its bits stay. Bits are
 * written only by a holder of the entry's lock: the holder itself; a
 * publisher that has just woken sleepers and sweeps the set
 * (Segment.ReapWaiter: take the lock of a registered entry if it is free,
 * clear the entry's bits in every set, unlock); and a process that
 * attaches the dead entry (ring.Attach clears its bits under the lock it
 * just took), modeled by the successor, which then wakes the consumers'
 * line as a recovery does: a second publisher there, so that a publisher's
 * CAS can fail.
 *
 * Property: no live side stays parked while it has something to do. Spin
 * checks it as the absence of invalid end states (a process blocked
 * forever) plus the final assertion. Four mutants must fail, which CI
 * checks too: -DLOST_WAKEUP drops the re-check right after registering
 * (the waiter re-checks only after a wake), -DWAKE_FIRST has the publisher
 * look for waiters before it publishes, -DSWEEP_NOLOCK has the sweeper
 * clear registered bits without taking the entry's lock, so it can clear a
 * live waiter's fresh registration, and -DRECHECK_BEFORE_BIT has the
 * waiter re-check before it sets bit 0 rather than after (then park on
 * s|1), so a publisher between the two finds the bit clear and wakes no one.
 */

#ifndef CAP
#define CAP 1
#endif
#ifndef N
#define N 4
#endif

#define PROD   0 /* registry entries */
#define CONS   1
#define VICTIM 2
#define NE     3

byte head = 0; /* consumer cursor */
byte tail = 0; /* producer cursor */

/* Wake lines: futex word, waiter set (bit i: entry i), and the parked
 * flag that stands for "a live thread sleeps in FUTEX_WAIT on this word". */
byte pseq = 0; byte pset = 0; bool pparked = false; /* producers wait for space */
byte cseq = 0; byte cset = 0; bool cparked = false; /* consumers wait for data */

/* The liveness lock of each entry (an OFD lock): held by the entry's live
 * holder (every entry's holder is alive at the start), or briefly by a
 * sweeper or an attacher of a dead entry. */
bool lock[NE] = true;

/* futex_wait(word, old): sleep only if word == old, atomically with the
 * check, until a wake clears the flag. */
inline futex_wait(word, old, parked) {
	atomic { if :: word == old -> parked = true :: else -> skip fi };
	(!parked)
}

/* clearWaiters(i): entry i's bit leaves every set. */
inline clear_waiters(i) {
	atomic { pset = pset & ~(1 << i); cset = cset & ~(1 << i) }
}

/* ReapWaiter for every entry registered in set, as a publisher's periodic
 * sweep does: it reads the set, then for each member takes the entry's
 * lock if no one holds it, clears the entry's bits and unlocks. */
inline sweep(set) {
	m = set;
	i = 0;
	do
	:: i == NE -> break
	:: i < NE && (m & (1 << i)) == 0 -> i++
	:: i < NE && (m & (1 << i)) != 0 ->
#ifdef SWEEP_NOLOCK
		clear_waiters(i);
#else
		atomic { if :: !lock[i] -> lock[i] = true; got = true :: else -> got = false fi };
		if
		:: got -> clear_waiters(i); lock[i] = false
		:: else -> skip
		fi;
#endif
		i++
	od;
	m = 0; i = 0; got = false
}

/* A publisher's wake (Line.WakeIfWaiting with SleeperBit): if any entry
 * is registered and bit 0 of the word is set, advance the word with a CAS
 * that clears the bit and, if that succeeds and the set is still not
 * empty, wake the sleepers; after a wake, now and then
 * (nondeterministically here, once per sweep period in the code), sweep
 * the set for dead registrants. */
inline wake_if_waiting(set, word, parked, maysweep) {
	if
	:: set != 0 ->
		s = word;
		if
		:: (s & 1) == 1 ->
			atomic { if :: word == s -> word = (s + 1) % 256; got = true :: else -> got = false fi };
			if
			:: got && set != 0 -> parked = false; got = false;
				if :: maysweep -> sweep(set) :: skip fi
			:: else -> got = false
			fi
		:: else -> skip
		fi;
		s = 0
	:: else -> skip
	fi
}

/* arm (steps 4.1-4.2): s = the word with bit 0 set, set by this waiter's
 * CAS unless it was set already; a failed CAS reloads. */
inline arm(word) {
	do
	:: s = word;
	   if
	   :: (s & 1) == 0 ->
		atomic { if :: word == s -> word = s | 1; s = s | 1 :: else -> skip fi }
	   :: else -> skip
	   fi;
	   if :: (s & 1) == 1 -> break :: else -> skip fi
	od
}

/* Wait until cond holds, using the protocol, for entry me of the line
 * (set, word, parked). */
#ifdef RECHECK_BEFORE_BIT
inline await(cond, set, word, parked, me) {
	set = set | (1 << me); /* register (atomic OR) */
	do
	:: s = word;
	   if
	   :: cond -> break /* re-check, before the bit */
	   :: else -> skip
	   fi;
	   if
	   :: (s & 1) == 0 ->
		atomic { if :: word == s -> word = s | 1; s = s | 1 :: else -> skip fi }
	   :: else -> skip
	   fi;
	   if
	   :: (s & 1) == 1 -> futex_wait(word, s, parked)
	   :: else -> skip /* the CAS failed: start over */
	   fi
	od;
	set = set & ~(1 << me); /* unregister (atomic AND-NOT) */
	s = 0
}
#else
inline await(cond, set, word, parked, me) {
	set = set | (1 << me); /* register (atomic OR) */
#ifdef LOST_WAKEUP
	arm(word);
	futex_wait(word, s, parked);
#endif
	do
	:: arm(word);
	   if
	   :: cond -> break /* re-check */
	   :: else -> futex_wait(word, s, parked)
	   fi
	od;
	set = set & ~(1 << me); /* unregister (atomic AND-NOT) */
	s = 0
}
#endif

active proctype Producer() {
	byte s, m, i;
	bool got;
	do
	:: tail == N -> break
	:: else ->
		if
		:: tail - head < CAP -> skip
		:: else -> await(tail - head < CAP, pset, pseq, pparked, PROD)
		fi;
#ifdef WAKE_FIRST
		wake_if_waiting(cset, cseq, cparked, true);
		tail++
#else
		tail++;                                 /* publish */
		wake_if_waiting(cset, cseq, cparked, true) /* then look for waiters */
#endif
	od
}

active proctype Consumer() {
	byte s, m, i;
	bool got;
	do
	:: head == N -> break
	:: else ->
		if
		:: tail != head -> skip
		:: else -> await(tail != head, cset, cseq, cparked, CONS)
		fi;
#ifdef WAKE_FIRST
		wake_if_waiting(pset, pseq, pparked, true);
		head++
#else
		head++;                                 /* consume and release */
		wake_if_waiting(pset, pseq, pparked, true)
#endif
	od;
	assert(head == N && tail == N)
}

/* A second consumer that registers as a waiter and is killed while
 * registered, maybe after setting bit 0 (killed while parked): its lock
 * goes, its bit stays. */
active proctype Victim() {
	byte s;
	cset = cset | (1 << VICTIM);
	if :: arm(cseq) :: skip fi;
	lock[VICTIM] = false /* SIGKILL: the kernel drops the OFD lock */
}

/* A process that attaches the dead victim's entry (once its lock is
 * free), which clears the entry's bits under that lock, wakes the
 * consumers' line as a recovery does (without a sweep; a second publisher
 * on that line, whose CAS can beat the producer's), and detaches. */
active proctype Successor() {
	byte s, m, i;
	bool got;
	atomic { !lock[VICTIM] -> lock[VICTIM] = true };
	clear_waiters(VICTIM);
	lock[VICTIM] = false;
	wake_if_waiting(cset, cseq, cparked, false)
}
