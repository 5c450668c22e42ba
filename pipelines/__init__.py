"""Pipeline definitions and the code that deploys them."""
