"""The seller hand-off: IAM-authorized GET /registrations/{id} for the seller's backend."""
