"""Test tools that ship with the package: demo PKI helpers and protocol emulators."""
