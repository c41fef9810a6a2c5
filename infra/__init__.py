"""CDK app of the fulfillment stack."""
