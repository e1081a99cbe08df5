"""What every system test shares: the process harness, the three-service stack, API users, stream readers,
figures and stand-ins for outside services."""
