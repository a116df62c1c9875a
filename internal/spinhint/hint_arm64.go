package spinhint

// PerMicrosecond is about how many checks of a polled word, each followed
// by Pause, take a microsecond: YIELD costs next to nothing on most cores,
// so a check costs what it would without it.
const PerMicrosecond = 512
