-- A resource's own events (registration, updates, retirement, closures) are few next to its
-- bookings' events. A rebuild of the resources and the closures finds them here, instead of in
-- a scan of the whole log each.
CREATE INDEX events_of_resources ON events (position)
WHERE topic IN ('events.resource:ResourceRegistered', 'events.resource:ResourceUpdated',
                'events.resource:ResourceRetired', 'events.resource:ClosureAdded',
                'events.resource:ClosureRemoved');
