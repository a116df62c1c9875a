//go:build amd64 && !race

#include "textflag.h"

// func Store(w *atomic.Uint64, v uint64)
//
// An aligned 8-byte MOV is atomic and, under x86-TSO, ordered after every
// earlier store; the locked OR of zero into the return address (a line only
// this thread uses) drains the store buffer, so no later load passes it.
TEXT ·Store(SB), NOSPLIT, $0-16
	MOVQ	w+0(FP), AX
	MOVQ	v+8(FP), BX
	MOVQ	BX, (AX)
	LOCK
	ORQ	$0, (SP)
	RET
