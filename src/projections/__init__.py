"""Read models projected from the event log: resources, bookings, availability, history."""
