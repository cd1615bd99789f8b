package edge

import (
	"context"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// upstreamPool spreads calls over several connections to authsvc,
// round-robin. authsvc's workers share one port (SO_REUSEPORT), and the
// kernel hands each *connection* to one worker: over a single connection
// every call lands on the same worker while the others idle. Each
// connection is its own grpc.ClientConn and reconnects on its own; a call
// goes to the next READY connection in turn, skipping (and waking up) the
// others, so a worker that is gone costs no failed calls while another
// worker answers.
type upstreamPool struct {
	conns []*grpc.ClientConn
	next  atomic.Uint64
}

var _ grpc.ClientConnInterface = (*upstreamPool)(nil)

// dialPool makes n connections with dial (lazily, as dialUpstream does).
func dialPool(n int, dial func() (*grpc.ClientConn, error)) (*upstreamPool, error) {
	if n < 1 {
		return nil, errors.New("at least one upstream connection")
	}
	p := &upstreamPool{}
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

// pick is the next READY connection in turn; when none is, the next in
// turn whatever its state (the call then waits for it, or fails, as over a
// single connection). An IDLE connection passed over is told to connect.
func (p *upstreamPool) pick() *grpc.ClientConn {
	start := p.next.Add(1) - 1
	n := uint64(len(p.conns))
	for i := range n {
		conn := p.conns[(start+i)%n]
		switch conn.GetState() {
		case connectivity.Ready:
			if i > 0 {
				p.next.Add(i) // keep the turn moving past the skipped ones
			}
			return conn
		case connectivity.Idle:
			conn.Connect()
		}
	}
	return p.conns[start%n]
}

func (p *upstreamPool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return p.pick().Invoke(ctx, method, args, reply, opts...)
}

func (p *upstreamPool) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return p.pick().NewStream(ctx, desc, method, opts...)
}

// Close closes every connection.
func (p *upstreamPool) Close() error {
	var errs []error
	for _, conn := range p.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}
