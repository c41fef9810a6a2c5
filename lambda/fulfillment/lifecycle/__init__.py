"""Subscription lifecycle: Marketplace events and legacy SNS notifications keep status current."""
