"""The connector role: the on-premises host that registers to the cloud."""
