"""The HTTP edge: litestar app, schemas, problem details, settings and the `bookings` CLI."""
