/*
 * shmq_subscribe LOCATION COUNT SIZE|MIN-MAX next|latest|oldest
 * shmq_subscribe --constants
 *
 * Subscribes to an existing pub/sub queue (layout/shmq_pubsub.h) and
 * receives until COUNT messages arrived or were lost, or the stream ended,
 * alternating the copying recv with peek/release batches. Every message
 * must follow payload.h's convention with its sequence number in the queue
 * as its number: the right length for that number (SIZE or MIN-MAX, as in
 * payload.h), the number in its first 8 bytes, the filler after. A lossy
 * queue's losses are counted, and the number of the next message checked
 * against them. Prints "messages=N bytes=B crc32c=HEX" (CRC32-C of the
 * payloads in order), then "lost=L first=F next=S ended=E". With
 * SHMQ_SLOW set it sleeps 1 ms every 256 messages. Exits 1 with a message
 * on stderr on any error (a torn or corrupt message included).
 *
 * --constants prints the header's constants as NAME=VALUE lines for
 * interop/pubsub_test.go to compare with the Go layout package.
 */
#include "../shmq_pubsub.h"

#include <stdlib.h>

static uint32_t crc32c(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != 0)
		return -1;
	*v = x;
	return 0;
}

static uint64_t lo, hi; /* message seq has lo + seq*7919 % (hi-lo+1) bytes */

static size_t size_for(uint64_t seq) { return (size_t)(lo + (seq * 7919) % (hi - lo + 1)); }

static void die(const char *what, int err)
{
	if (err == SHMQ_PS_ESYS)
		fprintf(stderr, "%s: %s: %s\n", what, shmq_ps_strerror(err), strerror(errno));
	else
		fprintf(stderr, "%s: %s\n", what, shmq_ps_strerror(err));
	exit(1);
}

static void check(const unsigned char *m, size_t n, uint64_t seq)
{
	if (n != size_for(seq)) {
		fprintf(stderr, "message %llu: %zu bytes, want %zu\n", (unsigned long long)seq, n, size_for(seq));
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char want = i < 8 ? (unsigned char)(seq >> (8 * i)) : (unsigned char)((unsigned char)seq ^ (unsigned char)(i * 7));
		if (m[i] != want) {
			fprintf(stderr, "message %llu: byte %zu is %#x, want %#x (torn, lost, reordered or corrupted)\n",
				(unsigned long long)seq, i, m[i], want);
			exit(1);
		}
	}
}

static void constants(void)
{
#define P(name, v) printf("%s=%llu\n", name, (unsigned long long)(v))
	P("Magic", SHMQ_PS_MAGIC);
	P("Version", SHMQ_PS_VERSION);
	P("KindPubSub", SHMQ_PS_KIND);
	P("FlagLossy", SHMQ_PS_FLAG_LOSSY);
	P("LineSize", SHMQ_PS_LINE_SIZE);
	P("StateReady", SHMQ_PS_STATE_READY);
	P("OffTabWaiters", SHMQ_PS_OFF_TAB_WAITERS);
	P("OffTabWaiterSets", SHMQ_PS_OFF_TAB_WAITER_SETS);
	P("PubSubWaiterSets", SHMQ_PS_WAITER_SETS);
	P("WaiterSetProducers", SHMQ_PS_WAITER_SET_PRODUCERS);
	P("WaiterSetConsumers", SHMQ_PS_WAITER_SET_CONSUMERS);
	P("EntryState", SHMQ_PS_ENTRY_STATE);
	P("EntryPID", SHMQ_PS_ENTRY_PID);
	P("EntryMessages", SHMQ_PS_ENTRY_MESSAGES);
	P("EntryWakes", SHMQ_PS_ENTRY_WAKES);
	P("EntrySubPosition", SHMQ_PS_ENTRY_SUB_POSITION);
	P("EntrySubSeq", SHMQ_PS_ENTRY_SUB_SEQ);
	P("EntrySubLost", SHMQ_PS_ENTRY_SUB_LOST);
	P("PubTail", SHMQ_PS_PUB_TAIL);
	P("PubIntent", SHMQ_PS_PUB_INTENT);
	P("PubOldest", SHMQ_PS_PUB_OLDEST);
	P("PubLimit", SHMQ_PS_PUB_LIMIT);
	P("PubWaitFor", SHMQ_PS_PUB_WAIT_FOR);
	P("PubSubRecordHeaderSize", SHMQ_PS_RECORD_HEADER_SIZE);
	P("PubSubRecordAlign", SHMQ_PS_RECORD_ALIGN);
	P("PubSubRecordSeq", SHMQ_PS_RECORD_SEQ);
	P("TypePadding", SHMQ_PS_TYPE_PADDING);
	P("MinPubSubCapacity", SHMQ_PS_MIN_CAPACITY);
	P("MaxPubSubCapacity", SHMQ_PS_MAX_CAPACITY);
	P("PubSubFirstSubscriber", SHMQ_PS_FIRST_SUBSCRIBER);
#undef P
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--constants") == 0) {
		constants();
		return 0;
	}
	uint64_t count;
	int from = -1;
	if (argc == 5) {
		from = strcmp(argv[4], "next") == 0 ? SHMQ_PS_FROM_NEXT : strcmp(argv[4], "latest") == 0 ? SHMQ_PS_FROM_LATEST
			: strcmp(argv[4], "oldest") == 0 ? SHMQ_PS_FROM_OLDEST : -1;
		char *dash = strchr(argv[3], '-');
		if (dash) {
			*dash = 0;
			if (parse_u64(argv[3], &lo) || parse_u64(dash + 1, &hi))
				from = -1;
		} else if (parse_u64(argv[3], &lo) == 0) {
			hi = lo;
		} else {
			from = -1;
		}
	}
	if (from < 0 || parse_u64(argv[2], &count) || lo == 0 || hi < lo) {
		fprintf(stderr, "usage: %s LOCATION COUNT SIZE|MIN-MAX next|latest|oldest\n", argv[0]);
		return 2;
	}
	uint64_t ms = 30000;
	const char *t = getenv("SHMQ_TIMEOUT_MS");
	if (t && parse_u64(t, &ms) != 0)
		ms = 30000;
	int64_t timeout = (int64_t)ms * 1000000;
	int slow = getenv("SHMQ_SLOW") != NULL;

	shmq_ps_segment seg;
	int err = shmq_ps_open(argv[1], timeout, &seg);
	if (err)
		die("open", err);
	shmq_ps_subscriber sub;
	if ((err = shmq_ps_subscribe(&seg, from, &sub)))
		die("subscribe", err);
	fprintf(stderr, "subscribed\n");
	uint64_t first = sub.seq;
	size_t cap = seg.h.max_message;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return 1;
	uint32_t crc = 0;
	uint64_t got = 0, bytes = 0;
	int ended = 0;
	while (got + sub.lost < count && !ended) {
		if (slow && got % 256 == 255)
			shmq_ps__sleep(1000000);
		size_t n;
		uint64_t seq, want = sub.seq;
		if ((got / 64) % 2 == 0) {
			err = shmq_ps_recv(&sub, buf, cap, &n, &seq, timeout);
			if (err == SHMQ_PS_ELOST) {
				if (sub.seq != want + sub.last_lost) {
					fprintf(stderr, "lost %llu after %llu, resumes at %llu\n", (unsigned long long)sub.last_lost,
						(unsigned long long)want, (unsigned long long)sub.seq);
					return 1;
				}
				continue;
			}
			if (err == SHMQ_PS_EOF) {
				ended = 1;
				continue;
			}
			if (err)
				die("recv", err);
			check(buf, n, seq);
			crc = crc32c(crc, buf, n);
			bytes += n;
			got++;
			continue;
		}
		/* Peek up to 16 messages in place, check them, and keep them only
		 * if the release confirms that none was overwritten meanwhile. */
		uint64_t bgot = 0, bbytes = 0, head = sub.seq;
		uint32_t bcrc = crc;
		while (got + bgot + sub.lost < count && bgot < 16) {
			const void *m;
			err = shmq_ps_peek(&sub, &m, &n, &seq);
			if (err == SHMQ_PS_EEMPTY || err == SHMQ_PS_ELOST)
				break;
			if (err)
				die("peek", err);
			if (sub.lossy) {
				/* A lossy view may change under us: check a copy, and only
				 * after the release has confirmed it. */
				memcpy(buf, m, n);
				m = buf;
			}
			if (!sub.lossy)
				check(m, n, seq);
			bcrc = crc32c(bcrc, m, n);
			bbytes += n;
			bgot++;
			if (sub.lossy)
				break; /* one view at a time, so the copy in buf is the one checked */
		}
		if (err == SHMQ_PS_ELOST)
			continue;
		err = shmq_ps_release(&sub);
		if (err == SHMQ_PS_ELOST) {
			if (sub.seq != head + sub.last_lost) {
				fprintf(stderr, "lost %llu of a peeked batch from %llu, resumes at %llu\n", (unsigned long long)sub.last_lost,
					(unsigned long long)head, (unsigned long long)sub.seq);
				return 1;
			}
			continue; /* the views were overwritten: they count as lost */
		}
		if (err)
			die("release", err);
		if (sub.lossy && bgot == 1)
			check(buf, n, seq);
		crc = bcrc;
		bytes += bbytes;
		got += bgot;
		if (bgot == 0) {
			err = shmq_ps_wait_data(&sub, timeout);
			if (err == SHMQ_PS_EOF)
				ended = 1;
			else if (err)
				die("wait for data", err);
		}
	}
	printf("messages=%llu bytes=%llu crc32c=%08x\n", (unsigned long long)got, (unsigned long long)bytes, crc);
	printf("lost=%llu first=%llu next=%llu ended=%d\n", (unsigned long long)sub.lost, (unsigned long long)first,
	       (unsigned long long)sub.seq, ended);
	fflush(stdout);
	free(buf);
	if ((err = shmq_ps_unsubscribe(&sub)))
		die("unsubscribe", err);
	shmq_ps_close(&seg);
	return 0;
}
