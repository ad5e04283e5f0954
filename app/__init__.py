"""The task service: the contract's operations implemented over PostgreSQL."""
