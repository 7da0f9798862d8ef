-- Projections that follow the log in the background, each from its own stored position.

CREATE TABLE projector_positions (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Daily activity per resource: how many events of each type happened on each (UTC) day.
CREATE TABLE resource_activity (
    resource_id uuid    NOT NULL,
    day         date    NOT NULL,
    type        text    NOT NULL,
    count       integer NOT NULL,
    PRIMARY KEY (resource_id, day, type)
);
