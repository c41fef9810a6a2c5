"""AWS Marketplace SaaS fulfillment: token intake, ResolveCustomer, customer record, hand-off."""
