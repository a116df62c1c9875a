/*
 * The waiter protocol of shmq's blocking calls (spsc/wait.go, mpmc/wait.go),
 * for a bounded queue whose producer and consumer both block.
 *
 * A waiting side registers (waiters++), reads the wake word, re-checks the
 * queue, and parks on the word only if the word still holds the value it
 * read (a futex wait). A publishing side updates its cursor, then reads the
 * other side's waiter count and, only if it is non-zero, bumps the wake
 * word and wakes. Every step on shared words is sequentially consistent
 * (Go's sync/atomic), which Promela's interleaving semantics models.
 *
 * Property: no side stays parked while it has something to do. Spin checks
 * it as the absence of invalid end states (a process blocked forever) plus
 * the final assertions. Two mutants must fail, which CI checks too:
 * -DLOST_WAKEUP drops the re-check after registering, and
 * -DWAKE_FIRST has the publisher look for waiters before it publishes.
 */

#ifndef CAP
#define CAP 1
#endif
#ifndef N
#define N 4
#endif

byte head = 0;            /* consumer cursor */
byte tail = 0;            /* producer cursor */

/* Wake lines: futex word, registered waiters, and the parked flag that
 * stands for "a thread sleeps in FUTEX_WAIT on this word". */
byte pseq = 0; byte pwaiters = 0; bool pparked = false;   /* producer waits for space */
byte cseq = 0; byte cwaiters = 0; bool cparked = false;   /* consumer waits for data */

/* futex_wait(word, old): sleep only if word == old, atomically with the
 * check, until a wake clears the flag. */
inline futex_wait(word, old, parked) {
	atomic { if :: word == old -> parked = true :: else -> skip fi };
	(!parked)
}

/* A publisher's wake: bump the word, then wake any sleeper on it. */
inline wake_if_waiting(waiters, word, parked) {
	if
	:: waiters > 0 -> word++; parked = false
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
	byte s;
	do
	:: tail == N -> break
	:: else ->
		if
		:: tail - head < CAP -> skip
		:: else ->
			pwaiters++;
			do
			:: s = pseq;
			   if
			   :: RECHECK(tail - head < CAP) -> break
			   :: else -> futex_wait(pseq, s, pparked);
			      if :: tail - head < CAP -> break :: else -> skip fi
			   fi
			od;
			pwaiters--
		fi;
#ifdef WAKE_FIRST
		wake_if_waiting(cwaiters, cseq, cparked);
		tail++
#else
		tail++;                                    /* publish */
		wake_if_waiting(cwaiters, cseq, cparked)   /* then look for a waiter */
#endif
	od
}

active proctype Consumer() {
	byte s;
	do
	:: head == N -> break
	:: else ->
		if
		:: tail != head -> skip
		:: else ->
			cwaiters++;
			do
			:: s = cseq;
			   if
			   :: RECHECK(tail != head) -> break
			   :: else -> futex_wait(cseq, s, cparked);
			      if :: tail != head -> break :: else -> skip fi
			   fi
			od;
			cwaiters--
		fi;
#ifdef WAKE_FIRST
		wake_if_waiting(pwaiters, pseq, pparked);
		head++
#else
		head++;                                    /* consume and release */
		wake_if_waiting(pwaiters, pseq, pparked)
#endif
	od;
	assert(head == N && tail == N)
}
