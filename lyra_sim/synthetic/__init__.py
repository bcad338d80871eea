"""PyBullet scenes and RGB-D captures with known geometry, shared by tests, examples and benchmarks."""
