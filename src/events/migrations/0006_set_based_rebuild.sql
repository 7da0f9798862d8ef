-- Values as the event store's JSON holds them ({"_type_": ..., "_data_": ...}), for reading
-- events in SQL: rebuilding read models with statements over the whole log, finding a booking's
-- events.
CREATE FUNCTION event_uuid(value jsonb) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$ SELECT (value->>'_data_')::uuid $$;

CREATE FUNCTION event_time(value jsonb) RETURNS timestamptz
LANGUAGE sql STABLE AS $$ SELECT (value->>'_data_')::timestamptz $$;

-- A booking's history is its events in the log, found by this index (it replaces a read model
-- that kept a copy of them).
CREATE INDEX events_by_booking ON events (event_uuid(state->'booking_id'), position)
WHERE state ? 'booking_id';

DROP TABLE booking_history;

-- Appends project in their own statement and rebuilds run over the whole log: nothing needs to
-- know how far each stream was projected.
DROP TABLE projected_streams;
