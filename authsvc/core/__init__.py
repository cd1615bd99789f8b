"""Pure rules shared by the server and the guard: tokens, the key ring, the
revocation set, backoff. Imports no grpc, asyncpg or prometheus."""
