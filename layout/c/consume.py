#!/usr/bin/env python3
"""Consume an shmq SPSC queue from Python through ctypes.

Usage: consume.py LIBRARY LOCATION COUNT SIZE

LIBRARY is libshmq_py.so built from shmq_py.c:

    cc -std=c11 -O2 -shared -fPIC layout/c/shmq_py.c -o libshmq_py.so

LOCATION is an shm NAME, shm:NAME, file:PATH or fd:N. The script receives
COUNT messages, checks each against the test payload convention (payload.h:
little-endian u64 sequence number, then byte(seq) ^ byte(i*7); SIZE is N or
MIN-MAX) and prints "messages=N bytes=B crc32c=HEX".
"""

import ctypes
import struct
import sys


def crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(crc, data):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def size_for(lo, hi, seq):
    return lo + (seq * 7919) % (hi - lo + 1)


def expected(seq, n):
    head = struct.pack("<Q", seq & 0xFFFFFFFFFFFFFFFF)[:n]
    tail = bytes(((seq & 0xFF) ^ ((i * 7) & 0xFF)) for i in range(8, n))
    return head + tail


def main(argv):
    if len(argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    lib = ctypes.CDLL(argv[1])
    lib.shmq_py_consumer_open.restype = ctypes.c_void_p
    lib.shmq_py_consumer_open.argtypes = [ctypes.c_char_p, ctypes.c_longlong, ctypes.POINTER(ctypes.c_int)]
    lib.shmq_py_max_message.restype = ctypes.c_longlong
    lib.shmq_py_max_message.argtypes = [ctypes.c_void_p]
    lib.shmq_py_recv.restype = ctypes.c_longlong
    lib.shmq_py_recv.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_longlong]
    lib.shmq_py_consumer_close.restype = None
    lib.shmq_py_consumer_close.argtypes = [ctypes.c_void_p]
    lib.shmq_py_strerror.restype = ctypes.c_char_p
    lib.shmq_py_strerror.argtypes = [ctypes.c_int]

    loc, count = argv[2].encode(), int(argv[3])
    lo, _, hi = argv[4].partition("-")
    lo = int(lo)
    hi = int(hi) if hi else lo

    err = ctypes.c_int(0)
    h = lib.shmq_py_consumer_open(loc, 30000, ctypes.byref(err))
    if not h:
        sys.stderr.write("open: %s\n" % lib.shmq_py_strerror(err.value).decode())
        return 1
    try:
        cap = lib.shmq_py_max_message(h)
        buf = ctypes.create_string_buffer(cap)
        crc, total = 0, 0
        for seq in range(count):
            n = lib.shmq_py_recv(h, buf, cap, 30000)
            if n < 0:
                sys.stderr.write("recv: %s\n" % lib.shmq_py_strerror(n).decode())
                return 1
            msg = buf.raw[:n]
            want = size_for(lo, hi, seq)
            if n != want or msg != expected(seq, n):
                sys.stderr.write("message %d: %d bytes, want %d, or wrong content\n" % (seq, n, want))
                return 1
            crc = crc32c(crc, msg)
            total += n
        print("messages=%d bytes=%d crc32c=%08x" % (count, total, crc))
        return 0
    finally:
        lib.shmq_py_consumer_close(h)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
