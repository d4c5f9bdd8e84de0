"""Shared UI pieces used by more than one page (one module per piece)."""
