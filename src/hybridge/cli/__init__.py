"""The ``hybridge`` command line: thin Typer commands over the services of each package."""
