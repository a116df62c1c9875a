package layout_test

import (
	"fmt"

	"github.com/shmq/shmq/layout"
)

// The offsets of every region of a segment come from its header's offset
// table; PlanSPSC computes those a creator writes.
func ExamplePlanSPSC() {
	h, err := layout.PlanSPSC(65536, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("total", h.TotalSize, "max message", h.MaxMessage)
	fmt.Println("producer line", h.Producer, "consumer line", h.Consumer)
	fmt.Println("waiter sets at", h.Waiters, "registry at", h.Registry, "data at", h.Data)
	// Output:
	// total 69632 max message 32760
	// producer line 256 consumer line 384
	// waiter sets at 768 registry at 1024 data at 4096
}
