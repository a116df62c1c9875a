package main

// usageText is what shmq-demo help and -h print: the command-line contract.
const usageText = `Usage:
  shmq-demo [demo flags]
        Create an SPSC queue, start a consumer as a child process, stream
        checksummed messages to it and print messages/s and bytes/s; then
        measure ping-pong round-trip latency over two queues (p50, p99,
        p99.9, max); then create an MPMC queue, start producer and consumer
        processes on it, check that every message arrives exactly once and
        in each producer's order, and print messages/s; then create a
        pub/sub queue, start subscriber processes, publish to them, check
        that each receives every message once and in order, and print
        messages/s per subscriber. Exits 0 only if every check held. The
        queues live in /dev/shm as shmq-demo-PID, shmq-demo-PID-req,
        shmq-demo-PID-rsp, shmq-demo-PID-mpmc and shmq-demo-PID-fanout
        and are removed at the end, on error and on SIGINT/SIGTERM.
  shmq-demo produce -queue NAME -count N -size BYTES [-kind K] [-capacity C] [queue flags] [-timeout D]
        Open or create queue NAME and send N messages of BYTES bytes, each
        starting with its little-endian 64-bit sequence number 0, 1, 2, ...
        (if BYTES >= 8) followed by deterministic filler; with -kind mpmc
        the sequence number is followed by the 64-bit producer id, then
        filler derived from both (BYTES >= 16). Ends with the line
        messages=N bytes=B crc32c=HEX (CRC32-C over the payloads in order).
  shmq-demo consume -queue NAME -count N [-kind K] [-capacity C] [queue flags] [-first S] [-idle-exit D] [-timeout D]
        Open or create queue NAME and receive N messages (with -idle-exit,
        until none arrives for D; -count may then be omitted); print
        seq_first=A seq_last=B gaps=G, then messages=N bytes=B crc32c=HEX.
        Exits non-zero on a gap or a repeated sequence number. A consumer
        restarted after a crash with -first S (one past the last sequence
        number its predecessor reported) accepts the messages the dead one
        had not released, and reports them as redelivered=R. Removes the
        queue's name once all N arrived, unless -keep.
  shmq-demo consume -kind mpmc -queue NAME [-count N] [queue flags] [-done-wait D] [-idle-exit D] [-timeout D]
        Receive from an MPMC queue that any number of produce and consume
        -kind mpmc processes share; each message goes to one consumer.
        Stops after N messages if -count is given, or once the producers
        are done: no producer attached, at least one seen (attached since
        this consumer started, or through its messages), the queue empty,
        all of it for D (-done-wait, default 500ms, which covers a producer
        that starts shortly after another one ends). So two produce -count
        N and two consume -count N on one queue end with N messages each,
        and a consumer that gets fewer than -count (a third one, say)
        stops when the producers are done. Prints one line per producer,
        producer=ID messages=M seq_first=A seq_last=B gaps=G repeats=R,
        then producers=P gaps=G repeats=R, then messages=N bytes=B
        crc32c=HEX (CRC32-C over the payloads in the order received, which
        only this consumer saw). Gaps are expected, as other consumers take
        the messages in between; a repeat or a step back in a producer's
        numbers, or a wrong filler, is an error (exit 1). The last process,
        produce or consume, to leave the queue empty with no one attached
        removes its name, unless -keep.
  shmq-demo publish -queue NAME -count N -size BYTES [-lossy] [-capacity C] [-keep] [-timeout D]
        Open or create pub/sub queue NAME and publish N sequenced payloads
        of BYTES bytes (as produce -kind spsc writes them) to every
        subscriber, then close: the end of the stream. Ends with the line
        messages=N bytes=B crc32c=HEX. -lossy creates the queue lossy: the
        publisher never waits, and subscribers that fall a ring behind
        lose messages and are told how many; without it the publisher waits
        for the slowest live subscriber. An existing queue keeps its policy
        (-lossy on a back-pressure queue is an error).
  shmq-demo subscribe -queue NAME -count N [-history] [-lossy] [-capacity C] [-keep] [-timeout D]
        Open or create pub/sub queue NAME, attach a subscriber (at the
        newest message, or with -history at the oldest still in the ring),
        and receive until N messages arrived or were lost; print
        seq_first=A seq_last=B gaps=G (with lost=L on a lossy queue), then
        messages=N bytes=B crc32c=HEX. Subscribers started before a
        publisher print the publisher's line. Exits non-zero on a repeated
        number, on a gap that no reported loss explains, or if the stream
        ends first. The last process to leave removes the queue's name,
        unless -keep.
  shmq-demo inspect NAME
        Print a queue's kind, capacity, depth, cursors, creator and its
        registry of attached processes with their counters; for an MPMC
        queue also its mode, slot states (lock-free) or semaphores and
        mutexes (locked); for a pub/sub queue its policy, cursors and each
        subscriber's position, lag and losses. Needs read permission only.
        NAME may also be a file, as file:PATH or a path containing a slash
        (as for reap and rm).
  shmq-demo list
        List the queues in /dev/shm with their kind, state (ready,
        initializing, abandoned) and attached processes (alive or dead).
  shmq-demo reap NAME
        Free the registry entries of processes that died attached to NAME.
  shmq-demo rm NAME
        Remove queue NAME from /dev/shm; refuses files that are not shmq's.
  shmq-demo help
        Print this text.

Demo flags:
  -messages N        messages to stream (default 4000000)
  -size BYTES        payload bytes per message, at least 12 (default 64;
                     at least 16 in the MPMC phase)
  -capacity C        ring bytes of the stream queue, a power of two (default 1048576)
  -roundtrips N      timed ping-pong round trips (default 200000)
  -warmup N          untimed round trips before them (default 20000)
  -pingcap D         stop the ping-pong phase early after D (default 15s)
  -mpmc-messages N   messages of the MPMC phase, shared by the producers,
                     at most 100000000; 0 skips the phase (default 300000)
  -mpmc-producers P  producer processes (default 3)
  -mpmc-consumers C  consumer processes (default 3)
  -mpmc-slots S      slots of the MPMC queue, a power of two (default 1024)
  -mpmc-locked       run the MPMC queue in locked mode
  -fanout-messages N    messages of the fan-out phase; 0 skips it (default 300000)
  -fanout-subscribers S subscriber processes (default 3, at most 16)
  -timeout D         give up on the whole run after D (default 55s)

Produce and consume flags:
  -queue NAME       shm name: 1 to 30 characters from [A-Za-z0-9._-]
  -count N          number of messages (consume -kind mpmc: at most)
  -size BYTES       payload bytes per message (produce)
  -kind K           queue kind: spsc (default) or mpmc
  -capacity C       if this command creates the queue: ring bytes (spsc,
                    default 1048576) or slots (mpmc, default 1024)
  -keep             leave the queue's name in place (consume; produce -kind mpmc)
  -timeout D        give up after D (default: wait forever)
  -first S          consume -kind spsc: expected first sequence number (default 0)
  -idle-exit D      consume: stop after D without a message
  -done-wait D      consume -kind mpmc: how long the producers must look
                    done before it stops (default 500ms; 0: never, -count
                    or -idle-exit only)
  -producer-id ID   produce -kind mpmc: the id in every payload (default: the pid)

Queue flags (-kind mpmc, if this command creates the queue):
  -max-message B    largest payload a slot holds (default: the larger of
                    -size and 240, so that whoever starts first makes the
                    same queue)
  -locked           create the queue in locked mode (semaphores and robust
                    mutexes instead of the lock-free ring)
`
