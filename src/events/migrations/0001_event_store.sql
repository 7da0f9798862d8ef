-- The event store: one row per event, one stream per resource.
-- (stream_id, version) is unique: appending at a taken version is how a concurrent decision loses.
-- position is the global order of insertion; transaction_id lets feed readers skip rows of
-- transactions that may still commit below positions they have already read.
CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      uuid        NOT NULL,
    version        integer     NOT NULL,
    topic          text        NOT NULL,
    state          jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

CREATE INDEX events_feed_order ON events (transaction_id, position);

-- The latest snapshot of each stream, so loading a resource reads only the events after it.
CREATE TABLE snapshots (
    stream_id uuid    PRIMARY KEY,
    version   integer NOT NULL,
    topic     text    NOT NULL,
    state     jsonb   NOT NULL
);
