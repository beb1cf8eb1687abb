"""Validation of calopt's simulations against published numbers (``calopt validate``)."""
