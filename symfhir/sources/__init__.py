"""Readers for spa exports: parse, never trust; every row ends accepted or rejected."""
