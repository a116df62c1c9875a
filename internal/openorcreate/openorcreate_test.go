package openorcreate

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/shmq/shmq/ring"
)

type fakeQueue struct{ closed bool }

func (q *fakeQueue) Close() error { q.closed = true; return nil }

// script answers create and open from lists of results, in order.
type script struct {
	creates, opens []error
	made           []*fakeQueue
}

func (s *script) next(errs *[]error) (*fakeQueue, error) {
	if len(*errs) == 0 {
		panic("script ran out")
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	if err != nil {
		return nil, err
	}
	q := &fakeQueue{}
	s.made = append(s.made, q)
	return q, nil
}

func (s *script) run(ctx context.Context, t *testing.T, accept bool, differs string) (*fakeQueue, error) {
	loc := ring.File(filepath.Join(t.TempDir(), "q"))
	return Do(ctx, loc, accept,
		func() (*fakeQueue, error) { return s.next(&s.creates) },
		func() (*fakeQueue, error) { return s.next(&s.opens) },
		func(*fakeQueue) string { return differs })
}

func TestDo(t *testing.T) {
	other := errors.New("other")
	for _, tc := range []struct {
		name           string
		creates, opens []error
		differs        string
		accept         bool
		want           error // nil: a queue
	}{
		{name: "created", creates: []error{nil}},
		{name: "opened", creates: []error{ring.ErrExists}, opens: []error{nil}},
		{name: "create fails", creates: []error{other}, want: other},
		{name: "open fails", creates: []error{ring.ErrExists}, opens: []error{ring.ErrPermission}, want: ring.ErrPermission},
		{name: "mismatch", creates: []error{ring.ErrExists}, opens: []error{nil}, differs: "capacity", want: ring.ErrMismatch},
		{name: "mismatch accepted", creates: []error{ring.ErrExists}, opens: []error{nil}, differs: "capacity", accept: true},
		{name: "removed before open", creates: []error{ring.ErrExists, nil}, opens: []error{ring.ErrNotFound}},
		{name: "abandoned", creates: []error{ring.ErrExists, nil}, opens: []error{ring.ErrAbandoned}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{creates: tc.creates, opens: tc.opens}
			q, err := s.run(context.Background(), t, tc.accept, tc.differs)
			if tc.want != nil {
				if q != nil || !errors.Is(err, tc.want) {
					t.Fatalf("got %v, %v; want %v", q, err, tc.want)
				}
				for _, m := range s.made {
					if !m.closed {
						t.Error("a refused queue was left open")
					}
				}
			} else if q == nil || err != nil || q.closed {
				t.Fatalf("got %v, %v; want an open queue", q, err)
			}
			if len(s.creates)+len(s.opens) != 0 {
				t.Errorf("steps left over: creates %v, opens %v", s.creates, s.opens)
			}
		})
	}
}

// TestDoEndsWithContext: a queue that keeps disappearing between create
// and open does not hold the caller past its context.
func TestDoEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &script{creates: []error{ring.ErrExists}, opens: []error{ring.ErrNotFound}}
	if _, err := s.run(ctx, t, false, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
