"""The customers table every capability shares: its shapes, its adapter, session errors."""
