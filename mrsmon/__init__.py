"""mrsmon: real-time scanner-side monitoring for functional MRS. This package holds only the command line."""

__version__ = "0.1.0"
