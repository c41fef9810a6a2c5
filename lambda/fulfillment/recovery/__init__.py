"""Recovery: registrations parked on the recovery queue, replayed into the customers table."""
