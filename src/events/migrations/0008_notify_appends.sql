-- Every statement that appends tells the processes listening on `bookings_appended` what it
-- recorded, as it commits (ADR 0010): a line per event, "stream_id version topic state", in
-- notifications of less than 8000 bytes (PostgreSQL's limit). An event too large for one goes
-- as "stream_id version" only: a listener that holds the stream reads it from the table.
CREATE FUNCTION notify_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event record;
    line text;
    lines text;
BEGIN
    FOR event IN
        SELECT stream_id, version, format('%s %s %s %s', stream_id, version, topic, state) AS line
        FROM appended
        ORDER BY position
    LOOP
        line := event.line;
        IF octet_length(line) >= 8000 THEN
            line := format('%s %s', event.stream_id, event.version);
        END IF;
        IF octet_length(lines) + 1 + octet_length(line) >= 8000 THEN
            PERFORM pg_notify('bookings_appended', lines);
            lines := NULL;
        END IF;
        lines := CASE WHEN lines IS NULL THEN line ELSE lines || E'\n' || line END;
    END LOOP;
    IF lines IS NOT NULL THEN
        PERFORM pg_notify('bookings_appended', lines);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER notify_appended AFTER INSERT ON events
REFERENCING NEW TABLE AS appended
FOR EACH STATEMENT EXECUTE FUNCTION notify_appended();
