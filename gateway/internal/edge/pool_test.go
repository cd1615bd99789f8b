package edge

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// countingHealth answers Check and counts the calls it answered.
type countingHealth struct {
	healthpb.UnimplementedHealthServer
	mu    sync.Mutex
	calls int
}

func (c *countingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func serveCounting(t *testing.T) (*countingHealth, string, *grpc.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	h := &countingHealth{}
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return h, ln.Addr().String(), srv
}

func TestThePoolTakesTurnsAndSkipsAConnectionWhoseServerIsGone(t *testing.T) {
	servers := make([]*countingHealth, 3)
	addrs := make([]string, 3)
	var gone *grpc.Server
	for i := range servers {
		servers[i], addrs[i], gone = serveCounting(t)
	}
	i := 0
	pool, err := dialPool(3, func() (*grpc.ClientConn, error) {
		defer func() { i++ }()
		return grpc.NewClient(addrs[i], grpc.WithTransportCredentials(insecure.NewCredentials()))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	client := healthpb.NewHealthClient(pool)
	for _, conn := range pool.conns {
		for conn.GetState() != connectivity.Ready {
			conn.WaitForStateChange(context.Background(), conn.GetState())
		}
	}

	for range 30 {
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	even := fmt.Sprint(servers[0].calls, servers[1].calls, servers[2].calls)
	gone.Stop() // the third server's worker dies: its connection fails
	for pool.conns[2].GetState() == connectivity.Ready {
		pool.conns[2].WaitForStateChange(context.Background(), connectivity.Ready)
	}
	var failed int
	for range 30 {
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			failed++
		}
	}

	if even != "10 10 10" {
		t.Errorf("calls per server %s, want 10 10 10", even)
	}
	if failed != 0 || servers[0].calls+servers[1].calls != 50 {
		t.Errorf("%d failed; the living servers answered %d and %d", failed, servers[0].calls, servers[1].calls)
	}
}

// heldHealth answers Check only once released, and says when a call came.
type heldHealth struct {
	healthpb.UnimplementedHealthServer
	arrived chan struct{}
	release chan struct{}
}

func (h *heldHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.arrived <- struct{}{}
	<-h.release
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func TestACallGoesToTheConnectionWithTheFewestCallsInFlight(t *testing.T) {
	// The first connection's worker holds its calls; the second answers at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := &heldHealth{arrived: make(chan struct{}, 10), release: make(chan struct{})}
	slow := grpc.NewServer()
	healthpb.RegisterHealthServer(slow, held)
	go func() { _ = slow.Serve(ln) }()
	t.Cleanup(slow.Stop)
	quick, quickAddr, _ := serveCounting(t)
	addrs := []string{ln.Addr().String(), quickAddr}
	i := 0
	pool, err := dialPool(2, func() (*grpc.ClientConn, error) {
		defer func() { i++ }()
		return grpc.NewClient(addrs[i], grpc.WithTransportCredentials(insecure.NewCredentials()))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, conn := range pool.conns {
		for conn.GetState() != connectivity.Ready {
			conn.WaitForStateChange(context.Background(), conn.GetState())
		}
	}
	client := healthpb.NewHealthClient(pool)
	done := make(chan error, 1)
	go func() { // the first call, in turn, to the holding worker
		_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		done <- err
	}()
	<-held.arrived

	for range 6 { // turns alternate, but the first connection has a call in flight
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	close(held.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if quick.calls != 6 || len(held.arrived) != 0 {
		t.Errorf("the quick worker answered %d of 6; %d more went to the held one",
			quick.calls, len(held.arrived))
	}
}

func TestAPoolNeedsAConnection(t *testing.T) {
	if _, err := dialPool(0, nil); err == nil {
		t.Error("a pool of none")
	}
}
