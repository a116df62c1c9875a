package sem

import (
	"testing"

	"github.com/shmq/shmq/notify"
)

func addOSBackends(m map[string]func(t *testing.T) notify.Backend) {
	m["eventfd"] = func(t *testing.T) notify.Backend {
		e, err := notify.NewEventfd()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
}
