"""Dagster resources: thin adapters to storage and vendors, one interface per kind."""
