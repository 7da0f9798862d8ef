"""Event classes (the permanent contract) and the PostgreSQL event store."""
