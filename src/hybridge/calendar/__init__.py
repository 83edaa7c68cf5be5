"""Calendar backends (EWS, Graph, CalDAV) behind one interface, and the sync engine."""
