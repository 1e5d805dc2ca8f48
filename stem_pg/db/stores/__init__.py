"""Stores: one method per named query, typed results; raw rows never leave this package."""
