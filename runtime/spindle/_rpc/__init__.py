"""gRPC plumbing and network helpers shared by every Spindle process."""
