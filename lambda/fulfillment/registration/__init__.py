"""The fulfillment URL: token in, ResolveCustomer, the customer stored once, the buyer sent on."""
