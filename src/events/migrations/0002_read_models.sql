-- Read models, projected from the events in the same transaction that appends them.

CREATE TABLE projected_streams (
    stream_id uuid    PRIMARY KEY,
    version   integer NOT NULL
);

CREATE TABLE resources (
    resource_id       uuid        PRIMARY KEY,
    name              text        NOT NULL,
    timezone          text        NOT NULL,
    capacity          integer     NOT NULL,
    requires_approval boolean     NOT NULL,
    details           text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE INDEX resources_by_created ON resources (created_at, resource_id);

CREATE TABLE bookings (
    booking_id  uuid        PRIMARY KEY,
    resource_id uuid        NOT NULL,
    client_id   uuid        NOT NULL,
    start_time  timestamptz NOT NULL,
    end_time    timestamptz NOT NULL,
    status      text        NOT NULL,
    details     text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX bookings_by_start ON bookings (start_time, booking_id);
CREATE INDEX bookings_by_resource ON bookings (resource_id, start_time, booking_id);
CREATE INDEX bookings_by_client ON bookings (client_id, start_time, booking_id);

-- The availability view: the bookings that hold time on a resource (pending or confirmed).
CREATE TABLE slots (
    booking_id  uuid        PRIMARY KEY,
    resource_id uuid        NOT NULL,
    start_time  timestamptz NOT NULL,
    end_time    timestamptz NOT NULL,
    status      text        NOT NULL
);

CREATE INDEX slots_by_resource_end ON slots (resource_id, end_time);

CREATE TABLE booking_history (
    booking_id  uuid        NOT NULL,
    position    bigint      NOT NULL,
    version     integer     NOT NULL,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor       text,
    data        jsonb       NOT NULL,
    PRIMARY KEY (booking_id, position)
);
