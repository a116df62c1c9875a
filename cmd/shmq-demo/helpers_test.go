//go:build unix

package main

import "github.com/shmq/shmq/cmd/shmq-demo/internal/payload"

// The command tests write payloads straight into queues with these.

func putMessage(b []byte, seq uint64) { payload.Put(b, seq) }

func putMPMCMessage(b []byte, id, seq uint64) { payload.PutProducer(b, id, seq) }
