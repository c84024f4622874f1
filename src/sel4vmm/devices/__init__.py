"""Device models: fault callbacks on reservations plus interrupt lines, for every backend."""
