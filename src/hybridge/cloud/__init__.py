"""The cloud role: portal, registration authority, CA-list publisher, control hub."""
