// Command go-whoami is a Go service protected by authsvc: GET /whoami
// answers the caller's user id, read from the verified token; GET /admin
// also needs the scope example.admin. Tokens are checked in-process by
// gateway/verify, which follows authsvc's revocations as the service's own
// account (a TokenSource: it signs in, refreshes, and signs in again after
// its session is revoked; the password stays in memory for that).
//
// Run it next to scripts/serve, as an account allowed to follow
// authsvc's revocations:
//
//	echo 'a long service password' | .venv/bin/authsvc users add \
//	    --email whoami@example.com --scope authsvc.revocations --password-stdin
//	cd examples/go-whoami && WHOAMI_EMAIL=whoami@example.com \
//	    WHOAMI_PASSWORD='a long service password' go run . 127.0.0.1:50051 127.0.0.1:8090
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authsvc/authsvc/gateway/verify"
)

func whoami(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, verify.ClaimsFrom(r.Context()).UserID) // the verified caller
}

func main() {
	authsvc, listen := os.Args[1], os.Args[2]
	password := os.Getenv("WHOAMI_PASSWORD")
	os.Unsetenv("WHOAMI_PASSWORD")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// README: begin
	conn, err := grpc.NewClient(authsvc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	// the service's own account, granted scope authsvc.revocations (it may follow the feed)
	account, err := verify.NewTokenSource(conn, verify.Email(os.Getenv("WHOAMI_EMAIL")), password,
		verify.TokenSourceOptions{})
	if err != nil {
		log.Fatal(err)
	}
	v, err := verify.New(conn, verify.Options{Account: account})
	if err != nil {
		log.Fatal(err)
	}
	if err := v.Start(ctx); err != nil { // signs in, waits for the first keys and revocations
		log.Fatal(err)
	}
	defer v.Close()

	http.Handle("/whoami", v.Middleware(http.HandlerFunc(whoami)))
	http.Handle("/admin", v.Middleware(http.HandlerFunc(whoami), "example.admin"))
	// README: end

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("whoami listening on http://%s, verifying tokens of %s", ln.Addr(), authsvc)
	log.Fatal(http.Serve(ln, nil))
}
