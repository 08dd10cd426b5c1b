"""The geolip command line (typer). Holds no logic the Python API lacks."""
