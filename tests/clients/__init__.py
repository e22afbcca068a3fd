"""Third-party GraphQL clients and conformance suites, run against the real gateway."""
