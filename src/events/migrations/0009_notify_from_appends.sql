-- Appends tell the listeners themselves, and only while another process listens (ADR 0010,
-- amended): the statement that appends carries the notifications (`events.store.notices`).
-- A trigger notified on every append, also when nobody else was there to hear it.
DROP TRIGGER notify_appended ON events;
DROP FUNCTION notify_appended();
