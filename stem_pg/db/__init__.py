"""Database plumbing: connections, the reconnecting connection, LISTEN helpers, named queries, stores."""
