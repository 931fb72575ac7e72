"""Marketing analytics: aggregates per site and time bucket in Redis (see ``keys``)."""
