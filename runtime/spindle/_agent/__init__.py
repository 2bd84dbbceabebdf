"""The node agent process: leases, the warm worker pool, the node's object store and transfers."""
