-- Booking rules, retirement and closures of resources; approval deadlines of bookings.

ALTER TABLE resources
    ADD COLUMN rules      jsonb       NOT NULL DEFAULT '{}',
    ADD COLUMN retired_at timestamptz;

ALTER TABLE bookings ADD COLUMN approval_deadline timestamptz;
ALTER TABLE slots ADD COLUMN approval_deadline timestamptz;

-- What the clock closes: confirmed bookings past their end, pending ones past their deadline.
CREATE INDEX bookings_confirmed_by_end ON bookings (end_time) WHERE status = 'confirmed';
CREATE INDEX bookings_pending_by_start ON bookings (start_time) WHERE status = 'pending';

CREATE TABLE closures (
    closure_id  uuid        PRIMARY KEY,
    resource_id uuid        NOT NULL,
    start_time  timestamptz NOT NULL,
    end_time    timestamptz NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL
);

CREATE INDEX closures_by_resource_end ON closures (resource_id, end_time);
