"""The built-in sign-up page: contact details, validated, stored apart from the customer."""
