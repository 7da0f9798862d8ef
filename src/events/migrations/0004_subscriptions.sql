-- Webhook subscriptions: configuration, not events. Each row is a receiver's cursor on the
-- global feed: `position` is the last feed position handled (delivered, or skipped by the
-- event-type filter); 0 means from the first event. A delivery process leases a row
-- (lease_owner, lease_until) for one short batch, so one subscription is delivered by one
-- process at a time, strictly in feed order.
CREATE TABLE subscriptions (
    subscription_id uuid        PRIMARY KEY,
    url             text        NOT NULL,
    event_types     text[],                                 -- NULL: every type
    secret          text        NOT NULL,
    position        bigint      NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'dead')),
    failures        integer     NOT NULL DEFAULT 0,         -- consecutive failed attempts
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    failed_position bigint,                                 -- the event that keeps failing
    lease_owner     uuid,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- Picking the subscription due longest ago; dead ones wait for an operator.
CREATE INDEX subscriptions_due ON subscriptions (next_attempt_at) WHERE status = 'active';
-- Listing in creation order, a page at a time.
CREATE INDEX subscriptions_by_creation ON subscriptions (created_at, subscription_id);
