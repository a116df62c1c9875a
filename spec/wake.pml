/*
 * The wake protocol of shmq's blocking calls (notify/line.go,
 * notify/waiterset.go, spsc/wait.go, mpmc/wait.go; LAYOUT.md section 6),
 * for a bounded queue whose producer and consumer both block, with waiter
 * sets (layout version 2).
 *
 * A waiting side registers by setting its registry entry's bit in its
 * line's waiter set, reads the wake word, re-checks the queue, and parks
 * on the word only if the word still holds the value it read (a futex
 * wait); it clears its bit when it leaves. A publishing side updates its
 * cursor, then reads the other side's waiter set and, only if it is not
 * empty, bumps the wake word and wakes (as many as are registered: here,
 * every sleeper). Every step on shared words is sequentially consistent
 * (Go's sync/atomic; C11 seq_cst with fences in shmq.h), which Promela's
 * interleaving semantics models.
 *
 * Dead waiters. A third registry entry's holder (the victim) registers in
 * the consumers' set and dies there: the kernel drops its liveness lock,
 * its bit stays. Bits are written only by a holder of the entry's lock:
 * the holder itself; a publisher that keeps finding waiters and sweeps the
 * set (Segment.ReapWaiter: take the lock of a registered entry if it is
 * free, clear the entry's bits in every set, unlock); and a process that
 * attaches the dead entry (ring.Attach clears its bits under the lock it
 * just took), modeled by the successor.
 *
 * Property: no live side stays parked while it has something to do. Spin
 * checks it as the absence of invalid end states (a process blocked
 * forever) plus the final assertion. Three mutants must fail, which CI
 * checks too: -DLOST_WAKEUP drops the re-check after registering,
 * -DWAKE_FIRST has the publisher look for waiters before it publishes, and
 * -DSWEEP_NOLOCK has the sweeper clear registered bits without taking the
 * entry's lock, so it can clear a live waiter's fresh registration.
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
	od
}

/* A publisher's wake: if any entry is registered, bump the word and wake
 * the sleepers; then, now and then (nondeterministically here, once per
 * 100 ms in the code), sweep the set for dead registrants. */
inline wake_if_waiting(set, word, parked) {
	if
	:: set != 0 ->
		word++; parked = false;
		if :: sweep(set) :: skip fi
	:: else -> skip
	fi
}

/* Wait until cond holds, using the protocol. */
#ifdef LOST_WAKEUP
#define RECHECK(cond) false
#else
#define RECHECK(cond) (cond)
#endif

active proctype Producer() {
	byte s, m, i;
	bool got;
	do
	:: tail == N -> break
	:: else ->
		if
		:: tail - head < CAP -> skip
		:: else ->
			pset = pset | (1 << PROD); /* register (atomic OR) */
			do
			:: s = pseq;
			   if
			   :: RECHECK(tail - head < CAP) -> break
			   :: else -> futex_wait(pseq, s, pparked);
			      if :: tail - head < CAP -> break :: else -> skip fi
			   fi
			od;
			pset = pset & ~(1 << PROD) /* unregister (atomic AND-NOT) */
		fi;
#ifdef WAKE_FIRST
		wake_if_waiting(cset, cseq, cparked);
		tail++
#else
		tail++;                                 /* publish */
		wake_if_waiting(cset, cseq, cparked)    /* then look for waiters */
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
		:: else ->
			cset = cset | (1 << CONS);
			do
			:: s = cseq;
			   if
			   :: RECHECK(tail != head) -> break
			   :: else -> futex_wait(cseq, s, cparked);
			      if :: tail != head -> break :: else -> skip fi
			   fi
			od;
			cset = cset & ~(1 << CONS)
		fi;
#ifdef WAKE_FIRST
		wake_if_waiting(pset, pseq, pparked);
		head++
#else
		head++;                                 /* consume and release */
		wake_if_waiting(pset, pseq, pparked)
#endif
	od;
	assert(head == N && tail == N)
}

/* A second consumer that registers as a waiter and is killed while
 * registered: its lock goes, its bit stays. */
active proctype Victim() {
	cset = cset | (1 << VICTIM);
	lock[VICTIM] = false /* SIGKILL: the kernel drops the OFD lock */
}

/* A process that attaches the dead victim's entry (once its lock is
 * free), which clears the entry's bits under that lock, and detaches. */
active proctype Successor() {
	atomic { !lock[VICTIM] -> lock[VICTIM] = true };
	clear_waiters(VICTIM);
	lock[VICTIM] = false
}
