"""Metering (issue 15): usage in, BatchMeterUsage out, billed exactly once (docs/metering.md)."""
