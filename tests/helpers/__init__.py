"""Helpers shared by test modules: plain functions and classes, no fixtures."""
