"""The function package: one subpackage per capability, a small shared core, one contract."""
