/*
 * shmq_py.c - a tiny non-inline wrapper over shmq.h for ctypes (see
 * consume.py). Build: cc -std=c11 -O2 -shared -fPIC shmq_py.c -o libshmq_py.so
 */
#include "../shmq.h"

typedef struct shmq_py_consumer {
	shmq_segment seg;
	shmq_spsc_consumer c;
} shmq_py_consumer;

/* Opens the SPSC queue at loc (see shmq_open) and attaches its consumer.
 * Returns a handle, or NULL with *err set to a negative SHMQ_E* code. */
void *shmq_py_consumer_open(const char *loc, long long timeout_ms, int *err)
{
	shmq_py_consumer *h = calloc(1, sizeof *h);
	if (!h) {
		*err = SHMQ_ESYS;
		return NULL;
	}
	shmq_open_options opts = { timeout_ms * 1000000, 0 };
	if ((*err = shmq_open(loc, SHMQ_KIND_SPSC, &opts, &h->seg)) != 0) {
		free(h);
		return NULL;
	}
	if ((*err = shmq_spsc_consumer_open(&h->seg, &h->c)) != 0) {
		shmq_close(&h->seg);
		free(h);
		return NULL;
	}
	return h;
}

/* Largest payload the queue accepts: the buffer size recv needs. */
long long shmq_py_max_message(void *hv)
{
	return ((shmq_py_consumer *)hv)->seg.hdr.max_message;
}

/* Receives one message into buf, waiting up to timeout_ms (< 0: forever).
 * Returns its length, or a negative SHMQ_E* code. */
long long shmq_py_recv(void *hv, void *buf, size_t cap, long long timeout_ms)
{
	shmq_py_consumer *h = hv;
	size_t n;
	int err = shmq_spsc_recv(&h->c, buf, cap, &n, timeout_ms < 0 ? -1 : timeout_ms * 1000000);
	return err ? err : (long long)n;
}

/* Detaches, unmaps and frees the handle. */
void shmq_py_consumer_close(void *hv)
{
	shmq_py_consumer *h = hv;
	shmq_spsc_consumer_close(&h->c);
	shmq_close(&h->seg);
	free(h);
}

const char *shmq_py_strerror(int err)
{
	return shmq_strerror(err);
}
