"""The composition root and the process around it: app, server, workers,
embedded PostgreSQL, logs and the command line."""
