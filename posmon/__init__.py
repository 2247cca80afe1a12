"""posmon: keeps every open perpetual-futures position protected."""

__version__ = "0.1.0"
