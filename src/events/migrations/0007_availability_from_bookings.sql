-- Availability reads the open bookings from the bookings read model, which has every column it
-- needs; the copy of them in `slots` goes, and with it a row per booking written and rebuilt.
CREATE INDEX bookings_open_by_resource_end ON bookings (resource_id, end_time)
WHERE status IN ('pending', 'confirmed');

DROP TABLE slots;
