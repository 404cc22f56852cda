"""What tests and the demo run against: a local control plane, simulated Windows hosts, the
machine-API simulator, the local forge, and real Git servers (file://, ssh://, https://)."""
