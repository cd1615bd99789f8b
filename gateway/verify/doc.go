// Package verify checks authsvc access tokens inside a Go service, as
// authsvc's Validate and the Python LocalVerifier do, and refuses a revoked
// session's tokens within a second by following WatchRevocations.
//
//	conn, _ := grpc.NewClient("authsvc:50051", grpc.WithTransportCredentials(creds))
//	v, _ := verify.New(conn, verify.Options{AccessToken: serviceToken})
//	if err := v.Start(ctx); err != nil { ... }   // first keys and revocations
//	defer v.Close()
//	srv := grpc.NewServer(
//		grpc.UnaryInterceptor(v.UnaryServerInterceptor(verify.Policy{})),
//		grpc.StreamInterceptor(v.StreamServerInterceptor(verify.Policy{})))
//	http.Handle("/api/", v.Middleware(api, "orders.read"))
//
// The rules are authsvc.core.tokens.verify's, check for check: only the
// configured algorithms and only the algorithm of the key the kid names in
// authsvc's published key set (alg from the token is never trusted;
// jku/x5u/jwk/x5c are ignored and crit refused); typ at+jwt; iss and aud
// exactly equal; exp, iat, nbf, iss, aud, sub, jti and sid required and
// type-checked; time claims against Options.Now within the leeway; no token
// living longer than MaxTokenLifetime. Base64url is decoded strictly
// (no padding, no stray characters), where Python's decoder skips them:
// a token re-encoded that way is refused here. The shared attack-token
// corpus (tests/attacks) checks that both give every token the same answer.
//
// Keys come from GetJwks (again every JWKSInterval, and on an unknown kid
// at most once per KidRefetchInterval). Verified tokens are cached, at most
// CacheSize of them, until exp + leeway; time claims and revocation are
// checked on every call. Revocations come from WatchRevocations, which
// needs a credential: a client certificate on a mutual-TLS connection, or
// a bearer with scope authsvc.revocations (Options.AccessToken). authsvc
// sends a heartbeat each second, so the set is trusted for MaxStaleness
// after the feed last spoke; past that every token is refused with
// UNAVAILABLE (fail closed) until the stream is back.
package verify
