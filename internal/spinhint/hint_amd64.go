package spinhint

// PerMicrosecond is about how many checks of a polled word, each followed
// by Pause, take a microsecond: PAUSE takes about 20 ns on the AMD EPYC
// cores measured and about 40 ns on Intel cores since Skylake, so this
// is between half a microsecond and one.
const PerMicrosecond = 48
