"""Shared by every capability: clients, deadline, base errors, observability, page document."""
