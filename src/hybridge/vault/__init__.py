"""The connector's credential vault: envelope encryption under a master key kept apart."""
