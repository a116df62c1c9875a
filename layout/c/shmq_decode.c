/*
 * shmq_decode FILE...
 *
 * Validates the segment header image in each FILE with shmq_decode, as an
 * opener does after mapping a segment of the file's size, and prints one
 * line per file: "ok" or the error's name (shmq_strerror). The interop
 * tests (TestDecodeAgrees) feed it spoiled headers and compare its verdicts
 * with layout.Decode's.
 */
#include "../shmq.h"

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 1;
		}
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		rewind(f);
		/* page-aligned, like a mapping: the loads are atomic and aligned */
		size_t size = n > 0 ? (size_t)n : 1;
		unsigned char *mem = aligned_alloc(SHMQ_PAGE_SIZE, (size + SHMQ_PAGE_SIZE - 1) / SHMQ_PAGE_SIZE * SHMQ_PAGE_SIZE);
		if (!mem || fread(mem, 1, (size_t)n, f) != (size_t)n) {
			perror(argv[i]);
			return 1;
		}
		fclose(f);
		shmq_header h;
		int err = shmq_decode(mem, (uint64_t)n, &h);
		printf("%s\n", err == 0 ? "ok" : shmq_strerror(err));
		free(mem);
	}
	return 0;
}
