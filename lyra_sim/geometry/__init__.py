"""Geometry shared by the generators and the adapters (TSDF fusion of depth views)."""
