"""Policy checks, one per module, each a :class:`~healthstack.check.policies.base.Check` value.

The ordered list of checks lives in :mod:`healthstack.check.registry`; importing a module here
registers nothing.
"""
