"""Registration events: the customers table's stream derived into events on the seller's bus."""
