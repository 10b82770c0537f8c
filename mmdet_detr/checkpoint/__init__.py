"""Checkpoint loading: safe unpickling and foreign-layout converters."""
