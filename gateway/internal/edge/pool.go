package edge

import (
	"context"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// upstreamPool spreads calls over several connections to authsvc.
// authsvc's workers share one port (SO_REUSEPORT), and the kernel hands each
// *connection* to one worker: over a single connection every call lands on
// the same worker while the others idle, and several connections are rarely
// split evenly. So a unary call goes to the READY connection with the fewest
// calls in flight, ties in turn: a worker that answers more slowly (it got
// more connections, or slower calls) has more calls waiting on its
// connections and is given fewer new ones. Streams (the revocation feed) go
// to the next READY connection in turn. Each connection is its own
// grpc.ClientConn and reconnects on its own; one that is not READY is
// skipped (and woken up when IDLE), so a worker that is gone costs no failed
// calls while another worker answers.
type upstreamPool struct {
	conns    []*grpc.ClientConn
	inFlight []atomic.Int64 // unary calls in flight, per connection
	next     atomic.Uint64
}

var _ grpc.ClientConnInterface = (*upstreamPool)(nil)

// dialPool makes n connections with dial (lazily, as dialUpstream does).
func dialPool(n int, dial func() (*grpc.ClientConn, error)) (*upstreamPool, error) {
	if n < 1 {
		return nil, errors.New("at least one upstream connection")
	}
	p := &upstreamPool{inFlight: make([]atomic.Int64, n)}
	for range n {
		conn, err := dial()
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		conn.Connect() // all of them now, or only the first would ever be READY
		p.conns = append(p.conns, conn)
	}
	return p, nil
}

// pick is the index of the READY connection with the fewest calls in flight,
// looking from the next in turn (so that equals take turns); when none is
// READY, the next in turn whatever its state (the call then waits for it, or
// fails, as over a single connection). An IDLE connection passed over is
// told to connect.
func (p *upstreamPool) pick() int {
	start := p.next.Add(1) - 1
	n := uint64(len(p.conns))
	best, fewest := -1, int64(0)
	for i := range n {
		k := int((start + i) % n)
		switch p.conns[k].GetState() {
		case connectivity.Ready:
			if waiting := p.inFlight[k].Load(); best < 0 || waiting < fewest {
				best, fewest = k, waiting
			}
		case connectivity.Idle:
			p.conns[k].Connect()
		}
	}
	if best < 0 {
		return int(start % n)
	}
	return best
}

func (p *upstreamPool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	k := p.pick()
	p.inFlight[k].Add(1)
	defer p.inFlight[k].Add(-1)
	return p.conns[k].Invoke(ctx, method, args, reply, opts...)
}

func (p *upstreamPool) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return p.conns[p.pick()].NewStream(ctx, desc, method, opts...)
}

// Close closes every connection.
func (p *upstreamPool) Close() error {
	var errs []error
	for _, conn := range p.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}
